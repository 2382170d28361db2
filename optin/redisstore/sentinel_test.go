package redisstore

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// sentinelName is the master's name in the Sentinel's configuration.
const sentinelName = "mymaster"

// sentinelSet is a master, one replica of it and one Sentinel monitoring
// them, each on its own loopback port.
type sentinelSet struct {
	master, replica, sentinel *redistest.Server
	// admin is a plain client of the Sentinel, for the test's questions.
	admin *redis.SentinelClient
}

// startSentinel starts a sentinelSet and waits until the replica is in
// sync and the Sentinel knows it as a replica it could promote. The
// processes are killed when the test ends.
func startSentinel(t *testing.T) *sentinelSet {
	t.Helper()
	ctx := context.Background()
	// Without the delay a master waits 5s for more replicas before a full
	// sync; the former replica gets the setting too, as the next master.
	noDelay := []string{"--repl-diskless-sync-delay", "0"}
	master := redistest.StartWith(t, redistest.Options{Args: noDelay})
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := redistest.StartWith(t, redistest.Options{Args: append([]string{"--replicaof", host, port}, noDelay...)})
	// The Sentinel learns of replicas from the master's INFO, which it
	// asks for at once and then every 10s: start it only once the master
	// has its replica.
	waitInSync(t, master.Addr, replica.Addr)
	sentinel := redistest.StartWith(t, redistest.Options{Sentinel: []string{
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s %s %s 1", sentinelName, host, port),
		// Only the test's SENTINEL FAILOVER should fail over, not a master
		// slow under -race on a loaded machine; a forced failover does not
		// wait for this.
		"sentinel down-after-milliseconds " + sentinelName + " 5000",
		"sentinel failover-timeout " + sentinelName + " 5000",
	}})
	admin := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr})
	t.Cleanup(func() { admin.Close() })
	waitFor(t, "the Sentinel to know the replica", func() bool {
		rs, err := admin.Replicas(ctx, sentinelName).Result()
		return err == nil && len(rs) == 1 && rs[0]["name"] == replica.Addr &&
			rs[0]["flags"] == "slave" && rs[0]["master-link-status"] == "ok"
	})
	return &sentinelSet{master: master, replica: replica, sentinel: sentinel, admin: admin}
}

// openSentinel opens a store under prefix on the client NewClient builds
// for the Sentinel at sentinelAddr, and closes it when the test ends.
func openSentinel(t *testing.T, sentinelAddr, prefix string, now func() time.Time, keys *optin.Keys) *Store {
	t.Helper()
	s, err := tryOpenSentinel(t, sentinelAddr, prefix, now, keys)
	if err != nil {
		t.Fatalf("Open through the Sentinel: %v", err)
	}
	return s
}

