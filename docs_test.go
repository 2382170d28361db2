package optinproxy_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// link is a Markdown link or image: [text](target) or ![alt](target).
var link = regexp.MustCompile(`(!?)\[([^\]]*)\]\(([^)\s]+)\)`)

// inlineCode is a code span, whose brackets are not links.
var inlineCode = regexp.MustCompile("`[^`]*`")

// markdown is a document's prose lines (outside fenced code), by line
// number, and the anchors of its headings.
type markdown struct {
	lines   map[int]string
	anchors map[string]bool
}

func readMarkdown(t *testing.T, path string) markdown {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := markdown{lines: map[int]string{}, anchors: map[string]bool{}}
	seen := map[string]int{}
	fenced := false
	for i, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		md.lines[i+1] = line
		if h, ok := strings.CutPrefix(line, "#"); ok {
			a := anchor(strings.TrimLeft(h, "#"))
			if n := seen[a]; n > 0 {
				md.anchors[a+"-"+strconv.Itoa(n)] = true
			} else {
				md.anchors[a] = true
			}
			seen[a]++
		}
	}
	return md
}

// anchor is the id GitHub gives a heading: lower case, punctuation
// dropped (but - and _), spaces as hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(inlineCode.ReplaceAllStringFunc(heading, func(s string) string { return strings.Trim(s, "`") }))) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// internalRefs matches a pointer to the project's internal specification
// or style guide, or to the folder that holds them: they live outside the
// repository, so a document, comment or message that cites them sends the
// reader of a clone nowhere.
const internalRefs = `\bSPEC\b|\bSTYLE(\.md)?\b|\.\./shared\b`

var internalRef = regexp.MustCompile(internalRefs)

// TestNoInternalReferences: no text file of the repository (tracked, or new
// and not ignored) points to the internal specification or style guide, so
// that the documents, comments, test messages and scripts stand alone.
func TestNoInternalReferences(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout?)", err)
	}
	checked := 0
	for _, path := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if path == "go.sum" {
			continue // hashes only, whose base64 may spell anything
		}
		raw, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Error(err)
			continue
		}
		text := string(raw)
		if strings.IndexByte(text[:min(len(text), 8000)], 0) >= 0 {
			continue // binary, as git judges it
		}
		checked++
		for n, line := range strings.Split(text, "\n") {
			if path == "docs_test.go" && strings.Contains(line, internalRefs) {
				continue // the pattern itself
			}
			if internalRef.MatchString(line) {
				t.Errorf("%s:%d: %q points to the internal specification or style guide", path, n+1, strings.TrimSpace(line))
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d text files checked: is the test run from the module root?", checked)
	}
}

