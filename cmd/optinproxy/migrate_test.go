package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// migrateLedger writes the key file of teststore.Keys into dir/data, as
// serve makes it, and n subjects into the embedded store there, each
// with a grant and two receipts, and one erased subject.
func migrateLedger(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "ledger.key"), teststore.Keys.Get().Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sourceStore(t, dir)
	defer s.Close()
	seedLedger(t, s, n)
}

// sourceStore opens the embedded store of dir.
func sourceStore(t *testing.T, dir string) optin.Store {
	return teststore.File(t, filepath.Join(dir, "data", "optinproxy.db"))
}

func seedLedger(t *testing.T, s optin.Store, n int) {
	t.Helper()
	l := storetest.SeedLedger(t, s, time.Now)
	storetest.Seed(t, s, n, storetest.GrantedWithReceipts(l, 2))
	if _, err := l.Erase(t.Context(), storetest.SeedAddress(n), optin.ErasureRequest{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

// sameStores checks that b holds what a does: Verify's counts, and
// subjects read alike.
func sameStores(t *testing.T, a, b optin.Store, n int) {
	t.Helper()
	ctx := context.Background()
	ra, erra := a.Verify(ctx)
	rb, errb := b.Verify(ctx)
	if erra != nil || errb != nil || ra.Subjects != n+1 || ra.Subjects != rb.Subjects || ra.Events != rb.Events || ra.Receipts != rb.Receipts || len(rb.Broken) != 0 {
		t.Errorf("Verify: copy %+v (%v), source %+v (%v)", rb, errb, ra, erra)
	}
	for _, i := range []int{0, n / 2, n - 1, n} {
		x := storetest.SeedAddress(i)
		va, erra := a.Subject(ctx, x, 10)
		vb, errb := b.Subject(ctx, x, 10)
		if erra != nil || errb != nil || va.Erased != vb.Erased || len(va.Events) != len(vb.Events) || len(va.Consents) != len(vb.Consents) {
			t.Errorf("Subject(%s): copy %+v (%v), source %+v (%v)", x, vb, errb, va, erra)
			continue
		}
		for k := range va.Events {
			if va.Events[k].Hash != vb.Events[k].Hash || va.Events[k].Prev != vb.Events[k].Prev {
				t.Errorf("Subject(%s) event %d: copy %s, source %s", x, k, vb.Events[k].Hash, va.Events[k].Hash)
			}
		}
	}
}

// TestMigrateBothWays: the embedded store's ledger goes to Redis and
// from there into another folder, whole, each copy verified by the
// command and compared here; a second run into a finished copy is
// refused.
func TestMigrateBothWays(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	migrateLedger(t, dir, n)
	srv := redistest.Start(t)

	r := runCmd(t, dir, "", nil, "migrate", "--to", srv.URL())
	if r.code != 0 || !strings.Contains(r.stdout, "every chain is intact") || !strings.Contains(r.stderr, fmt.Sprintf("copied %d subjects", n+1)) {
		t.Fatalf("migrate to Redis: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "@sweep.example") {
		t.Errorf("migrate printed an address:\n%s\n%s", r.stdout, r.stderr)
	}
	back := t.TempDir()
	redisEnv := []string{"OPTINPROXY_STORE_REDIS_URL=" + srv.URL()}
	r = runCmd(t, dir, "", redisEnv, "migrate", "--to", back)
	if r.code != 0 || !strings.Contains(r.stdout, "every chain is intact") {
		t.Fatalf("migrate back to a folder: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	// The key stayed in the old store.path: the command says where it is
	// and what to set, and a proxy set so starts on the copy.
	key := filepath.Join(dir, "data", "ledger.key")
	if want := fmt.Sprintf("when store.path becomes %s, set store.key_file to %s", back, key); !strings.Contains(r.stdout, want) {
		t.Errorf("migrate back does not say %q:\n%s", want, r.stdout)
	}
	if r := runCmd(t, dir, "", nil, "migrate", "--to", srv.URL()); r.code != 1 || !strings.Contains(r.stderr, "already holds a ledger") {
		t.Errorf("migrate into a finished copy: exit %d, stderr %s", r.code, r.stderr)
	}

	src := sourceStore(t, dir)
	sameStores(t, src, teststore.Redis(t, srv), n)
	copied := teststore.File(t, filepath.Join(back, "optinproxy.db"))
	sameStores(t, src, copied, n)
	copied.Close() // the file's lock is the proxy's now
	startServe(t, t.TempDir(), "OPTINPROXY_STORE_PATH="+back, "OPTINPROXY_STORE_KEY_FILE="+key)
}

// TestMigrateRefuses: a target that holds another ledger, a Redis that
// does not answer, a node of a Redis Cluster, a source locked by its server and the source itself
// are refused with a message that says so, the source left as it was.
func TestMigrateRefuses(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	migrateLedger(t, dir, n)

	other := redistest.Start(t)
	seedLedger(t, teststore.Redis(t, other), 1)
	r := runCmd(t, dir, "", nil, "migrate", "--to", other.URL())
	if r.code != 1 || !strings.Contains(r.stderr, "already holds a ledger\n") || !strings.Contains(r.stderr, "empty store only") || strings.Contains(r.stderr, "unavailable") {
		t.Errorf("migrate into a Redis with a ledger: exit %d, stderr %s", r.code, r.stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "redis://:secret@" + l.Addr().String() + "/0"
	l.Close()
	r = runCmd(t, dir, "", nil, "migrate", "--to", dead)
	if r.code != 1 || !strings.Contains(r.stderr, "the target redis://:xxxxx@"+l.Addr().String()) || !strings.Contains(r.stderr, "unavailable") ||
		strings.Contains(r.stderr, "secret") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("migrate to a dead Redis: exit %d, stderr %s", r.code, r.stderr)
	}

	node := redistest.StartWith(t, redistest.Options{Args: []string{"--cluster-enabled", "yes"}})
	r = runCmd(t, dir, "", nil, "migrate", "--to", node.URL())
	if r.code != 1 || !strings.Contains(r.stderr, "is a node of a Redis Cluster, which migrate cannot copy into") {
		t.Errorf("migrate into a Cluster node: exit %d, stderr %s", r.code, r.stderr)
	}

	if r := runCmd(t, dir, "", nil, "migrate", "--to", "data"); r.code != 2 || !strings.Contains(r.stderr, "the configured store itself") {
		t.Errorf("migrate into the source: exit %d, stderr %s", r.code, r.stderr)
	}
	if r := runCmd(t, t.TempDir(), "", nil, "migrate", "--to", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "no ledger to migrate") {
		t.Errorf("migrate without a key file: exit %d, stderr %s", r.code, r.stderr)
	}

	src := sourceStore(t, dir)
	r = runCmd(t, dir, "", nil, "migrate", "--to", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another process") || !strings.Contains(r.stderr, "stop every proxy") {
		t.Errorf("migrate of a locked store: exit %d, stderr %s", r.code, r.stderr)
	}
	// rotate-key knows the lock by the same error, and says to stop the server.
	r = runCmd(t, dir, "", nil, "rotate-key")
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another process") || !strings.Contains(r.stderr, "locked by its running server") {
		t.Errorf("rotate-key of a locked store: exit %d, stderr %s", r.code, r.stderr)
	}
	if rep, err := src.Verify(context.Background()); err != nil || rep.Subjects != n+1 || rep.Events != 3*n+1 || len(rep.Broken) != 0 {
		t.Errorf("the source after the refusals: %+v, %v", rep, err)
	}
}

// TestMigrateResumesAfterKill: a migration killed part way is run again
// and ends with the whole ledger, each subject once.
func TestMigrateResumesAfterKill(t *testing.T) {
	const n = 12000
	dir := t.TempDir()
	migrateLedger(t, dir, n)
	srv := redistest.Start(t)

	cmd, _ := migrateInterrupted(t, dir, srv.URL(), func(cmd *exec.Cmd) { cmd.Process.Kill() })
	if cmd.ProcessState.Success() {
		t.Fatal("migrate ended before it was killed: the ledger is too small to test a resumption")
	}

	// Half a ledger: a proxy pointed at it does not start.
	r := runCmd(t, dir, "", []string{"OPTINPROXY_STORE_REDIS_URL=" + srv.URL(), "OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "unfinished copy") || !strings.Contains(r.stderr, "run optinproxy migrate again") {
		t.Errorf("serve on a copy cut short: exit %d, stderr %s", r.code, r.stderr)
	}

	r = runCmd(t, dir, "", nil, "migrate", "--to", srv.URL())
	if r.code != 0 || !strings.Contains(r.stdout, "every chain is intact") || !strings.Contains(r.stderr, fmt.Sprintf("copied %d subjects", n+1)) {
		t.Fatalf("migrate again: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, fmt.Sprintf("%d written by this run", n+1)) {
		t.Errorf("the second run wrote every subject again: %s", r.stderr)
	}
	src := sourceStore(t, dir)
	sameStores(t, src, teststore.Redis(t, srv), n)
}

// migrateInterrupted runs migrate --to to in dir, calls interrupt at its
// first progress line, and returns the ended command and every line of
// its standard error.
func migrateInterrupted(t *testing.T, dir, to string, interrupt func(*exec.Cmd)) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(binary, "migrate", "--to", to)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var lines []string
	progressed := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !progressed && strings.Contains(sc.Text(), "subjects read") {
			progressed = true
			interrupt(cmd)
		}
	}
	cmd.Wait()
	if !progressed {
		t.Fatalf("migrate printed no progress before it ended:\n%s", strings.Join(lines, "\n"))
	}
	return cmd, lines
}

// TestMigrateBadArguments: a wrong invocation is one line and exit 2,
// before anything is opened.
func TestMigrateBadArguments(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "afile"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate"}, "--to is required"},
		{[]string{"migrate", "--to"}, "--to needs a value: the target"},
		{[]string{"migrate", "--to", "ftp://example.org/x"}, "want a redis:// or rediss:// URL"},
		{[]string{"migrate", "--to", "redis:///0"}, "with a host"},
		{[]string{"migrate", "--to", "redis://:pw@127.0.0.1:1", "--key-prefix", "{a}:"}, "braces"},
		{[]string{"migrate", "--to", "folder", "--key-prefix", "a:"}, "for a Redis target"},
		{[]string{"migrate", "--to", "folder", "stray"}, `takes no arguments, got "stray"`},
		{[]string{"migrate", "--to", "afile"}, "is a file"},
		{[]string{"migrate", "--bogus"}, "unknown flag --bogus; migrate takes --config, --key-prefix, --to"},
	} {
		r := runCmd(t, dir, "", nil, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || strings.Contains(r.stderr, "pw") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line saying %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// A configuration switched to Redis without migrate starts on an empty
// ledger: the start log says that the embedded ledger in store.path is
// left behind, and says it no more once the ledger was migrated.
func TestServeWarnsOfLedgerLeftBehind(t *testing.T) {
	dir := t.TempDir()
	migrateLedger(t, dir, 3)
	leftBehind := func(s *server) bool {
		return slices.ContainsFunc(s.logs.messages(), func(m string) bool {
			return strings.Contains(m, "holds an embedded ledger this configuration does not use")
		})
	}
	if s := startServe(t, dir); leftBehind(s) {
		t.Error("warned on the embedded store itself")
	} else {
		s.cmd.Process.Kill()
		<-s.done
	}
	redis := redistest.Start(t)
	env := "OPTINPROXY_STORE_REDIS_URL=" + redis.URL()
	s := startServe(t, dir, env)
	if !leftBehind(s) {
		t.Errorf("no warning of the ledger left behind:\n%s", strings.Join(s.logs.messages(), "\n"))
	}
	s.cmd.Process.Kill()
	<-s.done
	if r := runCmd(t, dir, "", nil, "migrate", "--to", redis.URL()); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if s := startServe(t, dir, env); leftBehind(s) {
		t.Error("warned after the migration")
	}
}
