package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"optinproxy/admin"
)

// TestBodyCapOnEveryRoute: every route refuses a body announced over its
// cap, before reading it, with a 413 that names the limit; the import and
// the list check have their own, larger caps. Routes that read no body refuse one too, rather
// than leave it unread on the connection.
func TestBodyCapOnEveryRoute(t *testing.T) {
	s := newAPIWith(t, backends[0].open(t), func(o *admin.Options) { o.MaxImportBytes, o.MaxCheckBytes = 8192, 8192 })
	for _, r := range admin.Routes() {
		method, path, _ := strings.Cut(r, " ")
		path = strings.NewReplacer("{email}", "a@example.com", "{purpose}", "newsletter").Replace(path)
		limit := 4096
		if path == "/api/v1/imports" || path == "/api/v1/check" {
			limit = 8192
		}
		code, raw := s.call(t, adminToken, method, path, strings.Repeat(" ", limit+1), nil)
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with %d bytes: %d, want 413: %s", r, limit+1, code, raw)
			continue
		}
		if got := errorCode(t, raw); got != "too_large" || !strings.Contains(raw, fmt.Sprintf("%d bytes", limit)) {
			t.Errorf("%s: %s, want too_large naming %d bytes", r, raw, limit)
		}
	}
}

// TestStreamedImportOverCap: a CSV sent without a length is cut at the
// cap; the 413 names the limit and says how many rows were stored before
// it, since those are not taken back.
func TestStreamedImportOverCap(t *testing.T) {
	s := newAPIWith(t, backends[0].open(t), func(o *admin.Options) { o.MaxImportBytes = 64 << 10 })
	var b strings.Builder
	b.WriteString("email,purpose,status,basis,source\n")
	for i := 0; b.Len() < 128<<10; i++ {
		fmt.Fprintf(&b, "user%d@example.com,newsletter,granted,consent,import\n", i)
	}
	// A reader of unknown length makes the client send it chunked.
	body := io.MultiReader(strings.NewReader(b.String()))
	req, err := http.NewRequest("POST", s.url+"/api/v1/imports", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || errorCode(t, string(raw)) != "too_large" ||
		!strings.Contains(string(raw), "65536 bytes") || !strings.Contains(string(raw), "rows before it were applied or already stored") {
		t.Errorf("streamed import over the cap: %d %s", resp.StatusCode, raw)
	}
}
