package smtpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// FuzzParseMessage feeds the header split whatever a client may send. A
// message it accepts must come out as it went in (received fields byte
// for byte, the body untouched), its body must be the tail of the input,
// and once stamped it must still parse, with the same Message-ID and a
// Received: field free of the client's control characters.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"From: a@b\r\nSubject: x\r\n\r\nbody\r\n",
		"Subject: no body\r\n\r\n",
		"Subject: lf only\n\nbody\n",
		"X-Optin-Purpose: newsletter\r\nMessage-ID: <m1@x>\r\n\r\nHi\r\n",
		"Subject: folded\r\n continued\r\n\tand more\r\n\r\n.\r\n",
		"no colon here\r\n\r\n",
		"\r\nbody only\r\n",
		"Subject: bare\rCR\r\n\r\nbody\rMAIL FROM:<e@x>\r\n",
		"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n",
	} {
		f.Add([]byte(s), "client.example")
	}
	f.Fuzz(func(t *testing.T, raw []byte, helo string) {
		in := bytes.Clone(raw)
		m, err := parseMessage(raw)
		if err != nil {
			return
		}
		if !bytes.Equal(raw, in) {
			t.Fatal("parseMessage changed its input")
		}
		if !bytes.HasSuffix(raw, m.body) {
			t.Fatal("the body is not the tail of the message")
		}
		var out bytes.Buffer
		if _, err := m.WriteTo(&out); err != nil {
			return // a header go-message will not write back is refused at send
		}
		if hdr := len(raw) - len(m.body); !bytes.Equal(out.Bytes()[out.Len()-len(m.body):], m.body) || out.Len() < hdr {
			t.Fatalf("written message lost its body: %q -> %q", raw, out.Bytes())
		}
		id := m.id
		m.stamp("qid", "relay.test", helo, "192.0.2.1", "ESMTP", time.Unix(0, 0))
		out.Reset()
		if _, err := m.WriteTo(&out); err != nil {
			t.Fatalf("stamped message cannot be written: %v", err)
		}
		again, err := parseMessage(out.Bytes())
		if err != nil {
			t.Fatalf("stamped message does not parse: %v\n%q", err, out.Bytes())
		}
		if id != "" && again.id != id {
			t.Fatalf("Message-ID changed: %q -> %q", id, again.id)
		}
		if id == "" && again.id != "<qid@relay.test>" {
			t.Fatalf("added Message-ID: %q", again.id)
		}
		rcv := again.header.Get("Received")
		if strings.ContainsFunc(rcv, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("control character in Received: %q", rcv)
		}
	})
}

// headerFault keeps none of the text of the error it classifies, whatever
// the error: the text may quote the message.
func TestHeaderFault(t *testing.T) {
	const content = "jan.dejong@example.org"
	for _, c := range []struct {
		err  error
		kind string
	}{
		{fmt.Errorf("message: malformed MIME header line: %s", content), "colon"},
		{fmt.Errorf("message: malformed MIME header key: %s", content), "field name"},
		{fmt.Errorf("message: malformed MIME header initial line: %s", content), "continuation"},
		{fmt.Errorf("reading %s: %w", content, io.ErrUnexpectedEOF), "ends inside"},
		{io.EOF, "ends inside"},
		{errors.New("a future error about " + content), "unreadable"},
	} {
		err := headerFault(c.err)
		var he headerError
		if !errors.As(err, &he) || !strings.Contains(err.Error(), c.kind) || strings.Contains(err.Error(), content) {
			t.Errorf("headerFault(%q) = %q, want a headerError saying %q without the content", c.err, err, c.kind)
		}
	}
}
