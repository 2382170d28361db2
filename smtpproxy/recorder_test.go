package smtpproxy_test

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// recorder is a real SMTP server standing in for the upstream mailer. It
// records every message it accepts and has knobs to fail on purpose.
type recorder struct {
	t    *testing.T
	addr string
	srv  *smtp.Server
	ln   net.Listener

	mu        sync.Mutex
	got       []delivery
	conns     int
	failMail  *smtp.SMTPError
	failRcpt  map[string]*smtp.SMTPError // by address as given
	failData  *smtp.SMTPError
	delayData time.Duration // before answering the final dot
	delayMail time.Duration
	// hold, when set, keeps each of the first messages at the final dot
	// until as many are being received at once.
	hold *barrier
}

// barrier lets its first n callers through once all n have arrived, and
// every later caller at once.
type barrier struct {
	mu  sync.Mutex
	n   int
	all chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) wait() {
	b.mu.Lock()
	b.n--
	if b.n == 0 {
		close(b.all)
	}
	b.mu.Unlock()
	<-b.all
}

type delivery struct {
	from string
	to   []string
	data []byte
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{t: t, failRcpt: map[string]*smtp.SMTPError{}}
	r.start(t, "127.0.0.1:0")
	return r
}

func (r *recorder) newServer() *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		r.mu.Lock()
		r.conns++
		r.mu.Unlock()
		return &recSession{r: r}, nil
	}))
	srv.Domain = "upstream.test"
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = discardLog{}
	return srv
}

func (r *recorder) start(t *testing.T, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := r.newServer()
	r.srv, r.ln, r.addr = srv, ln, ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// restart stops the server and starts a new one on the same address.
func (r *recorder) restart(t *testing.T) {
	r.stop()
	r.start(t, r.addr)
}

// stop closes the listener and every connection: the upstream is down.
func (r *recorder) stop() {
	r.srv.Close()
	r.ln.Close() // Serve may not have registered it yet
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *recorder) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// received counts the copies each recipient got.
func (r *recorder) received() map[string]int {
	m := map[string]int{}
	for _, d := range r.deliveries() {
		for _, to := range d.to {
			m[to]++
		}
	}
	return m
}

func (r *recorder) set(f func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

type recSession struct {
	r    *recorder
	from string
	to   []string
}

func (s *recSession) Reset()        { s.from, s.to = "", nil }
func (s *recSession) Logout() error { return nil }

func (s *recSession) Mail(from string, _ *smtp.MailOptions) error {
	s.r.mu.Lock()
	fail, delay := s.r.failMail, s.r.delayMail
	s.r.mu.Unlock()
	time.Sleep(delay)
	if fail != nil {
		return fail
	}
	s.from = from
	return nil
}

func (s *recSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	fail := s.r.failRcpt[to]
	s.r.mu.Unlock()
	if fail != nil {
		return fail
	}
	s.to = append(s.to, to)
	return nil
}

func (s *recSession) Data(rd io.Reader) error {
	var b bytes.Buffer
	if _, err := b.ReadFrom(rd); err != nil {
		return err
	}
	s.r.mu.Lock()
	fail, delay, hold := s.r.failData, s.r.delayData, s.r.hold
	s.r.mu.Unlock()
	if hold != nil {
		hold.wait()
	}
	time.Sleep(delay)
	if fail != nil {
		return fail
	}
	s.r.mu.Lock()
	s.r.got = append(s.r.got, delivery{from: s.from, to: append([]string(nil), s.to...), data: b.Bytes()})
	s.r.mu.Unlock()
	return nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}
