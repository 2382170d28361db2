// Package teststore opens the two real consent stores for tests of the
// packages built on them: the embedded file store in a folder of the
// test's, and the Redis store on a redis-server the test started. Each
// store is closed when the test ends.
package teststore

import (
	"context"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
	"optinproxy/optin/redisstore"
)

// Keys is the ledger key of the stores File and Redis open: one for the
// whole test binary, as one key file is for every instance of a
// deployment.
var Keys = optin.StaticKeys(optin.NewKeyring(time.Now()))

// File opens the embedded store at path; a second File on the same path
// after the first is closed is a restarted proxy.
func File(t testing.TB, path string) optin.Store {
	t.Helper()
	return openFile(t, path, nil, Keys)
}

// openFile opens the embedded store at path with the clock now (nil: the
// wall clock) and the ledger key k.
func openFile(t testing.TB, path string, now func() time.Time, k *optin.Keys) optin.Store {
	t.Helper()
	s, err := filestore.Open(path, filestore.Options{Timeout: 5 * time.Second, Keys: k, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Redis opens a store on srv; several are several proxies sharing it.
func Redis(t testing.TB, srv *redistest.Server) optin.Store {
	t.Helper()
	return openRedis(t, srv, nil, Keys)
}

// openRedis opens a store on srv with the clock now (nil: the wall clock)
// and the ledger key k.
func openRedis(t testing.TB, srv *redistest.Server, now func() time.Time, k *optin.Keys) optin.Store {
	t.Helper()
	client, err := redisstore.NewClient(srv.URL(), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.Open(context.Background(), redisstore.Options{Client: client, Keys: k, Now: now})
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
