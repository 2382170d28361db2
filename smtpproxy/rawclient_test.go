package smtpproxy_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// rawClient speaks SMTP line by line over a real TCP connection, for what
// a well-behaved client library will not send: malformed commands, a
// message cut off in the middle, AUTH exchanges step by step.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

// dialRaw connects to addr and reads the 220 greeting. Every read and
// write is bounded, so a proxy that stops answering fails the test
// instead of hanging it.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
	if code, msg, err := r.read(); err != nil || code != 220 {
		t.Fatalf("greeting: %d %q %v", code, msg, err)
	}
	return r
}

// read reads one (possibly multi-line) reply; err is a network or
// protocol error, never the reply's code.
func (r *rawClient) read() (int, string, error) {
	r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	return r.tp.ReadResponse(0)
}

// cmd sends one line and returns the reply; err is a network error.
func (r *rawClient) cmd(format string, args ...any) (int, string, error) {
	r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := r.tp.PrintfLine(format, args...); err != nil {
		return 0, "", err
	}
	return r.read()
}

// must sends one line and fails the test unless the reply has the code.
// It returns the reply text, which starts with the enhanced code.
func (r *rawClient) must(code int, format string, args ...any) string {
	r.t.Helper()
	got, msg, err := r.cmd(format, args...)
	if err != nil {
		r.t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
	if got != code {
		r.t.Fatalf("%s: got %d %s, want %d", fmt.Sprintf(format, args...), got, msg, code)
	}
	return msg
}

// writeRaw sends bytes as they are.
func (r *rawClient) writeRaw(s string) {
	r.t.Helper()
	r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

// startTLS upgrades the connection after a 220 to STARTTLS.
func (r *rawClient) startTLS(cfg *tls.Config) {
	r.t.Helper()
	r.must(220, "STARTTLS")
	tc := tls.Client(r.conn, cfg)
	r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		r.t.Fatal(err)
	}
	r.conn, r.tp = tc, textproto.NewConn(tc)
}

// closed reports whether the server has closed the connection: a read
// gets EOF or a reset rather than a timeout.
func (r *rawClient) closed() bool {
	r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b [512]byte
	for {
		_, err := r.conn.Read(b[:])
		if err == nil {
			continue // e.g. a 421 before the close
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

func plainAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// receivedWith returns the protocol named in the first Received: header
// of a relayed message ("ESMTP", "ESMTPSA", ...), or "" when it has none.
func receivedWith(data []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	f := strings.Fields(m.Header.Get("Received"))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "with" {
			return f[i+1]
		}
	}
	return ""
}
