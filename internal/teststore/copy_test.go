package teststore

import (
	"context"
	"errors"
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

// TestCopy copies a ledger between every pair of stores, each way.
func TestCopy(t *testing.T) {
	stores := map[string]storetest.Harness{
		"file": {Open: func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store {
			return openFile(t, filepath.Join(t.TempDir(), "optinproxy.db"), now, keys)
		}},
		"redis": {Open: func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store {
			return openRedis(t, redistest.Start(t), now, keys)
		}},
	}
	for from, hf := range stores {
		for to, ht := range stores {
			t.Run(from+"-to-"+to, func(t *testing.T) { storetest.RunCopy(t, hf, ht) })
		}
	}
}

// TestOpenRefusesUnfinishedCopy: a store that holds part of a copy is
// opened by the copy alone (Copying), so that no proxy starts on half a
// ledger; once the copy ends, it opens as any other.
func TestOpenRefusesUnfinishedCopy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "optinproxy.db")
	srv := redistest.Start(t)
	opens := map[string]func(copying bool) (optin.Store, error){
		"file": func(copying bool) (optin.Store, error) {
			return filestore.Open(path, filestore.Options{Timeout: time.Second, Keys: Keys, Copying: copying})
		},
		"redis": func(copying bool) (optin.Store, error) {
			client, err := redisstore.NewClient(srv.URL(), "", nil, nil)
			if err != nil {
				return nil, err
			}
			s, err := redisstore.Open(ctx, redisstore.Options{Client: client, Keys: Keys, Copying: copying})
			if err != nil {
				client.Close()
			}
			return s, err
		},
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			s, err := open(false)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.(optin.Restorer).BeginRestore(ctx, "a copy"); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := open(false); !errors.Is(err, optin.ErrCopying) || !strings.Contains(err.Error(), "migrate again") {
				t.Fatalf("Open of an unfinished copy = %v, want ErrCopying", err)
			}
			s, err = open(true)
			if err != nil {
				t.Fatalf("Open with Copying: %v", err)
			}
			if err := s.(optin.Restorer).EndRestore(ctx, optin.OutboxDump{}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s, err = open(false)
			if err != nil {
				t.Fatalf("Open of a finished copy: %v", err)
			}
			s.Close()
		})
	}
}
