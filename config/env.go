package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable Load reads.
const EnvPrefix = "OPTINPROXY_"

// cliVars are OPTINPROXY_* variables that are not configuration keys:
// the command line's, and the ledger key itself (the
// environment may carry it instead of store.key_file).
var cliVars = map[string]bool{
	"OPTINPROXY_CONFIG": true,
	"OPTINPROXY_ADDR":   true,
	"OPTINPROXY_TOKEN":  true,
	LedgerKeyEnv:        true,
}

// LedgerKeyEnv names the variable that may carry the ledger key's text
// (the content of a key file, lines separated by newlines or ";").
const LedgerKeyEnv = "OPTINPROXY_LEDGER_KEY"

// ledgerKeyIn reports whether environ carries the ledger key; an empty
// value does not count, as the server reads it.
func ledgerKeyIn(environ []string) bool {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, LedgerKeyEnv+"="); ok && v != "" {
			return true
		}
	}
	return false
}

// step is one key of a resolved variable's path.
type step struct {
	name   string
	typ    reflect.Type
	mapKey bool // name is a key of a map, not a field
}

type override struct {
	name, value string
	path        []step
}

// applyEnv writes each OPTINPROXY_* variable into the node tree as if the
// file held it, so that the strict decode and validation treat both alike.
// Nodes it makes are marked in l.env; their problems name the variable.
func (l *loader) applyEnv(root *yaml.Node, environ []string) {
	vars := map[string]string{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || cliVars[name] {
			continue
		}
		vars[name] = value // the last of repeated names wins, as in os/exec
	}
	var all []override
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		value := vars[name]
		rest := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
		path, ok := resolveEnv(rest, reflect.TypeFor[Config]())
		if !ok {
			l.add(Problem{Env: name, Msg: unknownVariable(rest)})
			continue
		}
		all = append(all, override{name, value, path})
	}
	// Whole values first, so that a deeper variable refines a whole value
	// set by another (OPTINPROXY_SMTP='{...}' and OPTINPROXY_SMTP_LISTEN)
	// whatever the order of the environment.
	slices.SortFunc(all, func(a, b override) int {
		return cmp.Or(cmp.Compare(len(a.path), len(b.path)), strings.Compare(a.name, b.name))
	})
	for _, o := range all {
		l.override(root, o)
	}
}

// resolveEnv maps the lower-cased rest of a variable name onto a key path
// of t. Underscores both join words of a key and separate keys, so the
// struct's yaml names are tried longest first (tls_listen before tls),
// backtracking when the rest does not resolve. Below a map, the map key is
// whatever comes before a path that resolves in the value type; a map of
// plain values takes the whole rest as its key.
func resolveEnv(rest string, t reflect.Type) ([]step, bool) {
	if rest == "" {
		return nil, false
	}
	switch {
	case t.Kind() == reflect.Struct:
		fields := fieldsOf(t)
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		slices.SortFunc(names, func(a, b string) int {
			return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
		})
		for _, name := range names {
			ft := t.Field(fields[name]).Type
			if rest == name {
				return []step{{name: name, typ: ft}}, true
			}
			if after, ok := strings.CutPrefix(rest, name+"_"); ok {
				if sub, ok := resolveEnv(after, ft); ok {
					return append([]step{{name: name, typ: ft}}, sub...), true
				}
			}
		}
	case t.Kind() == reflect.Map:
		et := t.Elem()
		if et.Kind() == reflect.Struct {
			for i := 1; i < len(rest); i++ {
				if rest[i] != '_' {
					continue
				}
				if sub, ok := resolveEnv(rest[i+1:], et); ok {
					return append([]step{{name: rest[:i], typ: et, mapKey: true}}, sub...), true
				}
			}
		}
		return []step{{name: rest, typ: et, mapKey: true}}, true
	}
	return nil, false
}

