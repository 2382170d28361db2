package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
)

// TestTwoProxiesOnAFlushedRedis: two proxies with one key file share a
// Redis that loses its data while they serve, by FLUSHALL and by a
// restart without persistence. Both notice (/readyz, the log); a grant
// through one and a withdrawal through the other land on one record, and
// neither relays marketing to that address afterwards (subject
// ids come from the key file, not from the store).
func TestTwoProxiesOnAFlushedRedis(t *testing.T) {
	rs := redistest.Start(t) // no persistence: a restart comes back empty
	env := []string{"OPTINPROXY_STORE_REDIS_URL=" + rs.URL()}
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startServe(t, dirA, env...)
	key, err := os.ReadFile(filepath.Join(dirA, "data", "ledger.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dirB, "data"), 0o700)
	if err := os.WriteFile(filepath.Join(dirB, "data", "ledger.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startServe(t, dirB, env...)
	cli := func(s *server, args ...string) {
		t.Helper()
		if r := runCmd(t, s.dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, args...); r.code != 0 {
			t.Fatalf("%v through %s: %s%s", args, s.httpAddr, r.stdout, r.stderr)
		}
	}
	newsletter := func(s *server) (int, string) {
		return swaksSend(t, s.smtpAddr, "jan@example.com", "--header", "X-Optin-Purpose: newsletter", "--body", "Lente")
	}
	wantRelayed := func(what string, s *server) {
		t.Helper()
		if code, out := newsletter(s); code != 0 || !strings.Contains(out, "relayed 1, blocked 0") {
			t.Errorf("%s: exit %d\n%s", what, code, out)
		}
	}
	wantBlocked := func(what string, s *server) {
		t.Helper()
		if code, out := newsletter(s); code == 0 || !strings.Contains(out, "550 5.7.1") {
			t.Errorf("%s: exit %d, want 550\n%s", what, code, out)
		}
	}
	cli(a, "consent", "grant", "jan@example.com", "newsletter")
	wantRelayed("the other proxy after a grant", b)

	for _, loss := range []struct {
		name string
		lose func()
	}{
		{"FLUSHALL", func() {
			c := redis.NewClient(&redis.Options{Addr: rs.Addr})
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"a restart without persistence", rs.Restart},
	} {
		loss.lose()
		// The consent is gone: fail closed on both.
		wantBlocked("after "+loss.name+", before anything else", a)
		wantBlocked("after "+loss.name+", before anything else", b)
		for _, s := range []*server{a, b} {
			if body := waitNotReady(t, s); !strings.Contains(body, "data lost") {
				t.Errorf("after %s, /readyz of %s: %s", loss.name, s.httpAddr, body)
			}
		}
		cli(a, "consent", "grant", "jan@example.com", "newsletter")
		wantRelayed("after "+loss.name+", a grant through one, mail through the other", b)
		cli(b, "consent", "withdraw", "jan@example.com", "newsletter")
		wantBlocked("after "+loss.name+" and a withdrawal through the other", a)
		wantBlocked("after "+loss.name+" and a withdrawal through the same", b)
	}
	for _, s := range []*server{a, b} {
		s.logs.waitFor(t, "the consent store lost its data: consents recorded before are gone, so marketing mail is blocked until they are back; restore the store from a backup and restart", 15*time.Second)
	}
}

// waitNotReady polls /readyz (bounded) until it answers 503, and returns
// the body.
func waitNotReady(t *testing.T, s *server) string {
	t.Helper()
	var body []byte
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + s.httpAddr + "/readyz")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				return string(body)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("/readyz of %s stayed ready: %s", s.httpAddr, body)
	return string(body)
}