// Every link of the user documents (the README and docs/*.md) leads to a
// file of the repository, and to a heading of it when it names one; and
// every image has alt text. TestNoInternalReferences keeps them, with
// every other file, from pointing to the internal specification.
func TestDocumentLinks(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{"README.md"}, docs...)
	checked := 0
	for _, doc := range docs {
		md := readMarkdown(t, doc)
		for n, line := range md.lines {
			for _, m := range link.FindAllStringSubmatch(inlineCode.ReplaceAllString(line, ""), -1) {
				image, text, target := m[1] == "!", m[2], m[3]
				where := doc + ":" + strconv.Itoa(n) + ": " + m[0]
				if image && strings.TrimSpace(text) == "" {
					t.Errorf("%s: an image without alt text", where)
				}
				if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, frag, _ := strings.Cut(target, "#")
				path := doc
				if file != "" {
					path = filepath.Join(filepath.Dir(doc), file)
					if _, err := os.Stat(path); err != nil {
						t.Errorf("%s: %v", where, err)
						continue
					}
				}
				checked++
				if frag == "" {
					continue
				}
				if !strings.HasSuffix(path, ".md") {
					t.Errorf("%s: a heading of a file that is not Markdown", where)
				} else if !readMarkdown(t, path).anchors[frag] {
					t.Errorf("%s: %s has no heading #%s", where, path, frag)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no links found: is the test run from the module root?")
	}
}

// citedTest is a test named in docs/compliance.md: a package path of the
// module, a dot, a test function and, after a slash, one of its cases.
var citedTest = regexp.MustCompile("`((?:[a-z0-9]+/)*[a-z0-9]+)\\.(Test[A-Za-z0-9_]+)(?:/([A-Za-z0-9_-]+))?`")

// Every test that docs/compliance.md cites as proof exists, so that the
// document cannot point at a test that was renamed or removed.
func TestComplianceTestsExist(t *testing.T) {
	raw, err := os.ReadFile("docs/compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	n, problems := missingTests(string(raw))
	for _, p := range problems {
		t.Error("docs/compliance.md: " + p)
	}
	if n < 50 {
		t.Errorf("docs/compliance.md cites %d tests; is the citation form still `package.TestName`?", n)
	}
}

// TestMissingTestsCatches shows that missingTests notices a test, a case
// and a package that do not exist, and lets real ones be.
func TestMissingTestsCatches(t *testing.T) {
	doc := "`optin.TestDecideCrossProduct`, `optin/redisstore.TestConformance/PruneReceipts`, " +
		"`optin.TestNoSuchTest`, `optin/redisstore.TestConformance/NoSuchCase`, `nosuchpkg.TestX`"
	n, problems := missingTests(doc)
	if n != 5 || len(problems) != 3 {
		t.Fatalf("%d cited, problems %q; want 5 cited and 3 problems", n, problems)
	}
	for i, want := range []string{"optin.TestNoSuchTest", "NoSuchCase", "nosuchpkg"} {
		if !strings.Contains(problems[i], want) {
			t.Errorf("problem %d is %q, want one about %s", i, problems[i], want)
		}
	}
}

// missingTests returns how many tests doc cites and a problem for each
// that does not exist: a func TestX in the package's test files, and for
// a case, its name as a string literal in those files or in a package of
// the module they import (the store suite names its cases there).
func missingTests(doc string) (int, []string) {
	type facts struct {
		funcs, literals map[string]bool
		err             error
	}
	read := map[string]facts{} // by package: each is parsed once
	var problems []string
	cited := citedTest.FindAllStringSubmatch(doc, -1)
	for _, m := range cited {
		pkg, test, tcase := m[1], m[2], m[3]
		f, ok := read[pkg]
		if !ok {
			f.funcs, f.literals, f.err = testFacts(pkg)
			read[pkg] = f
		}
		funcs, literals, err := f.funcs, f.literals, f.err
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", m[0], err))
			continue
		}
		if !funcs[test] {
			problems = append(problems, fmt.Sprintf("%s: no func %s in the tests of ./%s", m[0], test, pkg))
			continue
		}
		if tcase != "" && !literals[tcase] {
			problems = append(problems, fmt.Sprintf("%s: no case %q of %s in ./%s or the suites it runs", m[0], tcase, test, pkg))
		}
	}
	return len(cited), problems
}

// testFacts reads the test functions of the package at dir (relative to
// the module root) and the string literals of its test files and of the
// module's packages they import.
func testFacts(dir string) (funcs, literals map[string]bool, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		return nil, nil, fmt.Errorf("no test files in ./%s", dir)
	}
	funcs, literals = map[string]bool{}, map[string]bool{}
	fset := token.NewFileSet()
	var imported []string
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				funcs[fn.Name.Name] = true
			}
		}
		addLiterals(file, literals)
		for _, imp := range file.Imports {
			if p, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), module+"/"); ok {
				imported = append(imported, p)
			}
		}
	}
	for _, p := range imported {
		srcs, _ := filepath.Glob(filepath.Join(p, "*.go"))
		for _, f := range srcs {
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				return nil, nil, err
			}
			addLiterals(file, literals)
		}
	}
	return funcs, literals, nil
}

func addLiterals(file *ast.File, into map[string]bool) {
	ast.Inspect(file, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				into[s] = true
			}
		}
		return true
	})
}

// metricName is a metric of the proxy named in a document.
var metricName = regexp.MustCompile(`\boptinproxy_[a-z_]+[a-z]`)

// registered is how the program names a metric it registers with
// Prometheus: the Name of its options, or the name of a Desc.
var registered = regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(optinproxy_[a-z_]+)"`)

// Every metric the user documents name is one the program registers, so
// that an alert written from the documents finds its series; and every
// metric it registers is in the metrics tables of docs/operations.md.
func TestDocumentedMetricsExist(t *testing.T) {
	defined := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range registered.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob("docs/*.md")
	for _, doc := range append([]string{"README.md"}, docs...) {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricName.FindAllString(string(raw), -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && defined[b] {
					base = b
				}
			}
			if !defined[base] {
				t.Errorf("%s names the metric %s, which the program does not register", doc, name)
			}
		}
	}
	ops, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range defined {
		if !bytes.Contains(ops, []byte("| `"+name+"` |")) {
			t.Errorf("the metric %s is not in the tables of docs/operations.md", name)
		}
	}
	if len(defined) < 20 {
		t.Fatalf("found %d metrics in the source; is the test run from the module root?", len(defined))
	}
}
