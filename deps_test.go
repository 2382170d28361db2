package optinproxy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the module path; imports outside it are not ours to check.
const module = "optinproxy"

// doors are the packages that face the outside (admin is the JSON API of
// /api/v1); they share nothing but optin.
var doors = []string{"smtpproxy", "unsubscribe", "webhooks", "admin"}

// TestDependencyDirection keeps the intended layering true for the packages
// that exist: optin imports nothing of the project; the doors import no other
// door; config is imported only by cmd; the stores (optin/...), upstream
// and dkim are imported only by cmd, and dkim imports only optin. Only non-test imports count: tests may import
// anything.
func TestDependencyDirection(t *testing.T) {
	graph := loadImports(t)
	if _, ok := graph["optin"]; !ok {
		t.Fatalf("go list found no package optin among %d packages; is the test run from the module root?", len(graph))
	}
	for _, problem := range checkImports(graph) {
		t.Error(problem)
	}
}

// TestDependencyRules shows that checkImports catches each kind of wrong
// import, directly and through a helper, and lets the right ones be.
func TestDependencyRules(t *testing.T) {
	tests := []struct {
		graph map[string][]string
		want  string // a part of the one problem expected; "" for none
	}{
		// The intended shape: no problem.
		{map[string][]string{
			"cmd/optinproxy":     {"config", "dkim", "optin", "optin/redisstore", "smtpproxy", "unsubscribe", "upstream", "webhooks"},
			"config":             {"optin"},
			"dkim":               {"optin"},
			"optin":              nil,
			"optin/redisstore":   {"optin"},
			"smtpproxy":          {"optin", "internal/textproto"},
			"internal/textproto": nil,
			"unsubscribe":        {"optin"},
			"upstream":           {"optin"},
			"webhooks":           {"optin"},
		}, ""},
		// A store may use its own sub-packages.
		{map[string][]string{"optin/redisstore": {"optin", "optin/redisstore/keys"}, "optin/redisstore/keys": nil}, ""},
		// optin imports a project package.
		{map[string][]string{"optin": {"internal/x"}, "internal/x": nil}, "optin imports internal/x"},
		// optin imports one of its own sub-packages.
		{map[string][]string{"optin": {"optin/redisstore"}, "optin/redisstore": nil}, "optin imports optin/redisstore"},
		// One door imports another.
		{map[string][]string{"smtpproxy": {"unsubscribe"}, "unsubscribe": nil}, "smtpproxy imports unsubscribe"},
		// A door reaches another through a helper.
		{map[string][]string{"webhooks": {"internal/h"}, "internal/h": {"smtpproxy/dsn"}, "smtpproxy/dsn": nil},
			"webhooks -> internal/h -> smtpproxy/dsn"},
		// A door imports config.
		{map[string][]string{"unsubscribe": {"config"}, "config": nil}, "unsubscribe imports config"},
		// A helper imports config.
		{map[string][]string{"internal/h": {"config"}, "config": nil}, "internal/h imports config"},
		// A door imports a store.
		{map[string][]string{"webhooks": {"optin/boltstore"}, "optin/boltstore": nil}, "webhooks imports optin/boltstore"},
		// One store imports another.
		{map[string][]string{"optin/a": {"optin/b"}, "optin/b": nil}, "optin/a imports optin/b"},
		// A door imports upstream.
		{map[string][]string{"smtpproxy": {"upstream"}, "upstream": nil}, "smtpproxy imports upstream"},
		// A test helper opens the stores and uses another helper.
		{map[string][]string{"internal/teststore": {"optin/filestore", "internal/redistest"}, "optin/filestore": {"optin"}, "internal/redistest": nil, "optin": nil}, ""},
		// A door imports dkim.
		{map[string][]string{"smtpproxy": {"dkim"}, "dkim": nil}, "smtpproxy imports dkim"},
		// dkim imports a project package other than optin.
		{map[string][]string{"dkim": {"internal/x"}, "internal/x": nil}, "dkim imports internal/x"},
		// Product code imports a test helper.
		{map[string][]string{"admin": {"internal/teststore"}, "internal/teststore": nil}, "admin imports internal/teststore"},
	}
	for _, tt := range tests {
		problems := checkImports(tt.graph)
		switch {
		case tt.want == "" && len(problems) > 0:
			t.Errorf("%v: unexpected problems %q", tt.graph, problems)
		case tt.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.want)):
			t.Errorf("%v: problems %q, want one saying %q", tt.graph, problems, tt.want)
		}
	}
}

