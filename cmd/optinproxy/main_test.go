package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"optinproxy/internal/testtools"
)

// binary is the optinproxy built once for these tests: they run it as a
// user would, as a separate process.
var binary string

func TestMain(m *testing.M) {
	// OPTINPROXY_TEST_BINARY runs the tests against another build, such
	// as an older version for a before-and-after figure.
	if b := os.Getenv("OPTINPROXY_TEST_BINARY"); b != "" {
		binary = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "optinproxy-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "optinproxy")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building optinproxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result of one command run.
type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs the binary in dir with stdin and extra environment.
func runCmd(t *testing.T, dir, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(cleanEnv(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, so.String(), se.String()}
}

// cleanEnv is the test's environment without OPTINPROXY_* variables.
func cleanEnv() []string {
	return testtools.Environ("OPTINPROXY_")
}

func TestBadArgumentsExit2WithOneLine(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"no-such-command"},
		{"version", "extra"},
		{"serve", "--no-such-flag"},
		{"serve", "stray"},
		{"hash-password", "a", "b"},
		{"hash-password", "--cost", "99", "pw"},
		{"check-config", "a.yaml", "b.yaml"},
	} {
		r := runCmd(t, dir, "", nil, args...)
		if r.code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
		if len(args) > 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%q: want one line on stderr, got %q", args, r.stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	r := runCmd(t, t.TempDir(), "", nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "optinproxy ") {
		t.Errorf("version: %d %q", r.code, r.stdout)
	}
}

func TestHashPassword(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"stdin with newline", "s3cret\n", nil},
		{"stdin without newline", "s3cret", nil},
		{"stdin CRLF", "s3cret\r\n", nil},
		{"argument", "", []string{"s3cret"}},
		{"flag after argument", "", []string{"s3cret", "--cost", "4"}},
	} {
		r := runCmd(t, dir, tc.stdin, nil, append([]string{"hash-password"}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, r.code, r.stderr)
		}
		h := strings.TrimSpace(r.stdout)
		if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")); err != nil {
			t.Errorf("%s: %q does not verify: %v", tc.name, h, err)
		}
	}
	if r := runCmd(t, dir, "", nil, "hash-password"); r.code != 2 {
		t.Errorf("empty stdin: exit %d, want 2", r.code)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("smtp:\n  listen: 127.0.0.1:2600\n"), 0o600)
	if r := runCmd(t, dir, "", nil, "check-config", "--config", good); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Errorf("good config: %d %q %q", r.code, r.stdout, r.stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("smtp:\n  lisen: x\n  max_recipients: -1\nupstream:\n  url: ftp://x\n"), 0o600)
	r := runCmd(t, dir, "", nil, "check-config", bad)
	if r.code != 2 {
		t.Fatalf("bad config: exit %d, want 2", r.code)
	}
	for _, want := range []string{"bad.yaml:2: smtp.lisen", "bad.yaml:3: smtp.max_recipients", "bad.yaml:5: upstream.url"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, r.stderr)
		}
	}
	// The environment is checked too.
	r = runCmd(t, dir, "", []string{"OPTINPROXY_SMTP_MAX_RECIPIENTS=many"}, "check-config")
	if r.code != 2 || !strings.Contains(r.stderr, "OPTINPROXY_SMTP_MAX_RECIPIENTS") {
		t.Errorf("bad env: %d %q", r.code, r.stderr)
	}
	// serve refuses to start on the same problems.
	if r := runCmd(t, dir, "", nil, "serve", "--config", bad); r.code != 2 || !strings.Contains(r.stderr, "smtp.lisen") {
		t.Errorf("serve with bad config: %d %q", r.code, r.stderr)
	}
}

// server is a running `optinproxy serve`.
type server struct {
	cmd      *exec.Cmd
	dir      string
	smtpAddr string
	httpAddr string
	logs     *logTail
	done     chan struct{}
}

// startServe runs `optinproxy serve` in dir on free ports and waits for
// its "listening" log line.
func startServe(t *testing.T, dir string, env ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), append([]string{
		"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, dir: dir, logs: &logTail{lines: make(chan map[string]any, 100)}, done: make(chan struct{})}
	go s.logs.read(stderr)
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	line := s.logs.waitFor(t, "listening", 20*time.Second)
	s.smtpAddr = line["smtp"].([]any)[0].(string)
	s.httpAddr = line["http"].(string)
	return s
}

// logTail parses the JSON log lines a server writes.
type logTail struct {
	lines chan map[string]any

	mu   sync.Mutex
	seen []map[string]any // every line, also those waitFor skipped
}

// messages returns the msg of every line read so far.
func (l *logTail) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.seen))
	for _, m := range l.seen {
		out = append(out, fmt.Sprint(m["msg"]))
	}
	return out
}

