package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// testClient is a client for srv with short timeouts, so that a stopped
// server shows in well under a second.
func testClient(srv *redistest.Server) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:          srv.Addr,
		DialTimeout:   300 * time.Millisecond,
		ReadTimeout:   300 * time.Millisecond,
		WriteTimeout:  300 * time.Millisecond,
		PoolTimeout:   300 * time.Millisecond,
		MaxRetries:    1,
		DialerRetries: 1,
	})
}

// patientClient is testClient with a read timeout that a loaded machine
// (two test runs at once on two cores, with -race) does not reach: the
// conformance suite checks the ledger, not how fast Redis answers; the
// outage tests keep testClient's short one.
func patientClient(srv *redistest.Server) *redis.Client {
	c := testClient(srv)
	o := c.Options()
	o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = 3*time.Second, 3*time.Second, 3*time.Second
	c.Close()
	return redis.NewClient(o)
}

// openOn opens a store on srv with opts (Client, when not set, a
// testClient, and Keys the tests' shared ledger key) and closes it when
// the test ends.
func openOn(t testing.TB, srv *redistest.Server, opts Options) *Store {
	t.Helper()
	s, err := tryOpen(srv, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tryOpen(srv *redistest.Server, opts Options) (*Store, error) {
	if opts.Client == nil {
		opts.Client = testClient(srv)
	}
	if opts.Keys == nil {
		opts.Keys = testKeys
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		opts.Client.Close()
	}
	return s, err
}

// harness remembers the server under each store it opened, and each
// test's last one, for Reopen.
type harness struct {
	mu      sync.Mutex
	servers map[*Store]*redistest.Server
	last    map[*testing.T]*redistest.Server
	// perSubject makes the stores write as on Cluster: one script per
	// subject, the feed and suppression index after it.
	perSubject bool
}

func newHarness(perSubject bool) *harness {
	return &harness{servers: map[*Store]*redistest.Server{}, last: map[*testing.T]*redistest.Server{}, perSubject: perSubject}
}

func (h *harness) open(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	s := openOn(t, srv, Options{Now: now, Keys: keys, Client: patientClient(srv)})
	s.cluster = h.perSubject
	h.remember(t, s, srv)
	return s
}

func (h *harness) remember(t *testing.T, s *Store, srv *redistest.Server) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers[s], h.last[t] = srv, srv
}

// reopen closes the client, kills the server and starts it again on its
// append-only file, as a crash and a restart do, and opens the store
// again: what was acknowledged must be there.
func (h *harness) reopen(t *testing.T, st optin.Store, now func() time.Time, keys *optin.Keys) (optin.Store, error) {
	h.mu.Lock()
	srv := h.last[t]
	if st != nil {
		srv = h.servers[st.(*Store)]
	}
	h.mu.Unlock()
	if st != nil {
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	srv.Restart()
	again, err := tryOpen(srv, Options{Now: now, Keys: keys, Client: patientClient(srv)})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { again.Close() })
	again.cluster = h.perSubject
	h.remember(t, again, srv)
	return again, nil
}

// raw dumps every key of the store's server: its name, and every field,
// value, member (with its score) and element, whatever its type, and the
// server's files on disk.
func raw(t *testing.T, st optin.Store) []byte {
	s := st.(*Store)
	ctx := context.Background()
	var out bytes.Buffer
	// SCAN walks every key, as an operator's dump would; KEYS would too,
	// but blocks the server.
	var keys []string
	iter := s.rdb.Scan(ctx, 0, "*", 500).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		out.WriteString(k + "\n")
		typ, err := s.rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		switch typ {
		case "string":
			v, _ := s.rdb.Get(ctx, k).Result()
			parts = []string{v}
		case "hash":
			m, _ := s.rdb.HGetAll(ctx, k).Result()
			for f, v := range m {
				parts = append(parts, f, v)
			}
		case "list":
			parts, _ = s.rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			parts, _ = s.rdb.SMembers(ctx, k).Result()
		case "zset":
			zs, _ := s.rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			for _, z := range zs {
				parts = append(parts, fmt.Sprint(z.Member), fmt.Sprint(z.Score))
			}
		case "stream":
			msgs, _ := s.rdb.XRange(ctx, k, "-", "+").Result()
			for _, m := range msgs {
				parts = append(parts, m.ID)
				for f, v := range m.Values {
					parts = append(parts, f, fmt.Sprint(v))
				}
			}
		default:
			t.Fatalf("key %s of type %s: the scan does not know it", k, typ)
		}
		for _, p := range parts {
			out.WriteString(p + "\n")
		}
	}
	// What the server keeps on disk, too: its append-only file.
	if dir, err := s.rdb.ConfigGet(ctx, "dir").Result(); err == nil {
		files, _ := filepath.Glob(filepath.Join(dir["dir"], "*"))
		more, _ := filepath.Glob(filepath.Join(dir["dir"], "*", "*"))
		for _, f := range append(files, more...) {
			if b, err := os.ReadFile(f); err == nil {
				out.Write(b)
			}
		}
	}
	return out.Bytes()
}

