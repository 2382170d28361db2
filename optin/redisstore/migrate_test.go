package redisstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// TestMigrateV1: a schema 1 store opens with a key file made from its
// own ledger key; afterwards everything reads as before, and neither the
// keyspace nor the server's files hold anything personal or the key.
func TestMigrateV1(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "v1.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := redistest.StartWith(t, redistest.Options{Dir: dir, Args: []string{"--dbfilename", "dump.rdb", "--save", "3600 1"}})
	ctx := context.Background()
	c := testClient(srv)
	defer c.Close()
	lk, err := LegacyKey(ctx, c, "")
	if err != nil || len(lk) != optin.KeySize {
		t.Fatalf("LegacyKey: %d bytes, %v", len(lk), err)
	}
	if _, err := tryOpen(srv, Options{Keys: optin.StaticKeys(optin.NewKeyring(time.Now()))}); !errors.Is(err, optin.ErrBadKey) {
		t.Fatalf("Open of a schema 1 store with another key: %v", err)
	}
	if v, _ := c.HGet(ctx, "optin:meta", metaVersion).Result(); v != schemaV1 {
		t.Fatalf("a refused migration changed the store: version %q", v)
	}

	keys := optin.StaticKeys(optin.NewKeyringFrom(lk, time.Now()))
	s := openOn(t, srv, Options{Keys: keys})
	storetest.CheckSchema1(t, s)
	if lk, err := LegacyKey(ctx, c, ""); err != nil || lk != nil {
		t.Errorf("LegacyKey after the migration: %d bytes, %v", len(lk), err)
	}
	// The migration asked for a new snapshot; wait for it, then scan.
	for i := 0; ; i++ {
		info, err := c.Info(ctx, "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "rdb_bgsave_in_progress:0") && strings.Contains(info, "aof_rewrite_in_progress:0") {
			break
		}
		if i == 200 {
			t.Fatal("the snapshot after the migration did not finish in 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	all := raw(t, s)
	for _, secret := range storetest.Schema1Secrets {
		if bytes.Contains(bytes.ToLower(all), bytes.ToLower([]byte(secret))) {
			t.Errorf("after the migration the store or its files hold %q", secret)
		}
	}
	if bytes.Contains(all, lk) {
		t.Error("after the migration the store or its files hold the ledger key")
	}
	// Opened again (another instance), nothing more to do.
	storetest.CheckSchema1(t, openOn(t, srv, Options{Keys: keys}))
}
