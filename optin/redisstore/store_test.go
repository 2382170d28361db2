package redisstore

import (
	"context"
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

// openOn opens a store on srv with opts (Client set here) and closes it
// when the test ends.
func openOn(t testing.TB, srv *redistest.Server, opts Options) *Store {
	t.Helper()
	opts.Client = testClient(srv)
	s, err := Open(context.Background(), opts)
	if err != nil {
		opts.Client.Close()
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// servers remembers the server under each store the harness opened, for
// Reopen.
type harness struct {
	servers map[*Store]*redistest.Server
	// perSubject makes the stores write as on Cluster: one transaction
	// per subject, the feed and suppression index after it.
	perSubject bool
}

func (h *harness) open(t *testing.T, now func() time.Time) optin.Store {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	s := openOn(t, srv, Options{Now: now})
	s.cluster = h.perSubject
	h.servers[s] = srv
	return s
}

// reopen closes the client, kills the server and starts it again on its
// append-only file, as a crash and a restart do, and opens the store
// again: what was acknowledged must be there.
func (h *harness) reopen(t *testing.T, st optin.Store, now func() time.Time) optin.Store {
	s := st.(*Store)
	srv := h.servers[s]
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	srv.Restart()
	again := openOn(t, srv, Options{Now: now})
	again.cluster = h.perSubject
	if string(again.ledgerKey) != string(s.ledgerKey) {
		t.Fatal("the ledger key changed across a restart")
	}
	h.servers[again] = srv
	return again
}

// tamper rewrites the actor of the subject's second event in place.
func tamper(t *testing.T, st optin.Store, a optin.Address) {
	s := st.(*Store)
	ctx := context.Background()
	sid := s.sid(a)
	raw, err := s.rdb.LIndex(ctx, s.keys.events(sid), 1).Result()
	if err != nil {
		t.Fatalf("read the event to tamper with: %v", err)
	}
	e, err := decodeEvent(sid, raw)
	if err != nil {
		t.Fatal(err)
	}
	e.Actor = "someone else"
	if err := s.rdb.LSet(ctx, s.keys.events(sid), 1, encodeEvent(&e)).Err(); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestConformance(t *testing.T) {
	h := &harness{servers: map[*Store]*redistest.Server{}}
	storetest.Run(t, storetest.Harness{
		Open:       h.open,
		Reopen:     h.reopen,
		RoundTrips: func(s optin.Store) int64 { return s.(*Store).RoundTrips() },
		Tamper:     tamper,
	})
}

// TestConformancePerSubject runs the suite on one node with the writes
// Cluster makes (see TestCluster for a real one). Round trips are not
// counted: a transaction per subject takes more than a batch does.
func TestConformancePerSubject(t *testing.T) {
	h := &harness{servers: map[*Store]*redistest.Server{}, perSubject: true}
	storetest.Run(t, storetest.Harness{Open: h.open, Reopen: h.reopen, Tamper: tamper})
}