func tryOpenSentinel(t *testing.T, sentinelAddr, prefix string, now func() time.Time, keys *optin.Keys) (*Store, error) {
	t.Helper()
	c, err := NewClient("", sentinelName, []string{sentinelAddr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Options{Client: c, Keys: keys, Prefix: prefix, Now: now})
	if err != nil {
		c.Close()
		return nil, err
	}
	if s.cluster {
		t.Fatal("a Sentinel client taken for a Cluster one")
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

// waitInSync waits until the replica at replicaAddr has every write the
// master at masterAddr had when called.
func waitInSync(t *testing.T, masterAddr, replicaAddr string) {
	t.Helper()
	ctx := context.Background()
	m, r := redis.NewClient(&redis.Options{Addr: masterAddr}), redis.NewClient(&redis.Options{Addr: replicaAddr})
	defer m.Close()
	defer r.Close()
	info, err := m.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication of the master: %v", err)
	}
	offset := infoInt(info, "master_repl_offset")
	waitFor(t, fmt.Sprintf("the replica to reach offset %d", offset), func() bool {
		info, err := r.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "\r\nmaster_link_status:up\r\n") &&
			infoInt(info, "slave_repl_offset") >= offset
	})
}

// infoInt returns the integer field of an INFO reply; -1 when missing.
func infoInt(info, field string) int64 {
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// TestSentinel runs the suite through a Sentinel-managed master with the
// client NewClient builds, then fails the master over to its replica
// and shows that a store keeps working on the new master with the client
// it already had.
func TestSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a master, a replica and a Sentinel")
	}
	set := startSentinel(t)

	t.Run("Conformance", func(t *testing.T) {
		// Each store gets its own prefix on the one master. Reopen is a
		// restart of the proxy, not of Redis: a new client through the
		// Sentinel must find the same data and ledger key (a Redis crash
		// is TestConformance's). Tamper and the round-trip budgets work
		// as on one node.
		var stores atomic.Int64
		prefixes := map[*testing.T]string{}
		var mu sync.Mutex
		open := func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store {
			prefix := fmt.Sprintf("s%d:", stores.Add(1))
			mu.Lock()
			prefixes[t] = prefix
			mu.Unlock()
			return openSentinel(t, set.sentinel.Addr, prefix, now, keys)
		}
		reopen := func(t *testing.T, st optin.Store, now func() time.Time, keys *optin.Keys) (optin.Store, error) {
			if st != nil {
				if err := st.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			mu.Lock()
			prefix := prefixes[t]
			mu.Unlock()
			return tryOpenSentinel(t, set.sentinel.Addr, prefix, now, keys)
		}
		storetest.Run(t, storetest.Harness{
			Open:       open,
			Reopen:     reopen,
			RoundTrips: func(s optin.Store) int64 { return s.(*Store).RoundTrips() },
			Tamper:     tamper,
		})
	})

	t.Run("Failover", func(t *testing.T) {
		testSentinelFailover(t, set)
	})
}

// testSentinelFailover writes a consent, fails the master over to the
// replica with SENTINEL FAILOVER, and reads and writes again through the
// same store: its client must follow the Sentinel to the new master.
func testSentinelFailover(t *testing.T, set *sentinelSet) {
	ctx := context.Background()
	const prefix = "failover:"
	s := openSentinel(t, set.sentinel.Addr, prefix, nil, testKeys)
	l := ledger(t, s)
	a, b := addr(t, "before@failover.example"), addr(t, "after@failover.example")
	before, err := s.Apply(ctx, []optin.Change{grant(t, l, a, 0)})
	if err != nil || !before[0].Applied {
		t.Fatalf("Apply before the failover: %+v %v", before, err)
	}
	// Asynchronous replication: a failover before the replica has the
	// write would lose it, as it would in production.
	waitInSync(t, set.master.Addr, set.replica.Addr)

	start := time.Now()
	waitFor(t, "SENTINEL FAILOVER to be accepted", func() bool {
		err := set.admin.Failover(ctx, sentinelName).Err()
		if err != nil {
			t.Logf("SENTINEL FAILOVER: %v", err)
		}
		return err == nil
	})
	waitFor(t, "the Sentinel to name the replica as master", func() bool {
		got, err := set.admin.GetMasterAddrByName(ctx, sentinelName).Result()
		return err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == set.replica.Addr
	})
	switched := time.Since(start)
	// The client learns of the switch on its own, from the Sentinel's
	// +switch-master message or when it dials next; until then it still
	// speaks to the former master, which the Sentinel demotes only some
	// seconds later. Wait (bounded) for the store's own client to land on
	// the new master.
	_, newPort, _ := net.SplitHostPort(set.replica.Addr)
	waitFor(t, "the store's client to reach the new master", func() bool {
		info, err := s.rdb.Info(ctx, "server").Result()
		return err == nil && strconv.FormatInt(infoInt(info, "tcp_port"), 10) == newPort
	})
	t.Logf("the Sentinel switched masters in %v, the client followed in %v",
		switched.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The consent written on the former master is read on the new one.
	st, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a}})
	if err != nil || st[0].Consent == nil || st[0].Consent.EventID != before[0].Event.ID {
		t.Fatalf("Lookup after the failover: %+v %v; want the consent of event %s", st, err, before[0].Event.ID)
	}
	// Writes go on, and a's chain goes on where it stopped.
	after, err := s.Apply(ctx, []optin.Change{suppress(a, optin.SuppressComplaint), grant(t, l, b, 1)})
	if err != nil || !after[0].Applied || !after[1].Applied {
		t.Fatalf("Apply after the failover: %+v %v", after, err)
	}
	if after[0].Event.Prev != before[0].Event.Hash {
		t.Errorf("after the failover a's event is not chained after the one before")
	}
	if r, err := s.Verify(ctx); err != nil || r.Subjects != 2 || r.Events != 3 || len(r.Broken) != 0 {
		t.Errorf("Verify after the failover: %+v %v; want 2 subjects, 3 events, none broken", r, err)
	}

	// The writes are on the new master itself, not on the former one.
	direct := openOn(t, set.replica, Options{Prefix: prefix})
	v, err := direct.Subject(ctx, a, 10)
	if err != nil || len(v.Events) != 2 {
		t.Errorf("on the new master directly, a has %+v %v; want 2 events", v, err)
	}
	if _, err := direct.Subject(ctx, b, 10); err != nil {
		t.Errorf("on the new master directly, b: %v", err)
	}
}

// A master that asks for a password, behind a Sentinel: the URL given
// beside the Sentinel's addresses carries the password (and TLS and the
// database) to the master; without it the store cannot open.
func TestSentinelPasswordFromURL(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t)
	m := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer m.Close()
	if err := m.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(master.Addr)
	sentinel := redistest.StartWith(t, redistest.Options{Sentinel: []string{
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s %s %s 1", sentinelName, host, port),
		fmt.Sprintf("sentinel auth-pass %s s3cret", sentinelName),
	}})
	admin := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr})
	defer admin.Close()
	waitFor(t, "the Sentinel to name the master", func() bool {
		addr, err := admin.GetMasterAddrByName(ctx, sentinelName).Result()
		return err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == master.Addr
	})
	open := func(url string) error {
		c, err := NewClient(url, sentinelName, []string{sentinel.Addr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, Options{Client: c, Keys: testKeys, Prefix: "pw:"})
		if err != nil {
			c.Close()
			return err
		}
		defer s.Close()
		_, err = s.Lease(ctx, "test", time.Minute)
		return err
	}
	if err := open(""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("no password: %v, want NOAUTH", err)
	}
	if err := open("redis://:s3cret@unused:1/0"); err != nil {
		t.Errorf("password from the URL: %v", err)
	}
}
