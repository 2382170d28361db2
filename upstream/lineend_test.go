package upstream_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"optinproxy/upstream"
)

// A bare CR or bare LF in the message never reaches the upstream: each
// becomes CRLF and the line after it is dot-stuffed, so an upstream that
// takes a bare CR or LF for a line end cannot see a second transaction
// hidden in the body (SMTP smuggling).
func TestNoSmugglingThroughBareLineEnds(t *testing.T) {
	var mu sync.Mutex
	mails := 0
	srv := startLockstep(t, func(_ int, cmd string) string {
		if strings.HasPrefix(cmd, "MAIL") {
			mu.Lock()
			mails++
			mu.Unlock()
		}
		return ""
	})
	s, err := upstream.New(upstream.Options{URL: "smtp://" + srv.addr, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct{ in, want string }{
		{ // bare CR before the dot
			"Subject: x\r\n\r\nbody\r.\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nevil\r\n.\r\nend\r\n",
			"Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nevil\r\n..\r\nend\r\n",
		},
		{ // bare LF before the dot, and a bare CR after it
			"Subject: x\r\n\r\nbody\n.\rMAIL FROM:<evil@x>\n",
			"Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<evil@x>\r\n",
		},
		{ // the message ends in a bare CR
			"Subject: x\r\n\r\nbody\r",
			"Subject: x\r\n\r\nbody\r\n",
		},
	} {
		before := len(srv.messages())
		if _, err := s.Send(ctx, "crm@shop.example", []string{"a@example.com"}, msg(tc.in), nil); err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		got := srv.messages()
		if len(got) != before+1 || string(got[before]) != tc.want {
			t.Errorf("%q on the wire:\n%q\nwant\n%q", tc.in, got[before:], tc.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if mails != 3 {
		t.Errorf("the upstream saw %d MAIL commands, want 3", mails)
	}
}
