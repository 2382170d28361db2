package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
)

// stopServe ends a server as an operator does (SIGTERM) and waits.
func stopServe(t *testing.T, s *server) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop within 20s of SIGTERM")
	}
}

// TestLedgerKeyFile: the first start makes the key file (0600) beside
// nothing else that holds it; later starts need that file (or the same
// key in OPTINPROXY_LEDGER_KEY), and another key or none is refused with
// a message that says what to do, leaving nothing behind.
func TestLedgerKeyFile(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	keyFile := filepath.Join(dir, "data", "ledger.key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file after the first start: %v, mode %v", err, fi)
	}
	cli := func(addr string, args ...string) result {
		return runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + addr}, args...)
	}
	if r := cli(s.httpAddr, "consent", "grant", "kees@example.com", "newsletter", "--ip", "192.0.2.44"); r.code != 0 {
		t.Fatalf("grant: %d %s", r.code, r.stderr)
	}
	stopServe(t, s)
	key, _ := os.ReadFile(keyFile)

	// Another key: refused, and the file is left as it was.
	if err := os.WriteFile(keyFile, optin.NewKeyring(time.Now()).Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, dir, "", []string{"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "another ledger key") || !strings.Contains(r.stderr, keyFile[len(dir)+1:]) {
		t.Errorf("serve with another key file: %d %s", r.code, r.stderr)
	}
	// No key file: refused, and the key made meanwhile is taken back.
	os.Remove(keyFile)
	r = runCmd(t, dir, "", []string{"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "did not exist") || !strings.Contains(r.stderr, "restore it") {
		t.Errorf("serve without the key file of a store: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Error("a refused start left a key file behind")
	}
	// The key in the environment instead of the file.
	s = startServe(t, dir, "OPTINPROXY_LEDGER_KEY="+strings.ReplaceAll(string(key), "\n", ";"))
	if r := cli(s.httpAddr, "consent", "show", "kees@example.com"); r.code != 0 || !strings.Contains(r.stdout, "192.0.2.44") {
		t.Errorf("show with the key from the environment: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Error("a start with the key in the environment wrote a key file")
	}
}

// TestLedgerKeyFileRedis: a proxy on Redis without the key file that
// made its store refuses to start, as the embedded store's does.
func TestLedgerKeyFileRedis(t *testing.T) {
	dir := t.TempDir()
	env := []string{"OPTINPROXY_STORE_REDIS_URL=" + redistest.Start(t).URL()}
	s := startServe(t, dir, env...)
	if r := runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, "consent", "grant", "kees@example.com", "newsletter"); r.code != 0 {
		t.Fatalf("grant: %s", r.stderr)
	}
	stopServe(t, s)
	keyFile := filepath.Join(dir, "data", "ledger.key")
	os.Remove(keyFile)
	r := runCmd(t, dir, "", append([]string{"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, env...), "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "store.redis") || !strings.Contains(r.stderr, "another ledger key") || !strings.Contains(r.stderr, "restore it") {
		t.Errorf("serve on Redis without its key file: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Error("a refused start left a key file behind")
	}
}

// TestRotateKey: on Redis, rotate-key runs beside a serving instance,
// which goes on reading every subject (it reads the key file again);
// --retire then drops the old generation. On the embedded store, whose
// server holds the file, it says to stop the server first.
func TestRotateKey(t *testing.T) {
	dir := t.TempDir()
	env := []string{"OPTINPROXY_STORE_REDIS_URL=" + redistest.Start(t).URL()}
	s := startServe(t, dir, env...)
	cli := func(args ...string) result {
		return runCmd(t, dir, "", append([]string{"OPTINPROXY_ADDR=" + s.httpAddr}, env...), args...)
	}
	for _, a := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if r := cli("consent", "grant", a, "newsletter", "--ip", "192.0.2.55"); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	r := cli("rotate-key")
	if r.code != 0 || !strings.Contains(r.stdout, "added generation 2") || !strings.Contains(r.stdout, "re-wrapped 3 subject keys") {
		t.Fatalf("rotate-key: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("rotate-key", "--retire", "2"); r.code == 0 {
		t.Errorf("retiring the newest generation: %s", r.stdout)
	}
	r = cli("rotate-key", "--retire", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "retired generation 1") {
		t.Fatalf("rotate-key --retire 1: %d %s%s", r.code, r.stdout, r.stderr)
	}
	k, err := readKeyFile(filepath.Join(dir, "data", "ledger.key"))
	if err != nil || k.Has(1) || !k.Has(2) {
		t.Fatalf("key file after retiring: %v %v", k.Generations(), err)
	}
	// The serving instance reads the re-wrapped subjects and makes new ones.
	if r := cli("consent", "show", "b@example.com"); r.code != 0 || !strings.Contains(r.stdout, "192.0.2.55") {
		t.Errorf("show after the rotation: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("consent", "grant", "d@example.com", "newsletter"); r.code != 0 {
		t.Errorf("grant after the rotation: %s", r.stderr)
	}
	if r := cli("verify"); r.code != 0 || !strings.Contains(r.stdout, "every chain is intact") {
		t.Errorf("verify after the rotation: %d %s", r.code, r.stdout)
	}

	fileDir := t.TempDir()
	startServe(t, fileDir)
	r = runCmd(t, fileDir, "", nil, "rotate-key")
	if r.code != 1 || !strings.Contains(r.stderr, "stop it, run rotate-key") {
		t.Errorf("rotate-key beside a server of the embedded store: %d %s", r.code, r.stderr)
	}
}
