package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
	"optinproxy/optin/redisstore"
)

// noAddresses fails when migrate's output shows a seeded address.
func noAddresses(t *testing.T, what string, r result) {
	t.Helper()
	if strings.Contains(r.stdout+r.stderr, "@sweep.example") {
		t.Errorf("%s printed an address:\n%s\n%s", what, r.stdout, r.stderr)
	}
}

// TestMigrateTargetDiesMidCopy: the Redis target killed part way ends
// migrate with one error that says to run it again; after Redis is back
// the run again finishes and verifies the whole ledger.
func TestMigrateTargetDiesMidCopy(t *testing.T) {
	const n = 12000
	dir := t.TempDir()
	migrateLedger(t, dir, n)
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})

	cmd, lines := migrateInterrupted(t, dir, srv.URL(), func(*exec.Cmd) { srv.Stop() })
	out := strings.Join(lines, "\n")
	if cmd.ProcessState.Success() {
		t.Fatalf("migrate succeeded although its target died:\n%s", out)
	}
	last := lines[len(lines)-1]
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(last, "copying stopped after") || !strings.Contains(last, "run migrate again") {
		t.Errorf("migrate with its target gone: exit %d, stderr:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	if strings.Contains(out, "@sweep.example") || strings.Contains(out, "panic") {
		t.Errorf("migrate's stderr:\n%s", out)
	}

	srv.Restart()
	r := runCmd(t, dir, "", nil, "migrate", "--to", srv.URL())
	if r.code != 0 || !strings.Contains(r.stdout, "every chain is intact") || !strings.Contains(r.stderr, fmt.Sprintf("copied %d subjects", n+1)) {
		t.Fatalf("migrate after the restart: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	noAddresses(t, "migrate after the restart", r)
	sameStores(t, sourceStore(t, dir), teststore.Redis(t, srv), n)
}

// anotherLedger makes a ledger of n subjects in dir under a key of its
// own, not teststore.Keys.
func anotherLedger(t *testing.T, dir string, n int) {
	t.Helper()
	k := optin.NewKeyring(time.Now())
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "ledger.key"), k.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := filestore.Open(filepath.Join(dir, "data", "optinproxy.db"), filestore.Options{Timeout: 5 * time.Second, Keys: optin.StaticKeys(k)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seedLedger(t, s, n)
}

// TestMigrateTargetOfAnotherKey: a target that holds a ledger under
// another key, finished or a copy cut short, is refused with words that
// say so; the copy of the first ledger still finishes after that.
func TestMigrateTargetOfAnotherKey(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	migrateLedger(t, first, 5)
	anotherLedger(t, second, 5)

	// A finished ledger of the first key.
	done := redistest.Start(t)
	if r := runCmd(t, first, "", nil, "migrate", "--to", done.URL()); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	r := runCmd(t, second, "", nil, "migrate", "--to", done.URL())
	if r.code != 1 || !strings.Contains(r.stderr, "the target") || strings.Contains(r.stdout, "every chain is intact") {
		t.Errorf("migrate into a ledger of another key: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	noAddresses(t, "migrate into a ledger of another key", r)

	// A folder target holding a copy of the first key.
	folder := t.TempDir()
	if r := runCmd(t, first, "", nil, "migrate", "--to", folder); r.code != 0 {
		t.Fatalf("migrate to a folder: exit %d\n%s", r.code, r.stderr)
	}
	r = runCmd(t, second, "", nil, "migrate", "--to", folder)
	if r.code != 1 || !strings.Contains(r.stderr, "the target") || strings.Contains(r.stdout, "every chain is intact") {
		t.Errorf("migrate into a folder of another key: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("refusals:\n%s", r.stderr)
	sameStores(t, sourceStore(t, first), teststore.File(t, filepath.Join(folder, "optinproxy.db")), 5)
}

// TestMigrateCorruptSource: a truncated embedded store is an error that
// names the file, not a panic.
func TestMigrateCorruptSource(t *testing.T) {
	for _, size := range []func(int64) int64{
		func(n int64) int64 { return n / 2 },
		func(n int64) int64 { return n / 4 },
		func(n int64) int64 { return 100 },
	} {
		dir := t.TempDir()
		migrateLedger(t, dir, 50)
		db := filepath.Join(dir, "data", "optinproxy.db")
		fi, err := os.Stat(db)
		if err != nil {
			t.Fatal(err)
		}
		to := size(fi.Size())
		if err := os.Truncate(db, to); err != nil {
			t.Fatal(err)
		}
		target := t.TempDir()
		r := runCmd(t, dir, "", nil, "migrate", "--to", target)
		if r.code != 1 || strings.Contains(r.stderr, "panic") || !strings.Contains(r.stderr, "optinproxy.db") || strings.Contains(r.stdout, "every chain is intact") {
			t.Errorf("migrate of a store cut to %d of %d bytes: exit %d\nstdout %s\nstderr %s", to, fi.Size(), r.code, r.stdout, r.stderr)
		}
		t.Logf("cut to %d bytes: %s", to, r.stderr)
		noAddresses(t, "migrate of a truncated store", r)
	}
}

// TestMigrateTamperedSource: an event changed in the source is copied
// as stored; the verify of the target names the broken chain by its
// hash, not its address, and migrate exits 1.
func TestMigrateTamperedSource(t *testing.T) {
	const n = 5
	dir := t.TempDir()
	migrateLedger(t, dir, 0) // the key file; the ledger is in Redis
	srv := redistest.Start(t)
	seedLedger(t, teststore.Redis(t, srv), n)

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, redisstore.DefaultPrefix+"{*}:e").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the chains in Redis: %v, %v", keys, err)
	}
	tampered := false
	for _, k := range keys { // the first grant found; the erased subject's chain has none
		raw, err := rdb.LIndex(ctx, k, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, "newsletter") {
			if err := rdb.LSet(ctx, k, 0, strings.Replace(raw, "newsletter", "newsletteR", 1)).Err(); err != nil {
				t.Fatal(err)
			}
			tampered = true
			break
		}
	}
	if !tampered {
		t.Fatal("no event of a grant of newsletter in Redis")
	}

	r := runCmd(t, dir, "", []string{"OPTINPROXY_STORE_REDIS_URL=" + srv.URL()}, "migrate", "--to", t.TempDir())
	if r.code != 1 || strings.Count(r.stdout, "BROKEN: subject ") != 1 || !strings.HasSuffix(r.stderr, "optinproxy migrate: 1 broken chain\n") {
		t.Errorf("migrate of a tampered ledger: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	noAddresses(t, "migrate of a tampered ledger", r)
}
