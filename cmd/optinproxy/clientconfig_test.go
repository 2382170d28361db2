package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The API commands find the server and a token in the server's own
// configuration (--config or OPTINPROXY_CONFIG): the address from
// http.listen, a wildcard host meaning loopback, and the first token
// with the scope the command needs. Flags and the environment win.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	reader, writer := filepath.Join(dir, "reader.token"), filepath.Join(dir, "writer.token")
	os.WriteFile(reader, []byte("reader-token-0123456789\n"), 0o600)
	os.WriteFile(writer, []byte("writer-token-0123456789\n"), 0o600)
	cfg := filepath.Join(dir, "optinproxy.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `http:
  listen: ":%d"
admin:
  tokens:
    - {name: reader, token_file: %s, scopes: [read]}
    - {name: writer, token_file: %s, scopes: [read, write]}
`, port, reader, writer), 0o600)
	startServe(t, dir, "OPTINPROXY_CONFIG="+cfg, fmt.Sprintf("OPTINPROXY_HTTP_LISTEN=:%d", port))

	// Elsewhere, where no ./data/admin.token could help.
	elsewhere := t.TempDir()
	cli := func(env []string, args ...string) result { return runCmd(t, elsewhere, "", env, args...) }
	// Granting needs write: the reader is passed over for the writer.
	mustOut(t, cli(nil, "consent", "grant", "jan@example.com", "newsletter", "--config", cfg), "jan@example.com newsletter: granted")
	out := mustOut(t, cli([]string{"OPTINPROXY_CONFIG=" + cfg}, "consent", "show", "jan@example.com"), "newsletter  granted")
	if !strings.Contains(out, "token:writer") {
		t.Errorf("the grant was not made with the writer's token:\n%s", out)
	}

	// No token has erase: say which there are and what would do.
	r := cli(nil, "erase", "jan@example.com", "--config", cfg)
	want := cfg + " has no admin.tokens entry with a token_file and scope erase (have: reader [read], writer [read write])"
	if r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--token") {
		t.Errorf("no erase token: %d %q, want %q", r.code, r.stderr, want)
	}

	// A 401 names the token file used: the reader's file no longer holds
	// the token the server read.
	os.WriteFile(reader, []byte("changed-since-the-server-started\n"), 0o600)
	r = cli(nil, "verify", "--config", cfg)
	want = fmt.Sprintf("the token came from %s (admin.tokens[0] \"reader\" of %s); the server is http://127.0.0.1:%d", reader, cfg, port)
	if r.code != 1 || !strings.Contains(r.stderr, "unauthorized") || !strings.Contains(r.stderr, want) {
		t.Errorf("stale token file: %d %q, want %q", r.code, r.stderr, want)
	}
	os.WriteFile(reader, []byte("reader-token-0123456789\n"), 0o600)
	mustOut(t, cli(nil, "verify", "--config", cfg), "every chain is intact")

	// --token, then OPTINPROXY_TOKEN, win over the file's token.
	r = cli(nil, "verify", "--config", cfg, "--token", "wrong")
	if r.code != 1 || !strings.Contains(r.stderr, "the token came from --token") {
		t.Errorf("--token with --config: %d %q", r.code, r.stderr)
	}
	r = cli([]string{"OPTINPROXY_TOKEN=wrong", "OPTINPROXY_CONFIG=" + cfg}, "verify")
	if r.code != 1 || !strings.Contains(r.stderr, "the token came from OPTINPROXY_TOKEN") {
		t.Errorf("OPTINPROXY_TOKEN with OPTINPROXY_CONFIG: %d %q", r.code, r.stderr)
	}
	// --addr, then OPTINPROXY_ADDR, win over http.listen.
	for _, env := range [][]string{nil, {"OPTINPROXY_ADDR=127.0.0.1:1"}} {
		args := []string{"verify", "--config", cfg}
		if env == nil {
			args = append(args, "--addr", "127.0.0.1:1")
		}
		r = cli(env, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the server at http://127.0.0.1:1") {
			t.Errorf("address given with --config %v: %d %q", env, r.code, r.stderr)
		}
	}
	// Without a file, the variables the server was started with lead
	// there too: its address, and the token it made in store.path.
	store := filepath.Join(t.TempDir(), "store")
	s := startServe(t, t.TempDir(), "OPTINPROXY_STORE_PATH="+store)
	env := []string{"OPTINPROXY_HTTP_LISTEN=" + s.httpAddr, "OPTINPROXY_STORE_PATH=" + store}
	mustOut(t, cli(env, "verify"), "every chain is intact")
	r = cli(env[:1], "verify")
	if want := "made data/admin.token"; r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("token elsewhere: %d %q, want %q", r.code, r.stderr, want)
	}
	r = cli([]string{env[0], "OPTINPROXY_STORE_PATH=/nonexistent"}, "verify")
	if want := "made /nonexistent/admin.token"; r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("token of another store.path: %d %q, want %q", r.code, r.stderr, want)
	}
	os.WriteFile(filepath.Join(store, "admin.token"), []byte("stale\n"), 0o600)
	r = cli(env, "verify")
	if want := "the token came from " + filepath.Join(store, "admin.token"); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("stale token of store.path: %d %q, want %q", r.code, r.stderr, want)
	}
}
