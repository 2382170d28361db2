package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
	"optinproxy/optin/redisstore"
	"optinproxy/optin/storetest"
)

// migrateLedger is a ledger key file in dir/data, as serve makes it, and
// the keys it holds.
func migrateLedger(t *testing.T, dir string) *optin.Keys {
	t.Helper()
	ring := optin.NewKeyring(time.Now())
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "ledger.key"), ring.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	return optin.StaticKeys(ring)
}

// seedFile writes n subjects into the embedded store of dir, each with
// a grant and two receipts, and one erased subject.
func seedFile(t *testing.T, dir string, keys *optin.Keys, n int) {
	t.Helper()
	s, err := filestore.Open(filepath.Join(dir, "data", "optinproxy.db"), filestore.Options{Timeout: time.Second, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seedLedger(t, s, n)
}

func seedLedger(t *testing.T, s optin.Store, n int) {
	t.Helper()
	l := storetest.SeedLedger(t, s, time.Now)
	storetest.Seed(t, s, n, func(i int, a optin.Address) []optin.Change {
		ch, err := l.GrantChange(a, "newsletter", optin.ConsentChange{Source: "import", Actor: "test"})
		if err != nil {
			panic(err)
		}
		out := []optin.Change{ch}
		for k := range 2 {
			out = append(out, optin.Receipt{Subject: a, Purpose: "newsletter", Actor: "smtp:crm", Time: time.Now(),
				Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent}, Relayed: true,
				Details: optin.ReceiptDetails{MessageID: fmt.Sprintf("<%d.%d@test>", i, k)}}.Change())
		}
		return out
	})
	if _, err := l.Erase(t.Context(), storetest.SeedAddress(n), optin.ErasureRequest{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

func openRedis(t *testing.T, url string, keys *optin.Keys) optin.Store {
	t.Helper()
	client, err := redisstore.NewClient(url, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.Open(context.Background(), redisstore.Options{Client: client, Keys: keys})
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
	keys := migrateLedger(t, dir)
	seedFile(t, dir, keys, n)
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
	if r := runCmd(t, dir, "", nil, "migrate", "--to", srv.URL()); r.code != 1 || !strings.Contains(r.stderr, "holds another ledger") {
		t.Errorf("migrate into a finished copy: exit %d, stderr %s", r.code, r.stderr)
	}

	src, err := filestore.Open(filepath.Join(dir, "data", "optinproxy.db"), filestore.Options{Timeout: time.Second, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sameStores(t, src, openRedis(t, srv.URL(), keys), n)
	dst, err := filestore.Open(filepath.Join(back, "optinproxy.db"), filestore.Options{Timeout: time.Second, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	sameStores(t, src, dst, n)
}

// TestMigrateRefuses: a target that holds another ledger, a Redis that
// does not answer, a source locked by its server and the source itself
// are refused with a message that says so, the source left as it was.
func TestMigrateRefuses(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	keys := migrateLedger(t, dir)
	seedFile(t, dir, keys, n)

	other := redistest.Start(t)
	seedLedger(t, openRedis(t, other.URL(), keys), 1)
	r := runCmd(t, dir, "", nil, "migrate", "--to", other.URL())
	if r.code != 1 || !strings.Contains(r.stderr, "holds another ledger") || !strings.Contains(r.stderr, "empty store only") {
		t.Errorf("migrate into a Redis with a ledger: exit %d, stderr %s", r.code, r.stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "redis://:secret@" + l.Addr().String() + "/0"
	l.Close()
	r = runCmd(t, dir, "", nil, "migrate", "--to", dead)
	if r.code != 1 || !strings.Contains(r.stderr, "the target redis://:xxxxx@"+l.Addr().String()) || !strings.Contains(r.stderr, "unavailable") || strings.Contains(r.stderr, "secret") {
		t.Errorf("migrate to a dead Redis: exit %d, stderr %s", r.code, r.stderr)
	}

	if r := runCmd(t, dir, "", nil, "migrate", "--to", "data"); r.code != 2 || !strings.Contains(r.stderr, "the configured store itself") {
		t.Errorf("migrate into the source: exit %d, stderr %s", r.code, r.stderr)
	}
	if r := runCmd(t, t.TempDir(), "", nil, "migrate", "--to", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "no ledger to migrate") {
		t.Errorf("migrate without a key file: exit %d, stderr %s", r.code, r.stderr)
	}

	src, err := filestore.Open(filepath.Join(dir, "data", "optinproxy.db"), filestore.Options{Timeout: time.Second, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r = runCmd(t, dir, "", nil, "migrate", "--to", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another process") || !strings.Contains(r.stderr, "stop every proxy") {
		t.Errorf("migrate of a locked store: exit %d, stderr %s", r.code, r.stderr)
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
	keys := migrateLedger(t, dir)
	seedFile(t, dir, keys, n)
	srv := redistest.Start(t)

	cmd := exec.Command(binary, "migrate", "--to", srv.URL())
	cmd.Dir, cmd.Env = dir, cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	progressed := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "subjects read") {
			progressed = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !progressed {
		t.Fatal("migrate printed no progress before it ended")
	}
	if cmd.ProcessState.Success() {
		t.Fatal("migrate ended before it was killed: the ledger is too small to test a resumption")
	}

	r := runCmd(t, dir, "", nil, "migrate", "--to", srv.URL())
	if r.code != 0 || !strings.Contains(r.stdout, "every chain is intact") || !strings.Contains(r.stderr, fmt.Sprintf("copied %d subjects", n+1)) {
		t.Fatalf("migrate again: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("the second run: %s", r.stderr)
	if strings.Contains(r.stderr, fmt.Sprintf("%d written by this run", n+1)) {
		t.Errorf("the second run wrote every subject again: %s", r.stderr)
	}
	src, err := filestore.Open(filepath.Join(dir, "data", "optinproxy.db"), filestore.Options{Timeout: time.Second, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sameStores(t, src, openRedis(t, srv.URL(), keys), n)
}