func (l *logTail) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = map[string]any{"msg": "(not json) " + sc.Text()}
		}
		l.mu.Lock()
		if len(l.seen) < 10000 {
			l.seen = append(l.seen, m)
		}
		l.mu.Unlock()
		select {
		case l.lines <- m:
		default:
		}
	}
	close(l.lines)
}

func (l *logTail) waitFor(t *testing.T, msg string, d time.Duration) map[string]any {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-l.lines:
			if !ok {
				t.Fatalf("server exited before logging %q", msg)
			}
			if m["msg"] == msg {
				return m
			}
			if m["level"] == "ERROR" || strings.HasPrefix(fmt.Sprint(m["msg"]), "(not json)") {
				t.Logf("server: %v", m)
			}
		case <-timeout:
			t.Fatalf("no %q log line within %v", msg, d)
		}
	}
}

func TestServeOnDefaults(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)

	// Zero-config made its secrets, private to the owner.
	for _, f := range []string{"data/unsubscribe.key", "data/admin.token"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	c, err := smtp.Dial(s.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The default purpose is the newsletter: Jan never opted in, the
	// bakery's info@ is a role address.
	msg := "From: crm@shop.example\r\nTo: jan@example.com\r\nSubject: hi\r\n\r\nHello Jan\r\n"
	if err := c.SendMail("crm@shop.example", []string{"jan@example.com", "info@bakkerij.example"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail("crm@shop.example", []string{"jan@example.com"}, strings.NewReader(msg))
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 550 || !strings.Contains(se.Message, "no_consent") {
		t.Errorf("newsletter to Jan: %v, want 550 no_consent", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "data/outbox/*.eml"))
	if len(files) != 1 {
		t.Fatalf("outbox has %d files, want 1", len(files))
	}
	eml, _ := os.ReadFile(files[0])
	if bytes.Contains(eml, []byte("X-Optinproxy-Envelope-To: <jan@example.com>")) {
		t.Errorf("Jan got the newsletter:\n%s", eml)
	}
	for _, want := range []string{"X-Optinproxy-Envelope-From: <crm@shop.example>\r\n", "X-Optinproxy-Envelope-To: <info@bakkerij.example>\r\n", "Received: from ", "Message-Id: <", msg} {
		if !bytes.Contains(eml, []byte(want)) {
			t.Errorf("written message lacks %q:\n%s", want, eml)
		}
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nope": 404} {
		resp, err := http.Get("http://" + s.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
		if path == "/metrics" && (!bytes.Contains(body, []byte(`optinproxy_smtp_messages_total{result="relayed"} 1`)) ||
			!bytes.Contains(body, []byte(`optinproxy_decisions_total{decision="block",purpose="newsletter",reason="no_consent"} 2`))) {
			t.Errorf("metrics do not count the relayed message:\n%s", body)
		}
	}

	// The relayed message was logged without the recipient's address.
	line := s.logs.waitFor(t, "message relayed", 5*time.Second)
	if strings.Contains(fmt.Sprint(line), "jan@example.com") {
		t.Errorf("log line holds a raw address: %v", line)
	}

	// SIGTERM: a clean stop with exit status 0.
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.logs.waitFor(t, "stopped", 10*time.Second)
	<-s.done
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGTERM %d, want 0", code)
	}
}

func TestReadyzReportsDeadUpstream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	s := startServe(t, t.TempDir(), "OPTINPROXY_UPSTREAM_URL=smtp://"+dead)
	resp, err := http.Get("http://" + s.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"upstream"`)) {
		t.Errorf("readyz with a dead upstream: %d %s", resp.StatusCode, body)
	}
	// Mail is refused with a temporary error, not lost and not accepted.
	c, err := smtp.Dial(s.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendMail("a@shop.example", []string{"b@example.com"}, strings.NewReader("Subject: x\r\nX-Optin-Purpose: transactional\r\n\r\nbody\r\n"))
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 451 {
		t.Errorf("send with dead upstream: %v, want 451", err)
	}
}

func TestServeRefusesPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := runCmd(t, t.TempDir(), "", []string{"OPTINPROXY_SMTP_LISTEN=" + l.Addr().String(), "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0"}, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "smtp.listen") || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("port in use: %d %q", r.code, r.stderr)
	}
}
