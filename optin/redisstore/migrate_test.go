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
)

// testdata/v1.rdb was written by the schema 1 store (commit cbfb03e), the
// same subjects as optin/filestore/testdata/v1.db: see there.
var v1Secrets = []string{"jan.jansen@example.com", "piet@example.org", "info@bakkerij.example", "kees@example.net",
	"müller.example", "192.0.2.77", "EvidenceAgent", "Bakkerij newsletter", "spring-sale-evidence"}

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
	checkMigrated(t, s)
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
	for _, secret := range v1Secrets {
		if bytes.Contains(bytes.ToLower(all), bytes.ToLower([]byte(secret))) {
			t.Errorf("after the migration the store or its files hold %q", secret)
		}
	}
	if bytes.Contains(all, lk) {
		t.Error("after the migration the store or its files hold the ledger key")
	}
	// Opened again (another instance), nothing more to do.
	checkMigrated(t, openOn(t, srv, Options{Keys: keys}))
}

// checkMigrated checks what testdata/v1.rdb held, read through s.
func checkMigrated(t *testing.T, s optin.Store) {
	t.Helper()
	ctx := context.Background()
	a := func(s string) optin.Address { x, _ := optin.ParseAddress(s); return x }
	jan := a("jan.jansen@example.com")
	v, err := s.Subject(ctx, jan, 10)
	if err != nil {
		t.Fatalf("Subject after the migration: %v", err)
	}
	if len(v.Consents) != 1 || v.Consents[0].Status != optin.StatusWithdrawn || len(v.Events) != 2 ||
		v.Events[0].Subject != jan || optin.EvidenceOf(v.Events[0]) == nil || optin.EvidenceOf(v.Events[0]).IP != "192.0.2.77" {
		t.Errorf("jan after the migration: %+v", v)
	}
	sts, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Message: "mid:<m1@crm.shop.example>",
		Addresses: []optin.Address{a("piet@example.org"), a("info@bakkerij.example"), a("kees@example.net"), a("jürgen@müller.example")}})
	if err != nil {
		t.Fatal(err)
	}
	if c := sts[0].Consent; c == nil || c.Status != optin.StatusGranted || len(sts[0].Suppressions) != 1 {
		t.Errorf("piet after the migration: %+v", sts[0])
	}
	if !sts[1].Delivered || sts[2].Delivered || sts[3].Consent == nil {
		t.Errorf("marks and consents after the migration: %+v", sts)
	}
	page, err := s.Suppressions(ctx, "", 10)
	if err != nil || len(page.Suppressions) != 1 || page.Suppressions[0].Subject != a("piet@example.org") {
		t.Errorf("suppressions after the migration: %+v %v", page, err)
	}
	events, err := s.Events(ctx, optin.EventQuery{Limit: 100})
	if err != nil || len(events.Events) != 8 {
		t.Errorf("the log after the migration: %d events, %v", len(events.Events), err)
	}
	for _, e := range events.Events {
		if e.Subject.IsZero() || e.Erased {
			t.Errorf("an event does not open after the migration: %+v", e)
		}
	}
	r, err := s.Verify(ctx)
	if err != nil || r.Subjects != 5 || r.Events != 8 || len(r.Broken) != 0 {
		t.Errorf("Verify after the migration: %+v %v", r, err)
	}
}
