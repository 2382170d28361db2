package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/internal/redistest"
)

// countingSink is the mailer behind the proxy in the fault tests: an SMTP
// server that counts the copies it takes per Message-ID and recipient.
type countingSink struct {
	addr string
	mu   sync.Mutex
	got  map[string]int // "message-id recipient" -> copies
}

func startSink(t *testing.T) *countingSink {
	t.Helper()
	k := &countingSink{got: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{k: k}, nil }))
	srv.Domain = "sink.test"
	srv.ErrorLog = quietLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return k
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}

type sinkSession struct {
	k  *countingSink
	to []string
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { s.to = nil; return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	h, err := textproto.NewReader(bufio.NewReader(r)).ReadMIMEHeader()
	if err != nil {
		return err
	}
	mid := h.Get("Message-Id")
	s.k.mu.Lock()
	for _, to := range s.to {
		s.k.got[mid+" "+strings.ToLower(to)]++
	}
	s.k.mu.Unlock()
	return nil
}
func (s *sinkSession) Reset()        { s.to = nil }
func (s *sinkSession) Logout() error { return nil }

// copies returns what the sink took.
func (k *countingSink) copies() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.got))
	for key, n := range k.got {
		out[key] = n
	}
	return out
}

// freeAddr is a loopback address with a port nobody listens on now, so
// that a restarted proxy can take the same one.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// load sends n messages, each to one recipient of its own, from workers
// that each open a connection per message and try again (bounded) on
// anything but a 5xx, as a CRM does with a message it was not told was
// taken. during runs once, on the test's goroutine, after about a third
// of the messages got their 250. It returns how many messages ended with
// 250.
func load(t *testing.T, addr string, n, workers int, during func()) int {
	t.Helper()
	var (
		next, ok atomic.Int64
		wg       sync.WaitGroup
		third    = make(chan struct{})
		finished = make(chan struct{})
	)
	deadline := time.Now().Add(3 * time.Minute)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || t.Failed() {
					return
				}
				msg := fmt.Sprintf("From: crm@shop.example\r\nTo: r%d@sink.test\r\nSubject: order %d\r\nMessage-ID: <load-%d@crm.test>\r\n\r\nYour order %d.\r\n", i, i, i, i)
				for attempt := 1; ; attempt++ {
					err := sendOnce(addr, "crm@shop.example", fmt.Sprintf("r%d@sink.test", i), msg)
					if err == nil {
						break
					}
					if se, isReply := err.(*smtp.SMTPError); isReply && se.Code >= 500 {
						t.Errorf("message %d: %v", i, err)
						return
					}
					if time.Now().After(deadline) || attempt == 2000 {
						t.Errorf("message %d: still failing after %d tries: %v", i, attempt, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				if ok.Add(1) == int64(n/3) {
					close(third)
				}
			}
		})
	}
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-third:
		during()
	case <-finished:
		t.Error("the load ended before a third of it was taken")
	}
	<-finished
	return int(ok.Load())
}

// sendOnce sends one message over a connection of its own.
func sendOnce(addr, from, to, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("crm.test"); err != nil {
		return err
	}
	return c.SendMail(from, []string{to}, strings.NewReader(msg))
}

