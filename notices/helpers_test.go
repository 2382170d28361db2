package notices

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"optinproxy/optin"
	"optinproxy/upstream"
)

// sink is a real SMTP server standing in for the upstream mailer. It
// records each message it took, and answers RCPT with refuse when set.
type sink struct {
	addr string

	mu     sync.Mutex
	refuse *smtp.SMTPError
	got    []received
	tries  int // RCPT commands seen, refused or not
}

// received is one message as the sink took it.
type received struct {
	from string
	to   []string
	utf8 bool // MAIL FROM asked for SMTPUTF8
	data []byte
}

func startSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "upstream.test"
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = quiet{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// upstream is the relay's own SMTP upstream, pointed at the sink.
func (s *sink) upstream(t *testing.T) upstream.Sender {
	t.Helper()
	up, err := upstream.New(upstream.Options{URL: "smtp://" + s.addr, LocalName: "relay.test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return up
}

func (s *sink) setRefuse(e *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = e
}

func (s *sink) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *sink) rcpts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Println(...any)        {}

type sinkSession struct {
	s   *sink
	cur received
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.cur = received{from: from, utf8: opts != nil && opts.UTF8}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.tries++
	if ss.s.refuse != nil {
		return ss.s.refuse
	}
	ss.cur.to = append(ss.cur.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.data = b
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.cur = received{} }
func (ss *sinkSession) Logout() error { return nil }

// parsed is a notice read back with go-message.
type parsed struct {
	header mail.Header
	parts  map[string]string // decoded body by media type
	cte    map[string]string // Content-Transfer-Encoding by media type
	params map[string]map[string]string
}

func (p parsed) subject() string {
	s, _ := p.header.Subject()
	return s
}

// parse reads a raw notice with go-message's mail reader, decoding each
// part's transfer encoding.
func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reading the notice: %v\n%s", err, raw)
	}
	p := parsed{header: r.Header, parts: map[string]string{}, cte: map[string]string{}, params: map[string]map[string]string{}}
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading a part: %v", err)
		}
		h, ok := part.Header.(*mail.InlineHeader)
		if !ok {
			t.Fatalf("a part that is not inline: %v", part.Header)
		}
		typ, params, err := h.ContentType()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatal(err)
		}
		p.parts[typ] = string(b)
		p.params[typ] = params
		p.cte[typ] = h.Get("Content-Transfer-Encoding")
	}
	return p
}

func mustAddress(t testing.TB, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// linkIn finds the one line of text that starts with prefix.
func linkIn(t *testing.T, text, prefix string) string {
	t.Helper()
	var found []string
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines start with %q in:\n%s", len(found), prefix, text)
	}
	return found[0]
}