// unknownVariable words the problem of a variable that names no key (rest
// is its name after the prefix, in lower case), pointing at the variable
// of the likely intended key, as unknownKey does in the file.
func unknownVariable(rest string) string {
	// A variable spells a whole path, so it may stray one letter further
	// than a key of the file (unknownKey) and still be recognisable.
	best, bestDist := "", 4
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for name, i := range fieldsOf(t) {
			v := prefix + name
			d := editDistance(rest, v)
			if strings.Contains(rest, "_") && strings.HasSuffix(v, "_"+rest) {
				// A section left out: REDIS_URL for STORE_REDIS_URL; of two
				// parts at least, as one (LISTEN) fits several keys.
				d = 0
			}
			if d < bestDist || (d == bestDist && v < best) {
				best, bestDist = v, d
			}
			if ft := t.Field(i).Type; ft.Kind() == reflect.Struct {
				walk(ft, v+"_")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	if best == "" {
		return "unknown configuration key"
	}
	return fmt.Sprintf("unknown configuration key (did you mean %s?)", EnvPrefix+strings.ToUpper(best))
}

// override puts o's value into the tree, making the mappings on its way.
func (l *loader) override(root *yaml.Node, o override) {
	cur := root
	for i, st := range o.path {
		if i == len(o.path)-1 {
			val, ok := l.envValue(o, st.typ)
			if !ok {
				return
			}
			l.put(cur, st, o.name, val)
			return
		}
		next := lookup(cur, st)
		if next == nil || next.Kind != yaml.MappingNode {
			// Absent, null or of the wrong type in the file: the variable
			// wins. The decode overlays the new mapping on the defaults,
			// so OPTINPROXY_PURPOSES_NEWSLETTER_RETENTION changes only that.
			next = &yaml.Node{Kind: yaml.MappingNode}
			l.put(cur, st, o.name, next)
		}
		cur = next
	}
}

// lookup finds the value of st in mapping m, following an alias by copying
// its target so that a change does not reach the other users of the
// anchor. Map keys match case-insensitively with "-" read as "_", since a
// variable name can hold neither capitals nor "-".
func lookup(m *yaml.Node, st step) *yaml.Node {
	for i := len(m.Content) - 2; i >= 0; i -= 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode || !keyMatches(k.Value, st) {
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = deepCopy(v.Alias, 0)
			m.Content[i+1] = v
		}
		return v
	}
	return nil
}

func keyMatches(key string, st step) bool {
	if !st.mapKey {
		return key == st.name
	}
	return strings.ReplaceAll(strings.ToLower(key), "-", "_") == st.name
}

// put sets st to val in mapping m, replacing the key node too so that the
// key's line points to the variable, not to the file.
func (l *loader) put(m *yaml.Node, st step, env string, val *yaml.Node) {
	name := st.name
	for i := len(m.Content) - 2; i >= 0; i -= 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && keyMatches(k.Value, st) {
			name = k.Value // keep the file's spelling of a map key
			m.Content = slices.Delete(m.Content, i, i+2)
		}
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
	l.mark(key, env, 0)
	l.mark(val, env, 0)
	m.Content = append(m.Content, key, val)
}

// mark records that n and its children came from variable env.
func (l *loader) mark(n *yaml.Node, env string, depth int) {
	if n == nil || depth > 64 {
		return
	}
	if _, done := l.env[n]; done {
		return
	}
	n.Line, n.Column = 0, 0
	l.env[n] = env
	for _, c := range n.Content {
		l.mark(c, env, depth+1)
	}
}

// envValue turns a variable's text into a node for a value of type t. A
// string is taken literally; a list of strings is YAML flow ("[a, b]") or
// comma-separated ("a,b"); a number, bool or duration is a plain scalar;
// anything else (lists of mappings, mappings) is parsed as YAML.
func (l *loader) envValue(o override, t reflect.Type) (*yaml.Node, bool) {
	raw := strings.TrimSpace(o.value)
	if t.Implements(reflect.TypeFor[yaml.Unmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: raw}, true
	}
	switch t.Kind() {
	case reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: o.value}, true
	case reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.Pointer:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: raw}, true
	case reflect.Slice:
		if raw == "" {
			return &yaml.Node{Kind: yaml.SequenceNode}, true
		}
		if t.Elem().Kind() == reflect.String && !strings.HasPrefix(raw, "[") {
			seq := &yaml.Node{Kind: yaml.SequenceNode}
			for _, part := range strings.Split(raw, ",") {
				if part = strings.TrimSpace(part); part != "" {
					seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part})
				}
			}
			return seq, true
		}
	case reflect.Map:
		if raw == "" {
			return &yaml.Node{Kind: yaml.MappingNode}, true
		}
	}
	doc, next, err := parseDocuments([]byte(raw))
	if err == nil && next != nil {
		err = errors.New("only one YAML document is allowed")
	}
	if err != nil {
		_, msg := syntaxError(err)
		l.add(Problem{Key: pathString(o.path), Env: o.name, Msg: "not valid YAML: " + msg})
		return nil, false
	}
	if doc == nil {
		doc = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if last := o.path[len(o.path)-1]; last.mapKey && t.Kind() == reflect.Struct &&
		doc.Kind == yaml.ScalarNode && strings.Contains(last.name, "_") {
		// PURPOSES_NEWSLETTER_COLOUR=red: more likely a field that does
		// not exist than a whole purpose named "newsletter_colour".
		l.add(Problem{Env: o.name, Msg: "unknown configuration key"})
		return nil, false
	}
	return doc, true
}

func deepCopy(n *yaml.Node, depth int) *yaml.Node {
	c := *n
	if depth < 64 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, e := range n.Content {
			c.Content[i] = deepCopy(e, depth+1)
		}
	}
	return &c
}

func pathString(path []step) string {
	var b strings.Builder
	for i, st := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(st.name)
	}
	return b.String()
}
