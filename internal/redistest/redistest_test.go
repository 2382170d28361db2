package redistest

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartPingStop: the server answers a raw RESP PING, lives on a private
// port, and is gone after Stop.
func TestStartPingStop(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if _, port, _ := net.SplitHostPort(s.Addr); port == "6379" || !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q, want a private loopback port", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING answered %q, %v; want +PONG", line, err)
	}

	pid := s.cmd.Process.Pid
	s.Stop()
	// The process is reaped: signal 0 finds no such process.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("after Stop, kill(%d, 0) = %v, want ESRCH", pid, err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("after Stop, %s still accepts connections", s.Addr)
	}
	// The open connection sees the server die.
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err == nil {
		if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
			t.Error("after Stop, the old connection still answers")
		}
	}
	s.Stop() // a second Stop does nothing
}

// TestRestartKeepsAppendOnlyData: with AppendOnly, an acknowledged write
// survives a kill, on the same address; on a new server over the same Dir too.
func TestRestartKeepsAppendOnlyData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := StartWith(t, Options{AppendOnly: true, Dir: dir})
	do(t, s.Addr, "SET", "k", "v1")
	addr := s.Addr
	s.Restart()
	if s.Addr != addr {
		t.Errorf("Restart moved the server from %s to %s", addr, s.Addr)
	}
	if got := do(t, s.Addr, "GET", "k"); got != "v1" {
		t.Errorf("after Restart GET k = %q, want v1", got)
	}
	do(t, s.Addr, "SET", "k", "v2")
	s.Stop()
	second := StartWith(t, Options{AppendOnly: true, Dir: dir})
	if got := do(t, second.Addr, "GET", "k"); got != "v2" {
		t.Errorf("on a new server over the same Dir GET k = %q, want v2", got)
	}
}

// TestRestartWithoutPersistence: the default keeps nothing.
func TestRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	s := Start(t)
	do(t, s.Addr, "SET", "k", "v")
	s.Restart()
	if got := do(t, s.Addr, "EXISTS", "k"); got != "0" {
		t.Errorf("after Restart EXISTS k = %q, want 0", got)
	}
}

// TestServersAreSeparate: two servers share neither port nor data.
func TestServersAreSeparate(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers on %s", a.Addr)
	}
	do(t, a.Addr, "SET", "k", "a")
	if got := do(t, b.Addr, "EXISTS", "k"); got != "0" {
		t.Errorf("a write to one server shows on the other")
	}
}

// do runs one command on a new connection and returns its reply.
func do(t *testing.T, addr string, args ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	reply, err := command(conn, bufio.NewReader(conn), args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return reply
}

// TestReplicaAndSentinel: Args make a replica that gets the master's
// writes, and Sentinel runs a Sentinel that monitors the master.
func TestReplicaAndSentinel(t *testing.T) {
	t.Parallel()
	// Without the delay, the master waits 5s for more replicas before
	// the first full sync.
	master := StartWith(t, Options{Args: []string{"--repl-diskless-sync-delay", "0"}})
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := StartWith(t, Options{Args: []string{"--replicaof", host, port}})
	sentinel := StartWith(t, Options{Sentinel: []string{"sentinel monitor m " + host + " " + port + " 1"}})
	do(t, master.Addr, "SET", "k", "v")
	want := "master0:name=m,status=ok,address=" + master.Addr + ",slaves="
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The replica answers -LOADING while it loads the master's data.
		got, err := try(replica.Addr, "GET", "k")
		info := do(t, sentinel.Addr, "INFO", "sentinel")
		if err == nil && got == "v" && strings.Contains(info, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica GET k = %q, %v, want v; Sentinel INFO:\n%s\nwant %q", got, err, info, want)
		}
	}
}

// try runs one command on a new connection and returns its reply or error.
func try(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return command(conn, bufio.NewReader(conn), args...)
}
