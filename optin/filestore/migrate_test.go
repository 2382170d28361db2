package filestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// The file testdata/v1.db was written by the schema 1 store (commit
// cbfb03e): Jan.Jansen@Example.com granted the newsletter with evidence
// and withdrew; piet@example.org granted (dated two days before) and has
// a hard_bounce suppression; jürgen@müller.example granted; and three
// receipts, two with delivery marks until 2099: info@bakkerij.example
// and jürgen relayed, kees@example.net blocked.
var v1Secrets = []string{"jan.jansen@example.com", "piet@example.org", "info@bakkerij.example", "kees@example.net",
	"müller.example", "192.0.2.77", "EvidenceAgent", "Bakkerij newsletter", "spring-sale-evidence"}

func v1Copy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "optinproxy.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMigrateV1: a schema 1 file opens with a key file made from its own
// ledger key, and afterwards everything reads as before while nothing
// personal is left in the file, freed pages included.
func TestMigrateV1(t *testing.T) {
	path := v1Copy(t)
	before, _ := os.ReadFile(path)
	if !bytes.Contains(before, []byte("piet@example.org")) {
		t.Fatal("the fixture does not hold the addresses it should: the scan below would prove nothing")
	}
	lk, err := LegacyKey(path, time.Second)
	if err != nil || len(lk) != optin.KeySize {
		t.Fatalf("LegacyKey: %d bytes, %v", len(lk), err)
	}

	// Another key is refused, and the file stays as it was.
	_, err = Open(path, Options{Keys: optin.StaticKeys(optin.NewKeyring(time.Now())), Timeout: time.Second})
	if !errors.Is(err, optin.ErrBadKey) || !strings.Contains(err.Error(), "earlier optinproxy") {
		t.Fatalf("Open of a schema 1 file with another key: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused migration changed the file")
	}

	keys := optin.StaticKeys(optin.NewKeyringFrom(lk, time.Now()))
	s, err := Open(path, Options{Keys: keys, Timeout: time.Second})
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer s.Close()
	checkMigrated(t, s)
	raw, _ := os.ReadFile(path)
	for _, secret := range v1Secrets {
		if bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(secret))) {
			t.Errorf("the migrated file still holds %q", secret)
		}
	}
	if bytes.Contains(raw, lk) {
		t.Error("the migrated file still holds the ledger key")
	}
	s.Close()
	if lk, err := LegacyKey(path, time.Second); err != nil || lk != nil {
		t.Errorf("LegacyKey after the migration: %d bytes, %v", len(lk), err)
	}
	again, err := Open(path, Options{Keys: keys, Timeout: time.Second})
	if err != nil {
		t.Fatalf("reopening the migrated file: %v", err)
	}
	again.Close()
}

// checkMigrated checks what testdata/v1.db held, read through s.
func checkMigrated(t *testing.T, s optin.Store) {
	t.Helper()
	ctx := context.Background()
	addr := func(s string) optin.Address { a, _ := optin.ParseAddress(s); return a }
	jan := addr("jan.jansen@example.com")
	v, err := s.Subject(ctx, jan, 10)
	if err != nil {
		t.Fatalf("Subject after the migration: %v", err)
	}
	if len(v.Consents) != 1 || v.Consents[0].Status != optin.StatusWithdrawn || len(v.Events) != 2 ||
		v.Events[0].Subject != jan || optin.EvidenceOf(v.Events[0]) == nil || optin.EvidenceOf(v.Events[0]).IP != "192.0.2.77" {
		t.Errorf("jan after the migration: %+v", v)
	}
	sts, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Message: "mid:<m1@crm.shop.example>",
		Addresses: []optin.Address{addr("piet@example.org"), addr("info@bakkerij.example"), addr("kees@example.net"), addr("jürgen@müller.example")}})
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
	if err != nil || len(page.Suppressions) != 1 || page.Suppressions[0].Subject != addr("piet@example.org") {
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
