package config

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// docPath is the user's reference of every key.
const docPath = "../docs/configuration.md"

// docRow is one row of a key table in docPath:
// | `key` | type | `default` | `OPTINPROXY_...` | what it does |
type docRow struct {
	line                 int
	typ, def, env, about string
}

// keyTableHeader starts each table of keys.
const keyTableHeader = "| key | type | default | environment | what it does |"

// placeholder is a map key in a documented path: purposes.<name>.basis.
var placeholder = regexp.MustCompile(`<[^>]+>`)

// docRows reads the key tables, by key path with every placeholder as <*>.
func docRows(t *testing.T) map[string]docRow {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]docRow{}
	sc := bufio.NewScanner(f)
	inTable := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == keyTableHeader {
			inTable = true
			continue
		}
		inTable = inTable && strings.HasPrefix(line, "|")
		if !inTable || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 5 {
			t.Errorf("%s:%d: want 5 cells (key, type, default, environment, what), got %d", docPath, n, len(cells))
			continue
		}
		key, ok := codeSpan(cells[0])
		if !ok {
			t.Errorf("%s:%d: the key %q is not one code span", docPath, n, cells[0])
			continue
		}
		key = placeholder.ReplaceAllString(key, "<*>")
		if first, dup := rows[key]; dup {
			t.Errorf("%s:%d: %s is documented twice (first at line %d)", docPath, n, key, first.line)
		}
		rows[key] = docRow{line: n, typ: cells[1], def: cells[2], env: cells[3], about: cells[4]}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no table starting %q", docPath, keyTableHeader)
	}
	return rows
}

// codeSpan returns the text of a cell that is exactly one `code span`.
func codeSpan(cell string) (string, bool) {
	cell = strings.TrimSpace(cell)
	if len(cell) < 2 || cell[0] != '`' || cell[len(cell)-1] != '`' || strings.Count(cell, "`") != 2 {
		return "", false
	}
	return cell[1 : len(cell)-1], true
}

// docKey is a key of the Config struct as the reference must show it.
type docKey struct {
	path string // with [] for a list entry and <*> for a map key
	typ  reflect.Type
	// def is the default, for keys outside list and map entries (whose
	// defaults are per entry); invalid otherwise.
	def reflect.Value
	// inList: under a list entry, which no variable reaches alone.
	inList bool
}

// configKeys walks t by its yaml tags: every key that holds a value, a
// list or a map (sections are not keys of their own).
func configKeys(t reflect.Type, def reflect.Value, path string, inList bool, out *[]docKey) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		p := join(path, name)
		var v reflect.Value
		if def.IsValid() {
			v = def.Field(i)
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]() {
			configKeys(ft, v, p, inList, out)
			continue
		}
		*out = append(*out, docKey{path: p, typ: ft, def: v, inList: inList})
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			configKeys(ft.Elem(), reflect.Value{}, p+"[]", true, out)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			configKeys(ft.Elem(), reflect.Value{}, p+".<*>", inList, out)
		case ft.Kind() == reflect.Map:
			*out = append(*out, docKey{path: p + ".<*>", typ: ft.Elem(), inList: inList})
		}
	}
}

// typeName is how the reference names the type of a key.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return "duration"
	case t.Kind() == reflect.Pointer:
		return typeName(t.Elem())
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.String:
		return "map of strings"
	case t.Kind() == reflect.Map:
		return "map"
	}
	return t.String()
}

// defaultText writes a default as the reference shows it, as YAML would
// read it back; ok is false for a value the reference describes in words
// (the built-in purposes, the machine's host name).
func defaultText(v reflect.Value) (string, bool) {
	switch {
	case v.Type() == reflect.TypeFor[Duration]():
		return v.Interface().(Duration).String(), true
	case v.Kind() == reflect.String:
		if v.String() == "" {
			return `""`, true
		}
		return v.String(), true
	case v.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case v.Kind() == reflect.Slice && v.Len() == 0:
		return "[]", true
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		return "[" + strings.Join(v.Interface().([]string), ", ") + "]", true
	case v.Kind() == reflect.Map && v.Len() == 0:
		return "{}", true
	}
	return "", false
}

// describedDefaults are the keys whose default the reference gives in
// words, and why.
var describedDefaults = map[string]bool{
	"smtp.hostname": true, // the machine's host name
	"purposes":      true, // the built-in purposes, shown as YAML
}