// loadImports returns the module's packages, by path relative to the
// module ("." for the root), each with its non-test imports of the module.
func loadImports(t *testing.T) map[string][]string {
	t.Helper()
	// -e: a package another engineer is halfway through still lists its
	// imports; its build errors are not this test's business.
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		from, ok := relative(pkg.ImportPath)
		if !ok {
			continue
		}
		graph[from] = []string{}
		for _, imp := range pkg.Imports {
			if to, ok := relative(imp); ok {
				graph[from] = append(graph[from], to)
			}
		}
	}
	return graph
}

// relative returns path relative to the module, and whether it is in it.
func relative(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rest, ok := strings.CutPrefix(path, module+"/")
	return rest, ok
}

// checkImports returns one sentence per broken rule, naming the import.
func checkImports(graph map[string][]string) []string {
	var problems []string
	for _, from := range sortedKeys(graph) {
		for _, to := range graph[from] {
			if why := forbidden(from, to); why != "" {
				problems = append(problems, fmt.Sprintf("%s imports %s: %s", from, to, why))
			}
		}
	}
	// A door must not reach another through helpers either; a direct
	// import (a chain of two) was reported above.
	for _, from := range sortedKeys(graph) {
		door := doorOf(from)
		if door == "" {
			continue
		}
		otherDoor := func(p string) bool { d := doorOf(p); return d != "" && d != door }
		if chain := pathTo(graph, from, otherDoor); len(chain) > 2 {
			problems = append(problems, fmt.Sprintf("%s depends on %s (%s): the doors share nothing but optin",
				from, chain[len(chain)-1], strings.Join(chain, " -> ")))
		}
	}
	return problems
}

// testHelper tells whether p is a helper that only tests may import
// (internal/testtools, internal/teststore, ...): it counts as a test.
func testHelper(p string) bool {
	return strings.HasPrefix(p, "internal/test") || p == "internal/redistest"
}

// forbidden returns why from may not import to directly, or "".
func forbidden(from, to string) string {
	switch {
	case testHelper(from):
		return ""
	case testHelper(to):
		return "test helpers are imported only by tests"
	case from == "optin":
		return "optin imports nothing of the project"
	case doorOf(from) != "" && doorOf(to) != "" && doorOf(from) != doorOf(to):
		return "the doors (smtpproxy, unsubscribe, webhooks, admin) share nothing but optin"
	case under(to, "config") && !under(from, "cmd"):
		return "config is imported only by cmd/..."
	case strings.HasPrefix(to, "optin/") && !under(from, "cmd") && !under(from, storeOf(to)):
		return "the stores (optin/...) are imported only by cmd/... and tests"
	case under(to, "upstream") && !under(from, "cmd") && !under(from, "upstream"):
		return "upstream is imported only by cmd/... and tests"
	case under(to, "dkim") && !under(from, "cmd") && !under(from, "dkim"):
		return "dkim is imported only by cmd/... and tests: the relay signs through an interface of its own"
	case under(from, "dkim") && to != "optin" && !under(to, "dkim"):
		return "dkim imports nothing of the project but optin"
	}
	return ""
}

// pathTo returns a chain of imports from start to the first package that
// matches, start included, or nil.
func pathTo(graph map[string][]string, start string, match func(string) bool) []string {
	prev := map[string]string{start: ""}
	queue := []string{start}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if match(p) {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, next := range graph[p] {
			if _, seen := prev[next]; !seen {
				prev[next] = p
				queue = append(queue, next)
			}
		}
	}
	return nil
}

// doorOf returns the door that p is or lies under, or "".
func doorOf(p string) string {
	for _, d := range doors {
		if under(p, d) {
			return d
		}
	}
	return ""
}

// storeOf returns the optin sub-package that p lies under: optin/x for optin/x/y.
func storeOf(p string) string {
	parts := strings.SplitN(p, "/", 3)
	return parts[0] + "/" + parts[1]
}

// under reports whether p is root or lies below it.
func under(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
