package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// conn is one client connection to the upstream. It speaks SMTP itself
// rather than through go-smtp's client because that client has no
// PIPELINING (RFC 2920): lock-step, every message costs four round trips
// and a write for every few bytes of dot-stuffing, which on the
// benchmark was a fifth of the proxy's CPU. Here MAIL, every RCPT and
// DATA go out in one write, and the dot-stuffed message in buffer-sized
// writes.
//
// Every read and every write to the socket gets its own deadline:
// timeout from when it starts, dotTimeout for the reply to the final
// dot. RFC 5321 section 4.5.3.2 times each command, not the
// transaction. interrupt ends it all at once, for a cancelled context.
type conn struct {
	nc         net.Conn
	r          *bufio.Reader
	w          *bufio.Writer
	ext        map[string]string
	tls        bool
	timeout    time.Duration
	dotTimeout time.Duration
	lastUsed   time.Time

	mu            sync.Mutex // orders interrupt against the deadlines
	interrupted   bool
	interruptFunc func() // interrupt, for watch
}

func newConn(nc net.Conn, timeout, dotTimeout time.Duration) *conn {
	c := &conn{timeout: timeout, dotTimeout: dotTimeout}
	c.interruptFunc = c.interrupt // made once, not per transaction
	c.attach(nc)
	return c
}

// attach makes nc the connection's socket, with fresh buffers.
func (c *conn) attach(nc net.Conn) {
	_, c.tls = nc.(*tls.Conn)
	c.nc = nc
	c.r = bufio.NewReaderSize(nc, maxReplyLine)
	c.w = bufio.NewWriterSize(deadlineWriter{c}, 8<<10)
}

// deadlineWriter renews the write deadline before each write to the
// socket, so a long message is timed a piece at a time. A large write
// (the buffer passes those on whole) goes in pieces of writeChunk.
type deadlineWriter struct{ c *conn }

const writeChunk = 64 << 10

func (w deadlineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), writeChunk)
		w.c.mu.Lock()
		if !w.c.interrupted {
			w.c.nc.SetWriteDeadline(time.Now().Add(w.c.timeout))
		}
		w.c.mu.Unlock()
		m, err := w.c.nc.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// readWithin bounds the next read by d.
func (c *conn) readWithin(d time.Duration) {
	c.mu.Lock()
	if !c.interrupted {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	c.mu.Unlock()
}

// interrupt makes the pending and every later read and write fail.
func (c *conn) interrupt() {
	c.mu.Lock()
	c.interrupted = true
	c.nc.SetDeadline(time.Unix(1, 0))
	c.mu.Unlock()
}

// watch interrupts the connection when ctx ends, until stop is called;
// stop reports false when it came too late: the connection was (or is
// being) interrupted.
func (c *conn) watch(ctx context.Context) (stop func() bool) {
	c.mu.Lock()
	c.interrupted = false
	c.mu.Unlock()
	return context.AfterFunc(ctx, c.interruptFunc)
}

// replyWithin reads one reply within d. A 4xx or 5xx comes back as an
// *smtp.SMTPError, so that the proxy can pass an upstream's refusal on;
// a broken or garbled conversation as any other error.
func (c *conn) replyWithin(d time.Duration) (int, string, error) {
	c.readWithin(d)
	code, msg, err := readReply(c.r)
	if err != nil {
		return 0, "", err
	}
	if code >= 400 {
		return code, msg, toSMTPError(code, msg)
	}
	return code, msg, nil
}

func (c *conn) reply() (int, string, error) { return c.replyWithin(c.timeout) }

// expect reads a reply and wants the given code: another 4xx or 5xx is
// a refusal, another 2xx or 3xx a protocol error.
func (c *conn) expect(want int) (string, error) {
	code, msg, err := c.reply()
	if err != nil {
		return msg, err
	}
	if code != want {
		return msg, fmt.Errorf("%w: %d where %d was wanted", ErrProtocol, code, want)
	}
	return msg, nil
}

// cmd sends one command and reads its reply.
func (c *conn) cmd(want int, format string, args ...any) (string, error) {
	fmt.Fprintf(c.w, format+"\r\n", args...)
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.expect(want)
}

// hello greets with EHLO (HELO for a server that knows no EHLO) and keeps
// the extensions offered.
func (c *conn) hello(name string) error {
	msg, err := c.cmd(250, "EHLO %s", name)
	var se *smtp.SMTPError
	if errors.As(err, &se) && (se.Code == 500 || se.Code == 502) {
		c.ext = map[string]string{}
		_, err = c.cmd(250, "HELO %s", name)
		return err
	}
	if err != nil {
		return err
	}
	c.ext = parseExtensions(msg)
	return nil
}

func (c *conn) has(ext string) bool { _, ok := c.ext[ext]; return ok }

// startTLS upgrades the connection and greets again (RFC 3207: what the
// server offered before TLS no longer counts).
func (c *conn) startTLS(ctx context.Context, cfg *tls.Config, name string) error {
	if _, err := c.cmd(220, "STARTTLS"); err != nil {
		return err
	}
	tc := tls.Client(c.nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	c.attach(tc)
	return c.hello(name)
}

// auth logs in with PLAIN, or LOGIN where the server offers only that.
func (c *conn) auth(user, pass string) error {
	mechs := strings.Fields(strings.ToUpper(c.ext["AUTH"]))
	login := false
	for _, m := range mechs {
		if m == "PLAIN" {
			login = false
			break
		}
		login = login || m == "LOGIN"
	}
	if login {
		if _, err := c.cmd(334, "AUTH LOGIN"); err != nil {
			return err
		}
		if _, err := c.cmd(334, "%s", base64.StdEncoding.EncodeToString([]byte(user))); err != nil {
			return err
		}
		_, err := c.cmd(235, "%s", base64.StdEncoding.EncodeToString([]byte(pass)))
		return err
	}
	_, err := c.cmd(235, "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	return err
}

// quit says goodbye within d and closes; a failure changes nothing. The
// connection is idle: nothing is left in its write buffer.
func (c *conn) quit(d time.Duration) {
	c.nc.SetDeadline(time.Now().Add(d))
	if _, err := c.nc.Write([]byte("QUIT\r\n")); err == nil {
		readReply(c.r)
	}
	c.nc.Close()
}
