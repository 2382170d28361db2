package redisstore

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/testtools"
	"optinproxy/optin"
	"optinproxy/optin/storetest"
)

// startCluster runs a Redis Cluster of three masters on loopback ports,
// without replicas or persistence, and returns their addresses. The
// servers are killed when the test ends.
func startCluster(t *testing.T) []string {
	t.Helper()
	bin := testtools.Need(t, "redis-server", "redis-server")
	ctx := context.Background()
	var addrs []string
	var nodes []*redis.Client
	var buses []int
	for range 3 {
		port, bus := freePort(t), freePort(t)
		dir := t.TempDir()
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		addrs, nodes, buses = append(addrs, addr), append(nodes, c), append(buses, bus)
	}
	waitFor(t, "the nodes to answer", func() bool {
		for _, c := range nodes {
			if c.Ping(ctx).Err() != nil {
				return false
			}
		}
		return true
	})
	for i, c := range nodes {
		lo, hi := i*16384/3, (i+1)*16384/3-1
		if err := c.Do(ctx, "cluster", "addslotsrange", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(addrs[i])
			if err := nodes[0].Do(ctx, "cluster", "meet", host, port, buses[i]).Err(); err != nil {
				t.Fatalf("CLUSTER MEET: %v", err)
			}
		}
	}
	waitFor(t, "the cluster to form", func() bool {
		for _, c := range nodes {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return false
			}
		}
		return true
	})
	return addrs
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestCluster runs the suite on a real Cluster, each store under its own
// prefix, with the client NewClient builds.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	addrs := startCluster(t)
	var stores atomic.Int64
	open := func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store {
		c, err := NewClient("", "", nil, addrs)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), Options{Client: c, Keys: keys, Prefix: fmt.Sprintf("c%d:", stores.Add(1)), Now: now})
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		if !s.cluster {
			t.Fatal("a cluster client not taken for one")
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, storetest.Harness{Open: open, Tamper: tamper})
	t.Run("Copy", func(t *testing.T) { storetest.RunCopy(t, storetest.Harness{Open: open}, storetest.Harness{Open: open}) })
}
