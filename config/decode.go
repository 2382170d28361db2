package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// The strict decoder. yaml.v3's own KnownFields decode names the Go type
// instead of the key path ("field lisen not found in type config.SMTP")
// and zeroes a section given as null, so the node tree is walked here
// against the struct's yaml tags: every unknown key and every wrong type
// becomes a Problem with its path and line, and the walk goes on.
//
// Values overlay what the target already holds (the defaults), with three
// rules:
//   - a key that is absent or null keeps its default, so a section whose
//     keys are all commented out changes nothing;
//   - a list replaces the default list, and an empty list [] stays empty;
//   - a map's entries are added to the default map by name, and an entry
//     named like a default one overlays it field by field, as a section
//     overlays its defaults: "purposes: {newsletter: {retention: 365d}}"
//     changes one field of the built-in newsletter and keeps the
//     built-in transactional. (Load then drops the purposes whose enabled
//     is false.)
//
// Top-level keys starting with "x-" are ignored: they hold anchors
// ("x-base: &base {...}") to reuse with aliases and merge keys.

// maxVisits bounds the work of one decode: aliases can make a small file
// stand for a huge tree.
const maxVisits = 100_000

// value decodes n into v, the field at path. at is the node whose line
// names the key (the key itself for a mapping entry).
func (l *loader) value(n *yaml.Node, v reflect.Value, path string, at *yaml.Node) {
	if !l.visit(at) {
		return
	}
	if path != "" {
		l.origins[path] = l.where(at)
	}
	n = l.deref(n, path)
	if n == nil || isNull(n) {
		return
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			l.problem(path, at, err.Error())
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		l.structure(n, v, path)
	case reflect.Map:
		l.mapping(n, v, path)
	case reflect.Slice:
		l.sequence(n, v, path)
	case reflect.Pointer:
		before := len(l.list)
		p := reflect.New(v.Type().Elem())
		l.value(n, p.Elem(), path, at)
		if len(l.list) == before {
			v.Set(p)
		}
	default:
		l.scalar(n, v, path, at)
	}
}

func (l *loader) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		l.problem(path, n, "want a mapping of keys, got "+describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	for _, p := range l.pairs(n, path, 0) {
		name := p.key.Value
		i, ok := fields[name]
		if !ok && path == "" && strings.HasPrefix(name, "x-") {
			continue // a top-level x- key holds anchors to reuse, as in Compose files
		}
		if !ok {
			l.problem(join(path, name), p.key, unknownKey(name, fields))
			continue
		}
		l.value(p.val, v.Field(i), join(path, name), p.key)
	}
}

func (l *loader) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		l.problem(path, n, "want a mapping, got "+describe(n))
		return
	}
	// A fresh map, so that the defaults' map is never written through.
	m := reflect.MakeMap(v.Type())
	iter := v.MapRange()
	for iter.Next() {
		m.SetMapIndex(iter.Key(), iter.Value())
	}
	for _, p := range l.pairs(n, path, 0) {
		name := p.key.Value
		if name == "" {
			l.problem(path, p.key, "a name must not be empty")
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		if old := m.MapIndex(reflect.ValueOf(name)); old.IsValid() {
			e.Set(old)
		}
		l.value(p.val, e, join(path, name), p.key)
		m.SetMapIndex(reflect.ValueOf(name), e)
	}
	v.Set(m)
}

func (l *loader) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		l.problem(path, n, "want a list, got "+describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		l.value(e, s.Index(i), path+"["+strconv.Itoa(i)+"]", e)
	}
	v.Set(s)
}

func (l *loader) scalar(n *yaml.Node, v reflect.Value, path string, at *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		l.problem(path, at, "want a single value, got "+describe(n))
		return
	}
	quoted := ""
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		quoted = " (without quotes)"
	}
	switch v.Kind() {
	case reflect.String:
		// Any scalar reads as its text: "current_version: 2026.01" means
		// the string the user typed.
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Decode(&b) != nil {
			l.problem(path, at, "want true or false"+quoted+", got "+describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		var i int64
		if n.Decode(&i) != nil || v.OverflowInt(i) {
			l.problem(path, at, "want a whole number"+quoted+", got "+describe(n))
			return
		}
		v.SetInt(i)
	default:
		// Only reached if config.go gains a field of a new kind.
		l.problem(path, at, "cannot decode into "+v.Type().String())
	}
}

type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries with merge keys ("<<: *base") expanded:
// explicit keys beat merged ones, as YAML specifies. A repeated key is a
// problem (the first one is kept), as is a key that is not a plain scalar.
func (l *loader) pairs(n *yaml.Node, path string, depth int) []pair {
	var merged, own []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !l.visit(k) {
			return nil
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, l.merge(val, path, depth)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.problem(path, k, "a key must be a plain name, got "+describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.problem(join(path, k.Value), k, fmt.Sprintf("repeated key (first at line %d)", first))
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, pair{k, val})
	}
	out := make([]pair, 0, len(merged)+len(own))
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key.Line
			out = append(out, p)
		}
	}
	return append(out, own...)
}

func (l *loader) merge(val *yaml.Node, path string, depth int) []pair {
	if depth > 8 {
		l.problem(path, val, "merge keys nested too deeply")
		return nil
	}
	src := l.deref(val, path)
	if src == nil {
		return nil
	}
	sources := []*yaml.Node{src}
	if src.Kind == yaml.SequenceNode {
		sources = src.Content
	}
	var out []pair
	for _, s := range sources {
		s = l.deref(s, path)
		if s == nil {
			continue
		}
		if s.Kind != yaml.MappingNode {
			l.problem(path, s, "<< must name a mapping, got "+describe(s))
			continue
		}
		out = append(out, l.pairs(s, path, depth+1)...)
	}
	return out
}

// deref follows aliases to the anchored node; nil after a problem.
func (l *loader) deref(n *yaml.Node, path string) *yaml.Node {
	for range 100 {
		if n.Kind != yaml.AliasNode {
			return n
		}
		if n.Alias == nil {
			break
		}
		n = n.Alias
	}
	l.problem(path, n, "unresolvable alias")
	return nil
}

// visit counts work against maxVisits and reports once when it runs out.
func (l *loader) visit(n *yaml.Node) bool {
	l.visits++
	if l.visits == maxVisits {
		l.problem("", n, "the file expands to too many values (aliases?)")
	}
	return l.visits < maxVisits
}

// fieldsOf maps the yaml names of t's fields to their indexes; fields
// tagged "-" (secrets read from files) are not keys.
func fieldsOf(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func yamlName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	if tag == "" {
		return strings.ToLower(f.Name)
	}
	return tag
}

// unknownKey words the problem, pointing at the likely intended key.
func unknownKey(name string, fields map[string]int) string {
	if _, ok := fields[name+"_file"]; ok {
		return fmt.Sprintf("unknown key (this secret is read from a file: use %s_file)", name)
	}
	best, bestDist := "", 3
	for f := range fields {
		if d := editDistance(name, f); d < bestDist || (d == bestDist && f < best) {
			best, bestDist = f, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key (did you mean %q?)", best)
	}
	return "unknown key"
}

// editDistance is the Levenshtein distance, for typo hints only.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if len(n.Value) > 40 {
			return strconv.Quote(n.Value[:40] + "...")
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}
