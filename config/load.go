package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Load reads the configuration: the defaults, overlaid by the YAML file at
// path ("" for none: zero-config), overlaid by the OPTINPROXY_* variables
// in environ (os.Environ() form, "NAME=value"); then it reads the *_file
// secrets and validates the result.
//
// unsubscribe.secret_file is not read: the server creates it on first
// start. Relative paths are relative to the working directory.
//
// checks run after validation, for what config cannot judge itself (a
// DKIM key file is read by a package config may not import); their
// problems are reported with the others.
//
// On any problem Load returns a nil Config and an *Errors holding every
// problem found, each naming its key and the line or variable it came
// from. Load has no side effects of its own and is safe to call
// concurrently.
func Load(path string, environ []string, checks ...Check) (*Config, error) {
	l := &loader{
		env:      map[*yaml.Node]string{},
		origins:  map[string]origin{},
		failed:   map[string]bool{},
		disabled: map[string]origin{},
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			l.add(Problem{Msg: err.Error()})
			return nil, l.err(path)
		}
		r, ok := l.parse(data)
		if !ok {
			return nil, l.err(path)
		}
		root = r
	}
	l.applyEnv(root, environ)
	cfg := Default()
	l.value(root, reflect.ValueOf(cfg).Elem(), "", root)
	l.dropDisabled(cfg)
	cfg.ledgerKeyInEnv = ledgerKeyIn(environ)
	l.readSecrets(cfg)
	l.validate(cfg)
	for _, check := range checks {
		check(cfg, l.invalid)
	}
	if err := l.err(path); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Check is a validation that Load runs after its own, given the decoded
// configuration. It reports each problem by calling invalid with the key
// path ("dkim[0].key_file") and what is wrong; Load places it at the line
// (or variable) the key came from. A key that failed to decode is not
// reported again.
type Check func(c *Config, invalid func(key, msg string))

// loader holds the state of one Load.
type loader struct {
	problems
	// env marks the nodes made from an environment variable, by name.
	env map[*yaml.Node]string
	// origins records where each key path's value was written, so that
	// validation can name the line (or variable) of a bad value.
	origins map[string]origin
	// failed holds the key paths that had a decode problem.
	failed map[string]bool
	// disabled holds where each purpose removed by enabled: false was.
	disabled map[string]origin
	visits   int
}

type origin struct {
	line int
	env  string
}

// String says where a value came from: "line 7" or the variable's name.
func (o origin) String() string {
	switch {
	case o.env != "":
		return o.env
	case o.line > 0:
		return fmt.Sprintf("line %d", o.line)
	}
	return "the defaults"
}

func (l *loader) where(n *yaml.Node) origin {
	if n == nil {
		return origin{}
	}
	if name, ok := l.env[n]; ok {
		return origin{env: name}
	}
	return origin{line: n.Line}
}

// problem adds a decode problem at node n.
func (l *loader) problem(key string, n *yaml.Node, msg string) {
	o := l.where(n)
	l.add(Problem{Key: key, Line: o.line, Env: o.env, Msg: msg})
	l.failed[key] = true
}

// invalid adds a validation problem for key, placed where the key (or,
// when it was not written, its nearest written parent) came from.
// A key that could not be decoded, or whose parent could not, is not
// validated again: "want a mapping" says it all.
func (l *loader) invalid(key, msg string) {
	p := Problem{Key: key, Msg: msg}
	placed := false
	for k := key; k != ""; k = parent(k) {
		if l.failed[k] {
			return
		}
		if o, ok := l.origins[k]; ok && !placed {
			p.Line, p.Env = o.line, o.env
			placed = true
		}
	}
	l.add(p)
}

// parent cuts the last step off a key path: "a.b[2]" -> "a.b" -> "a".
func parent(key string) string {
	if i := strings.LastIndexAny(key, ".["); i >= 0 {
		return key[:i]
	}
	return ""
}