// snapshot saves the server's data (SAVE) and copies the file, as a
// backup does; the copy opens on a server of its own.
func (h *harness) snapshot(t *testing.T, st optin.Store) func(*optin.Keys) (optin.Store, error) {
	s := st.(*Store)
	ctx := context.Background()
	if err := s.rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	dir, err := s.rdb.ConfigGet(ctx, "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	name, _ := s.rdb.ConfigGet(ctx, "dbfilename").Result()
	data, err := os.ReadFile(filepath.Join(dir["dir"], name["dbfilename"]))
	if err != nil {
		t.Fatal(err)
	}
	copyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(copyDir, "dump.rdb"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(keys *optin.Keys) (optin.Store, error) {
		srv := redistest.StartWith(t, redistest.Options{Dir: copyDir, Args: []string{"--dbfilename", "dump.rdb"}})
		c, err := tryOpen(srv, Options{Keys: keys})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return c, nil
	}
}

// lose flushes the server, as a Redis restarted without persistence
// comes back.
func lose(t *testing.T, st optin.Store) {
	if err := st.(*Store).rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// tamper rewrites the actor of the subject's second event (or receipt)
// in place.
func tamper(t *testing.T, st optin.Store, a optin.Address, receipt bool) {
	s := st.(*Store)
	ctx := context.Background()
	sid := s.sid(a)
	list := s.keys.events(sid)
	if receipt {
		list = s.keys.receipts(sid)
	}
	raw, err := s.rdb.LIndex(ctx, list, 1).Result()
	if err != nil {
		t.Fatalf("read the event to tamper with: %v", err)
	}
	var changed []byte
	if receipt {
		e, err := decodeReceipt(sid, raw, "", s.names.resolver(ctx, s))
		if err != nil {
			t.Fatal(err)
		}
		e.Actor = "someone else"
		changed = encodeReceipt(&e, "", "")
	} else {
		e, err := decodeEvent(sid, raw)
		if err != nil {
			t.Fatal(err)
		}
		e.Actor = "someone else"
		changed = encodeEvent(&e)
	}
	if err := s.rdb.LSet(ctx, list, 1, changed).Err(); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestConformance(t *testing.T) {
	h := newHarness(false)
	storetest.Run(t, storetest.Harness{
		Open:       h.open,
		Reopen:     h.reopen,
		RoundTrips: func(s optin.Store) int64 { return s.(*Store).RoundTrips() },
		Tamper:     tamper,
		Raw:        raw,
		Snapshot:   h.snapshot,
		Lose:       lose,
	})
}

// TestConformancePerSubject runs the suite on one node with the writes
// Cluster makes (see TestCluster for a real one). Round trips are not
// counted: a script per subject takes more than a batch does.
func TestConformancePerSubject(t *testing.T) {
	h := newHarness(true)
	storetest.Run(t, storetest.Harness{Open: h.open, Reopen: h.reopen, Tamper: tamper, Lose: lose})
}