// relayedReceipts pages through the message.relayed events through the
// admin API and counts them per Message-ID and recipient, after waiting
// (bounded) for the receipt journal to be empty.
func relayedReceipts(t *testing.T, s *server) map[string]int {
	t.Helper()
	for i := 0; metric(t, s, "optinproxy_journal_depth") != 0; i++ {
		if i == 300 {
			t.Fatal("the receipt journal did not drain within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	token, err := os.ReadFile(filepath.Join(s.dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/api/v1/events?type=message.relayed&limit=1000&cursor="+url.QueryEscape(cursor), nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Events []struct {
				Subject string `json:"subject"`
				Details struct {
					MessageID string `json:"message_id"`
				} `json:"details"`
			} `json:"events"`
			NextCursor string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("events page %d: %d %v", pages, resp.StatusCode, err)
		}
		for _, e := range page.Events {
			out[e.Details.MessageID+" "+e.Subject]++
		}
		if page.NextCursor == "" {
			return out
		}
		if pages > 1000 {
			t.Fatal("more than 1000 pages of events")
		}
		cursor = page.NextCursor
	}
}

// metric reads one series of a server's metrics ("name" or
// "name{label=\"value\"}"), 0 when the server has none.
func metric(t *testing.T, s *server, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(body, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(series+" ")); ok {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// TestRedisRestartUnderLoad: Redis is killed in the middle of 3,000
// messages and started again (on its append-only file) a second later.
// Messages that met it down get 451 and come again; receipts whose write
// met it down wait in the journal. Afterwards every copy the mailer took
// has exactly one message.relayed receipt, and none was taken twice
// (receipts are never lost).
func TestRedisRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load of 3,000 messages")
	}
	rs := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	sink := startSink(t)
	dir := t.TempDir()
	s := startServe(t, dir, "OPTINPROXY_STORE_REDIS_URL="+rs.URL()+"?dial_timeout=300ms&read_timeout=500ms&write_timeout=500ms",
		"OPTINPROXY_UPSTREAM_URL=smtp://"+sink.addr, "OPTINPROXY_POLICY_DEFAULT_PURPOSE=transactional")
	const n = 3000
	outage := func() {
		rs.Stop()
		time.Sleep(time.Second)
		rs.Restart()
	}
	if got := load(t, s.smtpAddr, n, 20, outage); got != n {
		t.Fatalf("%d of %d messages taken", got, n)
	}
	copies, receipts := sink.copies(), relayedReceipts(t, s)
	if len(copies) != n {
		t.Errorf("the mailer took %d distinct copies, want %d", len(copies), n)
	}
	for key, c := range copies {
		if c != 1 {
			t.Errorf("%s: delivered %d times", key, c)
		}
		if r := receipts[key]; r != 1 {
			t.Errorf("%s: %d message.relayed receipts, want 1", key, r)
		}
	}
	for key := range receipts {
		if copies[key] == 0 {
			t.Errorf("%s: a receipt for a copy the mailer never took", key)
		}
	}
	journaled, tempfails := metric(t, s, "optinproxy_journal_written_total"), metric(t, s, `optinproxy_smtp_messages_total{result="tempfail"}`)
	t.Logf("during the outage: %.0f receipts journaled, %.0f messages answered 451 and sent again", journaled, tempfails)
	if tempfails == 0 {
		t.Error("no message met the outage: the test proved nothing")
	}
}

// TestKillUnderLoad: the proxy is killed (SIGKILL) in the middle of
// 2,500 messages and started again on the same addresses while the
// clients keep trying. Every delivered copy is marked in the write that
// stores its receipt, so a retry of a message whose reply the kill took
// is not delivered again; only the copies the kill caught between the
// mailer's acceptance and that write can go twice, at most one per
// message in flight. The test reports duplicates per 1,000 messages.
func TestKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load of 2,500 messages")
	}
	rs := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	sink := startSink(t)
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	env := []string{"OPTINPROXY_STORE_REDIS_URL=" + rs.URL(), "OPTINPROXY_UPSTREAM_URL=smtp://" + sink.addr,
		"OPTINPROXY_POLICY_DEFAULT_PURPOSE=transactional", "OPTINPROXY_SMTP_LISTEN=" + smtpAddr, "OPTINPROXY_HTTP_LISTEN=" + httpAddr}
	s := startServe(t, dir, env...)
	const n, workers = 2500, 20
	var again *server
	got := load(t, smtpAddr, n, workers, func() {
		s.cmd.Process.Kill()
		<-s.done
		again = startServe(t, dir, env...)
	})
	if got != n {
		t.Fatalf("%d of %d messages taken", got, n)
	}
	copies, receipts := sink.copies(), relayedReceipts(t, again)
	dup, unreceipted := 0, 0
	for key, c := range copies {
		dup += c - 1
		if receipts[key] == 0 {
			unreceipted++
		}
		if receipts[key] > 1 {
			t.Errorf("%s: %d receipts", key, receipts[key])
		}
	}
	if len(copies) != n {
		t.Errorf("the mailer took %d distinct messages, want %d", len(copies), n)
	}
	t.Logf("kill -9 under load: %d duplicate copies in %d messages (%.1f per 1,000); %d copies without a receipt",
		dup, n, 1000*float64(dup)/n, unreceipted)
	if dup > workers || unreceipted > workers {
		t.Errorf("%d duplicates and %d copies without a receipt: more than the %d messages in flight at the kill", dup, unreceipted, workers)
	}
}

// TestRedisDownLogsJSON: when Redis goes away, go-redis's own complaints
// arrive in the JSON log as warnings, with no plain-text line among them
// and no address.
func TestRedisDownLogsJSON(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	s := startServe(t, dir, "OPTINPROXY_STORE_REDIS_URL="+rs.URL()+"?dial_timeout=300ms")
	rs.Stop()
	if code, out := swaksSend(t, s.smtpAddr, "jan@example.com", "--header", "X-Optin-Purpose: newsletter"); code == 0 || !strings.Contains(out, "451") {
		t.Fatalf("a message with Redis down: exit %d\n%s", code, out)
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-s.logs.lines:
			if !ok {
				t.Fatal("the server exited")
			}
			msg := fmt.Sprint(m["msg"])
			if strings.HasPrefix(msg, "(not json)") {
				t.Errorf("a plain-text line in the log: %s", msg)
			}
			if line, _ := json.Marshal(m); strings.Contains(string(line), "jan@example") {
				t.Errorf("an address in the log: %s", line)
			}
			if msg == "redis client" {
				if m["level"] != "WARN" || m["component"] != "redis" || !strings.Contains(fmt.Sprint(m["detail"]), "failed to dial") {
					t.Errorf("go-redis's line: %v", m)
				}
				return
			}
		case <-timeout:
			t.Fatal("no redis client line in the log within 60s")
		}
	}
}
