package upstream_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/upstream"
)

// lockstepServer is a minimal SMTP server that does not offer PIPELINING
// and fails if a client sends a command before the previous one was
// answered. It records the raw DATA it receives.
type lockstepServer struct {
	addr string
	// hook, when set, sees every command of connection n (counted from
	// 1) before it is answered: the upper-cased line without CRLF, "."
	// for the end of a message, "EOF" when the client has gone. It may
	// block, to stall the reply, and a reply it returns replaces the
	// usual one; hangUp closes the connection instead.
	hook func(n int, cmd string) string

	mu    sync.Mutex
	data  [][]byte
	errs  []string
	conns int
	// open and maxOpen count the connections open at once. A connection
	// stops counting when the server hangs up, before it closes, or when
	// it finds the client gone: a client's own close is seen late, so
	// maxOpen may count one too many then, never too few.
	open, maxOpen int
}

// hangUp, returned by a hook, closes the connection without a reply.
const hangUp = "<hang up>"

func startLockstep(t *testing.T, hook func(n int, cmd string) string) *lockstepServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &lockstepServer{addr: ln.Addr().String(), hook: hook}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			n := s.conns
			s.open++
			s.maxOpen = max(s.maxOpen, s.open)
			s.mu.Unlock()
			go s.serve(c, n)
		}
	}()
	return s
}

func (s *lockstepServer) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// mostOpen is the most connections that were open at once.
func (s *lockstepServer) mostOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

func (s *lockstepServer) messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.data...)
}

// answer gives the hook's reply to cmd, or def.
func (s *lockstepServer) answer(n int, cmd, def string) string {
	if s.hook != nil {
		if r := s.hook(n, cmd); r != "" {
			return r
		}
	}
	return def
}

func (s *lockstepServer) fail(msg string) {
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
}

func (s *lockstepServer) serve(c net.Conn, n int) {
	var once sync.Once
	gone := func() {
		once.Do(func() {
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
		})
	}
	defer c.Close()
	defer gone()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) {
		if line == hangUp {
			gone()
			c.Close() // the next read fails and ends the loop
			return
		}
		c.Write([]byte(line + "\r\n"))
	}
	say("220 lockstep ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			s.answer(n, "EOF", "")
			return
		}
		if r.Buffered() > 0 {
			s.fail("pipelined without PIPELINING after " + strings.TrimSpace(line))
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-lockstep")
			say(s.answer(n, cmd, "250 8BITMIME"))
		case strings.HasPrefix(cmd, "MAIL FROM:"), cmd == "RSET", cmd == "NOOP":
			say(s.answer(n, cmd, "250 2.0.0 ok"))
		case strings.HasPrefix(cmd, "RCPT TO:<BAD@"):
			say(s.answer(n, cmd, "550 5.1.1 no such user"))
		case strings.HasPrefix(cmd, "RCPT TO:"):
			say(s.answer(n, cmd, "250 2.1.5 ok"))
		case cmd == "DATA":
			reply := s.answer(n, cmd, "354 go ahead")
			say(reply)
			if !strings.HasPrefix(reply, "354") {
				continue
			}
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			s.mu.Lock()
			s.data = append(s.data, data.Bytes())
			s.mu.Unlock()
			say(s.answer(n, ".", "250 2.0.0 queued"))
		case cmd == "QUIT":
			say(s.answer(n, cmd, "221 bye")) // and wait for the client to close
		default:
			say(s.answer(n, cmd, "500 5.5.1 what?"))
		}
	}
}

// Without PIPELINING every command waits for its answer; the message is
// dot-stuffed and bare LF becomes CRLF; a refused recipient is reported
// while the others get the message.
func TestLockstepUpstream(t *testing.T) {
	srv := startLockstep(t, nil)
	s, err := upstream.New(upstream.Options{URL: "smtp://" + srv.addr, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := "Subject: dots\r\n\r\n.leading dot\r\nbare lf\n..two\r\nlast line without newline"
	rcptErrs, err := s.Send(ctx, "crm@shop.example", []string{"a@example.com", "bad@example.com"}, msg(m), nil)
	if err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if len(rcptErrs) != 2 || rcptErrs[0] != nil || !errors.As(rcptErrs[1], &se) || se.Code != 550 {
		t.Fatalf("recipient results %v", rcptErrs)
	}
	want := "Subject: dots\r\n\r\n..leading dot\r\nbare lf\r\n...two\r\nlast line without newline\r\n"
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.data) != 1 || string(srv.data[0]) != want {
		t.Errorf("on the wire:\n%q\nwant\n%q", srv.data, want)
	}
	if len(srv.errs) > 0 {
		t.Errorf("protocol errors: %v", srv.errs)
	}
	// Every recipient refused: no DATA, the refusal comes back.
	srv.mu.Unlock()
	_, err = s.Send(ctx, "crm@shop.example", []string{"bad@example.com"}, msg(m), nil)
	srv.mu.Lock()
	if !errors.As(err, &se) || se.Code != 550 || len(srv.data) != 1 {
		t.Errorf("all refused: %v, %d messages", err, len(srv.data))
	}
}