// TestConfigurationDocumented: docs/configuration.md has a row for every
// key of Config, and no row for a key Config lacks; each row gives the
// key's type, its default as Default() has it (outside list and map
// entries), the environment variable Load reads for it (or "—" under a
// list entry, which only the whole list's variable sets), and what it
// does.
func TestConfigurationDocumented(t *testing.T) {
	rows := docRows(t)
	var keys []docKey
	configKeys(reflect.TypeFor[Config](), reflect.ValueOf(Default()).Elem(), "", false, &keys)
	if len(keys) < 100 {
		t.Fatalf("found only %d keys in Config: is the walk broken?", len(keys))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.path] = true
		row, ok := rows[k.path]
		if !ok {
			t.Errorf("%s is not documented in %s", k.path, docPath)
			continue
		}
		where := docPath + ":" + strconv.Itoa(row.line) + ": " + k.path
		if want := typeName(k.typ); row.typ != want {
			t.Errorf("%s: type %q, want %q", where, row.typ, want)
		}
		if strings.TrimSpace(row.about) == "" {
			t.Errorf("%s: says nothing of what it does", where)
		}
		if k.def.IsValid() && !describedDefaults[k.path] {
			want, ok := defaultText(k.def)
			if !ok {
				t.Errorf("%s: a default the test cannot write; add it to describedDefaults with the reason", where)
			} else if got, _ := codeSpan(row.def); got != want {
				t.Errorf("%s: default %s, but Default() has `%s`", where, row.def, want)
			}
		}
		checkEnvCell(t, where, k, row.env)
	}
	for key, row := range rows {
		if !seen[key] {
			t.Errorf("%s:%d: %s is documented but is no key of the configuration", docPath, row.line, key)
		}
	}
}

// checkEnvCell checks a row's variable: the one Load resolves to the key,
// placeholders such as <NAME> standing for a map key.
func checkEnvCell(t *testing.T, where string, k docKey, cell string) {
	t.Helper()
	if k.inList {
		if !strings.HasPrefix(cell, "—") {
			t.Errorf("%s: environment %q, want — (only the whole list's variable sets it)", where, cell)
		}
		return
	}
	name, ok := codeSpan(cell)
	if !ok || !strings.HasPrefix(name, EnvPrefix) {
		t.Errorf("%s: environment %q is not one `OPTINPROXY_...` name", where, cell)
		return
	}
	rest := strings.ToLower(placeholder.ReplaceAllString(strings.TrimPrefix(name, EnvPrefix), "x"))
	steps, ok := resolveEnv(rest, reflect.TypeFor[Config]())
	if !ok {
		t.Errorf("%s: Load does not read %s", where, name)
		return
	}
	var got []string
	for _, st := range steps {
		if st.mapKey {
			got = append(got, "<*>")
		} else {
			got = append(got, st.name)
		}
	}
	if strings.Join(got, ".") != k.path {
		t.Errorf("%s: %s sets %s instead", where, name, strings.Join(got, "."))
	}
}

// TestConfigurationExample: the full example of docs/configuration.md
// loads, but for the files it names, which do not exist here.
func TestConfigurationExample(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	block, first := yamlBlock(t, string(raw), "\n## A full example\n")
	path := filepath.Join(t.TempDir(), "optinproxy.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path, nil)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("the example loaded without its files: %v (the test no longer tells a missing file from a mistake)", err)
	}
	files := 0
	for _, p := range errs.Problems {
		if strings.Contains(p.Msg, "no such file or directory") {
			files++
			continue
		}
		if p.Line > 0 {
			p.Line += first - 1
		}
		t.Errorf("the example: %s", p.format(docPath))
	}
	if files == 0 {
		t.Error("no problem about a missing file: is the example still the full one?")
	}
}

// yamlBlock returns the first ```yaml block after the heading in doc, and
// the line of doc its text starts on.
func yamlBlock(t *testing.T, doc, heading string) (string, int) {
	t.Helper()
	before, after, ok := strings.Cut(doc, heading)
	if !ok {
		t.Fatalf("%s has no %q", docPath, strings.TrimSpace(heading))
	}
	skipped, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatalf("no ```yaml block after %q", strings.TrimSpace(heading))
	}
	block, _, _ = strings.Cut(block, "\n```")
	first := strings.Count(before+heading+skipped+"```yaml\n", "\n") + 1
	return block + "\n", first
}

// TestConfigurationBuiltinPurposes: the built-in purposes the reference
// shows are those of Default().
func TestConfigurationBuiltinPurposes(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := yamlBlock(t, string(raw), "\n### purposes\n")
	var shown struct {
		Purposes map[string]Purpose `yaml:"purposes"`
	}
	if err := yaml.Unmarshal([]byte(block), &shown); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shown.Purposes, Default().Purposes) {
		t.Errorf("the reference shows the built-in purposes as %+v, Default() has %+v", shown.Purposes, Default().Purposes)
	}
}
