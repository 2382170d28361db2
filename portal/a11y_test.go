package portal_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// checkPageHeaders: the headers of every page a link opens.
func checkPageHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
		"X-Content-Type-Options": "nosniff", "Content-Type": "text/html; charset=utf-8"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
}

// checkAccessible reads a page as a parser does and checks what the
// pages promise: one h1, a language, noindex, a label for every input,
// a legend for every fieldset, the style allowed by the CSP's hash and
// nothing loaded from elsewhere.
func checkAccessible(t *testing.T, body string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	var h1, noindex int
	var lang string
	labels := map[string]bool{}
	var inputs []string
	var fieldsets, legends int
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "html":
				lang = attr(n, "lang")
			case "h1":
				h1++
			case "meta":
				if attr(n, "name") == "robots" && strings.Contains(attr(n, "content"), "noindex") {
					noindex++
				}
			case "label":
				labels[attr(n, "for")] = true
			case "input", "select", "textarea":
				if attr(n, "type") != "hidden" {
					inputs = append(inputs, attr(n, "id"))
				}
			case "fieldset":
				fieldsets++
			case "legend":
				legends++
			case "script", "img", "link", "iframe":
				t.Errorf("page holds a <%s>", n.Data)
			}
			for _, a := range n.Attr {
				if (a.Key == "src" || a.Key == "href" || a.Key == "action") && strings.Contains(a.Val, "//") {
					t.Errorf("<%s %s=%q> points elsewhere", n.Data, a.Key, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if h1 != 1 {
		t.Errorf("%d h1 elements, want 1", h1)
	}
	if lang != "nl" && lang != "en" {
		t.Errorf("html lang %q", lang)
	}
	if noindex != 1 {
		t.Errorf("no robots noindex meta")
	}
	for _, id := range inputs {
		if id == "" || !labels[id] {
			t.Errorf("input %q has no label", id)
		}
	}
	if fieldsets != legends {
		t.Errorf("%d fieldsets, %d legends", fieldsets, legends)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// The page's one style is the one the CSP's hash allows.
func checkStyleAllowed(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	start, end := strings.Index(body, "<style>")+len("<style>"), strings.Index(body, "</style>")
	if start < len("<style>") || end < start || strings.Count(body, "<style>") != 1 {
		t.Fatalf("want one style element in %s", body)
	}
	sum := sha256.Sum256([]byte(body[start:end]))
	want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, want) {
		t.Errorf("CSP %q does not allow the style (%s)", csp, want)
	}
}
