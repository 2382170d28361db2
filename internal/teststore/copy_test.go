package teststore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
	"optinproxy/optin/redisstore"
	"optinproxy/optin/storetest"
)

// openFile opens an embedded store in a folder of the test's.
func openFile(t testing.TB, now func() time.Time, keys *optin.Keys) optin.Store {
	s, err := filestore.Open(filepath.Join(t.TempDir(), "optinproxy.db"), filestore.Options{Timeout: 5 * time.Second, Keys: keys, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openRedis opens a Redis store on a redis-server of its own.
func openRedis(t testing.TB, now func() time.Time, keys *optin.Keys) optin.Store {
	srv := redistest.Start(t)
	client, err := redisstore.NewClient(srv.URL(), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.Open(context.Background(), redisstore.Options{Client: client, Keys: keys, Now: now})
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCopy copies a ledger between every pair of stores, each way.
func TestCopy(t *testing.T) {
	stores := map[string]storetest.Harness{
		"file":  {Open: func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store { return openFile(t, now, keys) }},
		"redis": {Open: func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store { return openRedis(t, now, keys) }},
	}
	for from, hf := range stores {
		for to, ht := range stores {
			t.Run(from+"-to-"+to, func(t *testing.T) { storetest.RunCopy(t, hf, ht) })
		}
	}
}
