package filestore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// v1Copy copies testdata/v1.db, written by the schema 1 store (see
// storetest.CheckSchema1), for a test to migrate.
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
	storetest.CheckSchema1(t, s)
	raw, _ := os.ReadFile(path)
	for _, secret := range storetest.Schema1Secrets {
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
