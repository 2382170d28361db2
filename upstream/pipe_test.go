package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// pipeUpstream answers one lock-step transaction on c (MAIL, RCPT,
// DATA), then reads the message a write of the client at a time,
// pausing after each for pause, and sends how many bytes came to got.
func pipeUpstream(c net.Conn, pause time.Duration, got chan<- int) {
	defer c.Close()
	r := bufio.NewReader(c)
	for _, reply := range []string{"250 ok", "250 ok", "354 go ahead"} {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		io.WriteString(c, reply+"\r\n")
	}
	total := 0
	var tail []byte
	buf := make([]byte, 64<<10)
	for !bytes.HasSuffix(tail, []byte("\r\n.\r\n")) {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		total += n
		tail = append(tail, buf[:n]...)
		tail = tail[max(0, len(tail)-5):]
		time.Sleep(pause)
	}
	got <- total
	io.WriteString(c, "250 queued\r\n")
}

// The deadline is renewed for each buffer of the message written: a
// reader that pauses almost the timeout after each one takes a hundred
// times the timeout for the whole message, and gets all of it. (On a
// pipe, in a bubble, so that the pauses take no real time and the
// socket has no buffer to hide them.)
func TestMessageDeadlinePerBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		got := make(chan int, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			pipeUpstream(server, 900*time.Millisecond, got)
		}()
		defer func() { client.Close(); <-done }()
		c := newConn(client, time.Second, time.Minute)
		c.ext = map[string]string{}
		body := strings.Repeat(strings.Repeat("x", 1022)+"\r\n", 1<<10) // 1 MiB
		res := c.send("crm@shop.example", []string{"a@example.com"}, strings.NewReader(body), nil)
		if res.err != nil {
			t.Fatal(res.err)
		}
		if n := <-got; n != len(body)+len(".\r\n") {
			t.Errorf("upstream got %d bytes, want %d", n, len(body)+3)
		}
	})
}
