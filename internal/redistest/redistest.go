// Package redistest runs a real redis-server for tests: a private one per
// test, on a free loopback port, never the machine's shared Redis on :6379.
// Only tests import it.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"optinproxy/internal/testtools"
)

const (
	// startTimeout bounds the wait for a new server to answer; generous,
	// because loaded CI machines running -race are slow.
	startTimeout = 15 * time.Second
	// portAttempts: a probed free port can be taken before redis binds it.
	portAttempts = 3
)

// errPortTaken means redis-server could not bind its port.
var errPortTaken = errors.New("redistest: port already in use")

// Options configure StartWith.
type Options struct {
	// AppendOnly turns on the append-only file, synced on every write
	// (appendfsync always), so that a killed server keeps every write it
	// acknowledged. Off, the server keeps nothing on disk.
	AppendOnly bool
	// Dir is the data directory; empty means a new t.TempDir(). A second
	// server started on the Dir of a stopped one, with AppendOnly, gets its
	// data.
	Dir string
	// Args are more redis-server arguments, after the defaults, such as
	// "--replicaof", "127.0.0.1", "6380" for a replica.
	Args []string
	// Sentinel, when not empty, runs the server as a Redis Sentinel
	// (redis-server --sentinel) whose configuration file, in Dir, starts
	// with these lines, such as "sentinel monitor mymaster 127.0.0.1 6380
	// 1". Sentinel rewrites that file with what it learns, and Restart
	// starts it again on it.
	Sentinel []string
}

// Server is one running redis-server. Stop and Restart must be called from
// the test's goroutine or its cleanups (Restart fails the test on error);
// they are safe against each other.
type Server struct {
	// Addr is host:port on 127.0.0.1, the same across Restart.
	Addr string

	t        testing.TB
	bin      string
	opts     Options
	logPath  string
	confPath string // the Sentinel configuration file; "" for a plain server

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed once cmd has exited
}

// Start starts a redis-server that keeps nothing on disk, waits until it
// answers, and stops it when the test ends. It installs Debian's
// redis-server package when the program is missing. Failures fail the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with Options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := testtools.Need(t, "redis-server", "redis-server")
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s := &Server{t: t, bin: bin, opts: opts, logPath: filepath.Join(t.TempDir(), "redis.log")}
	if len(opts.Sentinel) > 0 {
		s.confPath = filepath.Join(opts.Dir, "sentinel.conf")
		conf := strings.Join(opts.Sentinel, "\n") + "\n"
		if err := os.WriteFile(s.confPath, []byte(conf), 0o644); err != nil {
			t.Fatalf("redistest: write the Sentinel configuration: %v", err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("redistest: log of %s:\n%s", s.Addr, s.logTail())
		}
	})
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			t.Fatalf("redistest: start redis-server on %s: %v\nlog:\n%s", s.Addr, err, s.logTail())
		}
	}
}

// URL returns the server's URL for database 0, as store.redis.url takes it.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Stop kills the server at once (SIGKILL), as a crash would, and waits
// until it is gone. Stopping a stopped Server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart kills the server if it runs and starts it again on the same
// address and data directory, waiting until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if err := s.startLocked(); err != nil {
		s.t.Fatalf("redistest: restart redis-server on %s: %v\nlog:\n%s", s.Addr, err, s.logTail())
	}
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // fails only when it already exited
	<-s.done
	s.cmd = nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

// startLocked launches redis-server and waits until it answers as itself.
func (s *Server) startLocked() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	appendOnly := "no"
	if s.opts.AppendOnly {
		appendOnly = "yes"
	}
	var args []string
	if s.confPath != "" {
		// The file must come first; Sentinel refuses to run without one.
		args = append(args, s.confPath, "--sentinel")
	}
	args = append(args,
		"--port", port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", appendOnly,
		"--appendfsync", "always",
		"--dir", s.opts.Dir,
		"--daemonize", "no",
	)
	cmd := exec.Command(s.bin, append(args, s.opts.Args...)...)
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A test binary that dies must not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed or crashed: either way it is gone
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(startTimeout)
	for {
		// A server of someone else's on a port we thought free would
		// answer too; only our own process id will do.
		err = s.ready(cmd.Process.Pid)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			if strings.Contains(s.logTail(), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("redis-server exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("no answer within %v: %w", startTimeout, err)
		}
	}
}

// ready reports whether the server at s.Addr answers PING and is the
// process pid.
func (s *Server) ready(pid int) error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	if reply, err := command(conn, r, "PING"); err != nil {
		return err
	} else if reply != "PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	info, err := command(conn, r, "INFO", "server")
	if err != nil {
		return err
	}
	if !strings.Contains(info, "\nprocess_id:"+strconv.Itoa(pid)+"\r") {
		return errPortTaken
	}
	return nil
}

// command sends one RESP command and returns its reply: a simple or bulk
// string, an integer's digits, or "" for nil. An error reply (such as
// -LOADING while the data loads) is an error; arrays are not read.
func command(conn net.Conn, r *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, ":"):
		return line[1:], nil
	case line == "$-1":
		return "", nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the end of the server's log.
func (s *Server) logTail() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 2000 {
		text = "..." + text[len(text)-2000:]
	}
	return text
}
