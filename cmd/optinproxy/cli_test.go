package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"optinproxy/internal/redistest"
)

// The README's ledger story, as a user types it, against a running server
// on each store: grant with evidence, show, withdraw, history, export as
// XLSX, import, suppress, verify.
func TestCLIAgainstServer(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			s := serveOn(t, store, dir)
			cli := func(stdin string, args ...string) result {
				// The CLI finds the token in ./data/admin.token, as a user
				// in the server's folder would.
				return runCmd(t, dir, stdin, []string{"OPTINPROXY_ADDR=" + s.httpAddr}, args...)
			}
			mustOut(t, cli("", "consent", "grant", "Jan@Example.com", "newsletter", "--source", "form", "--ip", "192.0.2.1",
				"--text", "Ja, stuur mij de nieuwsbrief", "--evidence", "campaign=spring"), "jan@example.com newsletter: granted")
			out := mustOut(t, cli("", "consent", "show", "jan@example.com"), "newsletter  granted")
			for _, want := range []string{`"ip":"192.0.2.1"`, `"campaign":"spring"`, "consent.granted", "token:admin"} {
				if !strings.Contains(out, want) {
					t.Errorf("show lacks %q:\n%s", want, out)
				}
			}
			mustOut(t, cli("", "consent", "withdraw", "jan@example.com", "newsletter"), "withdrawn")
			out = mustOut(t, cli("", "consent", "show", "--json", "jan@example.com"), `"status": "withdrawn"`)
			var v struct {
				Events []struct{ Type, Prev, Hash string }
			}
			json.Unmarshal([]byte(out), &v)
			if len(v.Events) != 2 || v.Events[1].Prev != v.Events[0].Hash {
				t.Errorf("history is not a chain of two: %+v", v.Events)
			}
			mustOut(t, cli("", "export", "jan@example.com", "--format", "xlsx", "--output", "jan.xlsx"), "wrote jan.xlsx")
			f, err := excelize.OpenFile(filepath.Join(dir, "jan.xlsx"))
			if err != nil {
				t.Fatalf("the XLSX does not open: %v", err)
			}
			rows, _ := f.GetRows("Events")
			if len(rows) != 3 || rows[1][2] != "consent.granted" || rows[2][2] != "consent.withdrawn" {
				t.Errorf("XLSX events: %v", rows)
			}
			mustOut(t, cli("", "export", "jan@example.com", "--format", "csv"), "consent,newsletter,withdrawn")

			os.WriteFile(filepath.Join(dir, "in.csv"), []byte("email,purpose,status,basis,source\nanna@example.com,newsletter,granted,consent,import\nbroken,newsletter,granted,consent,import\n"), 0o600)
			r := cli("", "import", "in.csv")
			if r.code != 1 || !strings.Contains(r.stdout, "1 applied") || !strings.Contains(r.stdout, "in.csv:3:") {
				t.Errorf("import with a bad row: %d %s %s", r.code, r.stdout, r.stderr)
			}
			mustOut(t, cli("", "suppress", "add", "bounce@example.com", "--reason", "hard_bounce"), "suppressed")
			mustOut(t, cli("", "suppress", "list"), "bounce@example.com\thard_bounce")
			mustOut(t, cli("", "suppress", "remove", "bounce@example.com"), "removed [hard_bounce]")
			mustOut(t, cli("", "verify"), "every chain is intact")

			// Errors a user makes get one clear line.
			r = cli("", "consent", "grant", "jan@example.com", "no-such-purpose")
			if r.code != 1 || !strings.Contains(r.stderr, "unknown_purpose") {
				t.Errorf("unknown purpose: %d %q", r.code, r.stderr)
			}
			// What would be valid is named: purposes (lower case) and reasons.
			r = cli("", "consent", "grant", "jan@example.com", "Newsletter")
			if r.code != 1 || !strings.Contains(r.stderr, `unknown purpose: "Newsletter" (purpose names are lower case: "newsletter"); the purposes are: newsletter, transactional`) {
				t.Errorf("capitalized purpose: %d %q", r.code, r.stderr)
			}
			r = cli("", "suppress", "add", "jan@example.com", "--reason", "spam")
			if r.code != 1 || !strings.Contains(r.stderr, `unknown suppression reason "spam"; the reasons to add are: unsubscribed_all, hard_bounce, complaint, manual`) {
				t.Errorf("unknown reason: %d %q", r.code, r.stderr)
			}
			r = cli("", "consent", "grant", "not-an-address", "newsletter")
			if r.code != 1 || !strings.Contains(r.stderr, "bad_address") {
				t.Errorf("bad address: %d %q", r.code, r.stderr)
			}
			r = runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr, "OPTINPROXY_TOKEN=wrong"}, "consent", "show", "jan@example.com")
			if r.code != 1 || !strings.Contains(r.stderr, "unauthorized") || !strings.Contains(r.stderr, "the token came from OPTINPROXY_TOKEN; the server is http://"+s.httpAddr) {
				t.Errorf("wrong token: %d %q", r.code, r.stderr)
			}
			// In the folder of another server, with its token file.
			other := t.TempDir()
			os.MkdirAll(filepath.Join(other, "data"), 0o700)
			os.WriteFile(filepath.Join(other, "data", "admin.token"), []byte("another server's\n"), 0o600)
			r = runCmd(t, other, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, "consent", "show", "jan@example.com")
			if r.code != 1 || !strings.Contains(r.stderr, "the token came from ./data/admin.token") {
				t.Errorf("the token file of another server: %d %q", r.code, r.stderr)
			}
			if r := cli("", "consent", "grant", "only-one-arg"); r.code != 2 {
				t.Errorf("missing argument: exit %d, want 2", r.code)
			}
		})
	}
}

func TestCLIWithoutServer(t *testing.T) {
	dir := t.TempDir()
	r := runCmd(t, dir, "", []string{"OPTINPROXY_TOKEN=x", "OPTINPROXY_ADDR=127.0.0.1:1"}, "consent", "show", "a@example.com")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the server") {
		t.Errorf("no server: %d %q", r.code, r.stderr)
	}
	r = runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=127.0.0.1:1"}, "consent", "show", "a@example.com")
	if r.code != 2 || !strings.Contains(r.stderr, "no token") {
		t.Errorf("no token: %d %q", r.code, r.stderr)
	}
}

// A dead Redis: the server says it is not ready, the API answers 503,
// and mail would not be decided against a store it cannot reach.
func TestRedisDownAfterStart(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	s := startServe(t, dir, "OPTINPROXY_STORE_REDIS_URL="+rs.URL())
	rs.Stop()
	resp, err := http.Get("http://" + s.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"store"`) {
		t.Errorf("readyz with Redis down: %d %s", resp.StatusCode, body)
	}
	r := runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, "consent", "grant", "a@example.com", "newsletter")
	if r.code != 1 || !strings.Contains(r.stderr, "unavailable") {
		t.Errorf("grant with Redis down: %d %q", r.code, r.stderr)
	}
}

func TestServeRefusesUnreachableRedis(t *testing.T) {
	r := runCmd(t, t.TempDir(), "", []string{"OPTINPROXY_STORE_REDIS_URL=redis://127.0.0.1:1/0",
		"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "store.redis") {
		t.Errorf("serve with no Redis: %d %q", r.code, r.stderr)
	}
}
