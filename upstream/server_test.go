package upstream_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"optinproxy/internal/testcert"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// mailer is a real SMTP server standing in for the upstream: plain,
// offering STARTTLS, or implicit TLS, optionally asking for AUTH. It
// records what each transaction looked like from its side.
type mailer struct {
	addr string
	srv  *smtp.Server

	// users, when set, are the accepted name/password pairs; MAIL
	// without AUTH is then refused.
	users map[string]string

	mu     sync.Mutex
	refuse map[string]*smtp.SMTPError // RCPT replies by address
	got    []mailed
	mails  int // MAIL commands seen, accepted or not
}

type mailed struct {
	from string
	to   []string
	data []byte
	tls  bool   // the connection was encrypted
	user string // who authenticated, "" for nobody
}

type mailerMode int

const (
	plainMailer    mailerMode = iota
	startTLSMailer            // offers STARTTLS
	implicitMailer            // TLS from the first byte
)

func startMailer(t *testing.T, mode mailerMode, cert *tls.Config, users map[string]string) *mailer {
	t.Helper()
	return startMailerAt(t, "127.0.0.1:0", mode, cert, users)
}

func startMailerAt(t *testing.T, addr string, mode mailerMode, cert *tls.Config, users map[string]string) *mailer {
	t.Helper()
	m := &mailer{users: users}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &mailerSession{m: m, tls: isTLS}, nil
	}))
	srv.Domain = "upstream.test"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = quiet{}
	if mode != plainMailer {
		srv.TLSConfig = cert
	}
	var ln net.Listener
	var err error
	for i := 0; ; i++ { // a port just given up may take a moment to free
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	if mode == implicitMailer {
		ln = tls.NewListener(ln, cert)
	}
	go srv.Serve(ln)
	m.srv = srv
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *mailer) stop() { m.srv.Close() }

func (m *mailer) all() []mailed {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mailed(nil), m.got...)
}

func (m *mailer) mailCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mails
}

type mailerSession struct {
	m    *mailer
	tls  bool
	user string
	from string
	to   []string
}

func (s *mailerSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailerSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if want, ok := s.m.users[user]; !ok || want != pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *mailerSession) Mail(from string, _ *smtp.MailOptions) error {
	s.m.mu.Lock()
	s.m.mails++
	s.m.mu.Unlock()
	if s.m.users != nil && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth first"}
	}
	s.from = from
	return nil
}

func (s *mailerSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	refuse := s.m.refuse[to]
	s.m.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mailerSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.got = append(s.m.got, mailed{from: s.from, to: s.to, data: b, tls: s.tls, user: s.user})
	s.m.mu.Unlock()
	return nil
}

func (s *mailerSession) Reset()        { s.from, s.to = "", nil }
func (s *mailerSession) Logout() error { return nil }

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Println(...any)        {}

// msg is a message as the proxy hands it over.
type msg string

func (m msg) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, string(m))
	return int64(n), err
}

const testMsg = msg("From: crm@shop.example\r\nSubject: hi\r\nMessage-ID: <u1@shop.example>\r\n\r\nbody\r\n")

// testCert makes a self-signed certificate for 127.0.0.1 and a client
// config that trusts it.
func testCert(t *testing.T) (server, client *tls.Config) {
	c := testcert.New(t, "upstream.test")
	return c.Server, c.Client()
}

func isSMTPError(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}
