// Package bench holds the relay throughput benchmarks. This file is the
// in-process one: it needs no Postfix and runs with plain `go test`, so its
// CPU profile shows where the proxy spends its time. bench/relay.sh is the
// end-to-end one with Postfix's smtp-source and smtp-sink.
//
//	go test -run '^$' -bench . ./bench/
//	go test -run '^$' -bench 'Relay/smtp/reuse' -cpuprofile /tmp/cpu.out ./bench/
//	go tool pprof -top -tagfocus role=proxy /tmp/cpu.out
//
// Every sub-benchmark runs benchSessions client sessions in parallel, each
// sending benchPayload-byte messages, straight to an SMTP sink ("direct") or
// through smtpproxy with the pooled SMTP upstream ("smtp") or the file
// upstream ("file"); "reuse" keeps a client connection for many messages,
// "dial" opens one per message. The client, the proxy and the sink run in
// this one process; pprof labels (role=client, proxy, sink) tell them apart
// in the profile.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/smtpproxy"
	"optinproxy/upstream"
)

const (
	benchSessions = 20
	benchPayload  = 4096
)

// message is a 4 KiB-body message much like smtp-source's -l 4096 one;
// send puts a Message-ID of its own above it, as smtp-source does.
// setMessageSize changes it for the benchmarks that measure size.
var message = makeMessage(benchPayload)

