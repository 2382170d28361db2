package optinproxy_test

import (
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