func makeMessage(payload int) []byte {
	var b strings.Builder
	b.WriteString("From: <bench@source.test>\r\nTo: <rcpt@sink.test>\r\nSubject: bench\r\n")
	b.WriteString("Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n")
	line := strings.Repeat("La-la-la ", 8)[:70] + "\r\n" // 72 bytes a line
	for n := 0; n < payload; n += len(line) {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// setMessageSize makes message's body payload bytes until the benchmark
// ends.
func setMessageSize(b *testing.B, payload int) {
	b.Helper()
	old := message
	message = makeMessage(payload)
	b.Cleanup(func() { message = old })
}

// sink is an SMTP server that counts and discards what it gets.
type sink struct {
	addr string
	msgs atomic.Int64
}

type sinkSession struct{ s *sink }

func (x sinkSession) Reset()                               {}
func (x sinkSession) Logout() error                        { return nil }
func (x sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (x sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x sinkSession) AuthMechanisms() []string             { return nil }
func (x sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	x.s.msgs.Add(1)
	return nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

func startSink(b *testing.B) *sink {
	b.Helper()
	s := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }))
	srv.Domain = "sink.test"
	srv.ErrorLog = discardLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s.addr = ln.Addr().String()
	// Goroutines inherit pprof labels: every connection goroutine of the
	// sink is marked role=sink.
	pprof.Do(context.Background(), pprof.Labels("role", "sink"), func(context.Context) {
		go srv.Serve(ln)
	})
	b.Cleanup(func() { srv.Close() })
	return s
}

// proxy is an in-process smtpproxy.Server set up as cmd/optinproxy does:
// JSON logs at Info (to io.Discard here, still formatted) and metrics.
type proxy struct {
	addr string
	reg  *prometheus.Registry
}

func startProxy(b *testing.B, upstreamURL string) *proxy {
	b.Helper()
	return startProxyWith(b, upstreamURL, nil)
}

// startProxyWith starts a proxy whose options edit may change.
func startProxyWith(b *testing.B, upstreamURL string, edit func(o *smtpproxy.Options)) *proxy {
	b.Helper()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sender, err := upstream.New(upstream.Options{URL: upstreamURL, Timeout: 10 * time.Second, PoolSize: benchSessions,
		LocalName: "relay.test", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	// Unless edit says otherwise, the proxy decides from an embedded
	// store, and the mail is transactional, which every recipient may get.
	opts := smtpproxy.Options{
		Hostname:        "relay.test",
		Upstream:        sender,
		Store:           teststore.File(b, filepath.Join(b.TempDir(), "optinproxy.db")),
		Purposes:        optin.Purposes{"orders": {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional}},
		DefaultPurpose:  "orders",
		UpstreamTimeout: 20 * time.Second,
		Logger:          log,
		Metrics:         reg,
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := smtpproxy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	pprof.Do(context.Background(), pprof.Labels("role", "proxy"), func(context.Context) {
		go srv.Serve(ln)
	})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		sender.Close()
	})
	return &proxy{addr: ln.Addr().String(), reg: reg}
}

// relayed reads optinproxy_smtp_messages_total{result="relayed"}.
func (p *proxy) relayed(b *testing.B) int64 {
	b.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "optinproxy_smtp_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == "relayed" {
					return int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

var msgSeq atomic.Int64

// recipients is how many recipients each message has, and rcptFor
// names them; the enforcement benchmark changes both.
var (
	recipients = 1
	rcptFor    = func(seq int64, i int) string { return "rcpt@sink.test" }
)

// send runs one transaction on c.
func send(c *smtp.Client) error {
	if err := c.Mail("bench@source.test", nil); err != nil {
		return err
	}
	seq := msgSeq.Add(1)
	for i := range recipients {
		if err := c.Rcpt(rcptFor(seq, i), nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "Message-ID: <%d.bench@source.test>\r\n", seq); err != nil {
		return err
	}
	if _, err := w.Write(message); err != nil {
		return err
	}
	return w.Close()
}

// drive sends n messages to addr from benchSessions parallel sessions,
// each on one connection (reuse) or one connection per message.
func drive(addr string, n int, reuse bool) error {
	var left atomic.Int64
	left.Store(int64(n))
	take := func() bool { return left.Add(-1) >= 0 }
	errs := make(chan error, benchSessions)
	var wg sync.WaitGroup
	pprof.Do(context.Background(), pprof.Labels("role", "client"), func(context.Context) {
		for range benchSessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- session(addr, reuse, take)
			}()
		}
	})
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func session(addr string, reuse bool, take func() bool) error {
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for take() {
		if c == nil {
			var err error
			if c, err = smtp.Dial(addr); err != nil {
				return err
			}
			if err := c.Hello("source.test"); err != nil {
				return err
			}
		}
		if err := send(c); err != nil {
			return err
		}
		if !reuse {
			if err := c.Quit(); err != nil {
				return err
			}
			c = nil
		}
	}
	if c != nil {
		return c.Quit()
	}
	return nil
}

// BenchmarkRelay reports msgs/s per path and client mode. ns/op is the
// wall time per message with benchSessions sessions in parallel, so
// msgs/s = 1e9 / ns/op.
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []struct {
		name  string
		reuse bool
	}{{"reuse", true}, {"dial", false}} {
		b.Run("direct/"+mode.name, func(b *testing.B) {
			s := startSink(b)
			run(b, s.addr, mode.reuse)
			if got := s.msgs.Load(); got != int64(b.N) {
				b.Fatalf("sink got %d messages, want %d", got, b.N)
			}
		})
		b.Run("smtp/"+mode.name, func(b *testing.B) {
			s := startSink(b)
			p := startProxy(b, "smtp://"+s.addr)
			run(b, p.addr, mode.reuse)
			if got, relayed := s.msgs.Load(), p.relayed(b); got != int64(b.N) || relayed != int64(b.N) {
				b.Fatalf("sink got %d messages and the proxy counted %d relayed, want %d", got, relayed, b.N)
			}
		})
		b.Run("file/"+mode.name, func(b *testing.B) {
			dir := b.TempDir()
			p := startProxy(b, "file://"+dir)
			run(b, p.addr, mode.reuse)
			files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
			if err != nil {
				b.Fatal(err)
			}
			if relayed := p.relayed(b); len(files) != b.N || relayed != int64(b.N) {
				b.Fatalf("%d .eml files and %d relayed, want %d", len(files), relayed, b.N)
			}
			// Each round of the benchmark runs in a fresh proxy; the files
			// of a big round need not stay until the end.
			os.RemoveAll(dir)
		})
	}
}

func run(b *testing.B, addr string, reuse bool) {
	b.Helper()
	b.SetBytes(int64(len(message)))
	b.ResetTimer()
	start := time.Now()
	if err := drive(addr, b.N, reuse); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// The message must be what the comments say; a broken generator would make
// the numbers meaningless.
func init() {
	if n := len(message); n < benchPayload || n > benchPayload+400 {
		panic(fmt.Sprintf("bench message is %d bytes", n))
	}
}
