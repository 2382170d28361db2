package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func readOne(s string) (int, string, error) {
	return readReply(bufio.NewReaderSize(strings.NewReader(s), maxReplyLine))
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
		text string
		err  error // wanted with errors.Is; nil for none
	}{
		{"250 ok\r\n", 250, "ok", nil},
		{"250\r\n", 250, "", nil},                                          // text is optional
		{"250 ok\n", 250, "ok", nil},                                       // a bare LF is taken
		{"250-a\r\n250-b\r\n250 c\r\n", 250, "a\nb\nc", nil},               // multi-line
		{"550 5.1.1 no\x00such\ruser\r\n", 550, "5.1.1 no such user", nil}, // control characters go
		{"250-a\r\n251 b\r\n", 0, "", ErrProtocol},                         // codes differ
		{"999 odd\r\n", 0, "", ErrProtocol},
		{"600 odd\r\n", 0, "", ErrProtocol},
		{"199 early\r\n", 0, "", ErrProtocol},
		{"25 short\r\n", 0, "", ErrProtocol},
		{"2x0 letters\r\n", 0, "", ErrProtocol},
		{"250_ok\r\n", 0, "", ErrProtocol},
		{"+50 sign\r\n", 0, "", ErrProtocol},
		{"\r\n", 0, "", ErrProtocol},
		{"250 " + strings.Repeat("x", maxReplyLine) + "\r\n", 0, "", ErrProtocol},      // line too long
		{strings.Repeat("250-x\r\n", maxReplyLines) + "250 x\r\n", 0, "", ErrProtocol}, // too many lines
		{"", 0, "", io.EOF},                                                            // the connection ended before the reply
		{"250 o", 0, "", io.ErrUnexpectedEOF},                                          // ... or in the middle of it
		{"250-a\r\n", 0, "", io.ErrUnexpectedEOF},                                      // ... or of its lines
	} {
		code, text, err := readOne(tc.in)
		if code != tc.code || text != tc.text || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%.40q: %d %q %v, want %d %q %v", tc.in, code, text, err, tc.code, tc.text, tc.err)
		}
	}
}

func TestToSMTPError(t *testing.T) {
	for _, tc := range []struct {
		code int
		text string
		ec   smtp.EnhancedCode
		msg  string
	}{
		{550, "5.1.1 no such user", smtp.EnhancedCode{5, 1, 1}, "no such user"},
		{451, "4.3.0 try later", smtp.EnhancedCode{4, 3, 0}, "try later"},
		{550, "4.1.1 wrong class", smtp.EnhancedCodeNotSet, "4.1.1 wrong class"},
		{550, "5.1.1000 too long", smtp.EnhancedCodeNotSet, "5.1.1000 too long"},
		{550, "5.-1.1 sign", smtp.EnhancedCodeNotSet, "5.-1.1 sign"},
		{550, "5.1.1\nsecond line", smtp.EnhancedCodeNotSet, "5.1.1\nsecond line"},
		{550, "no code", smtp.EnhancedCodeNotSet, "no code"},
	} {
		e := toSMTPError(tc.code, tc.text)
		if e.Code != tc.code || e.EnhancedCode != tc.ec || e.Message != tc.msg {
			t.Errorf("%d %q: %d %v %q", tc.code, tc.text, e.Code, e.EnhancedCode, e.Message)
		}
	}
}

func TestParseExtensions(t *testing.T) {
	got := parseExtensions("upstream.test greets you\nPIPELINING\nsize 1000\nAUTH PLAIN LOGIN\nAUTH=LOGIN\n-BAD\n\n8BITMIME")
	want := map[string]string{"PIPELINING": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN", "8BITMIME": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := parseExtensions("only the greeting"); len(got) != 0 {
		t.Errorf("greeting only: %v", got)
	}
}

// FuzzReply reads replies from any bytes: each is a code 200-599 with
// clean text, or a protocol error, or the end of the input; what it
// returns, written out again, reads back the same; and a refusal's
// enhanced code is of its class.
func FuzzReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "250\r\n", "550 5.1.1 x\r\n", "250-a\r\n251 b\r\n", "999 x\r\n", "2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(strings.NewReader(string(in)), maxReplyLine)
		for {
			code, text, err := readReply(r)
			if err != nil {
				if !errors.Is(err, ErrProtocol) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("error %v", err)
				}
				return
			}
			checkReply(t, code, text)
		}
	})
}

func checkReply(t *testing.T, code int, text string) {
	t.Helper()
	if code < 200 || code > 599 {
		t.Fatalf("code %d", code)
	}
	lines := strings.Split(text, "\n")
	if len(lines) > maxReplyLines {
		t.Fatalf("%d lines", len(lines))
	}
	var wire strings.Builder
	for i, l := range lines {
		if strings.ContainsFunc(l, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			t.Fatalf("control character in %q", l)
		}
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&wire, "%d%s%s\r\n", code, sep, l)
	}
	c2, t2, err := readOne(wire.String())
	if c2 != code || t2 != text || err != nil {
		t.Fatalf("%d %q read back as %d %q %v", code, text, c2, t2, err)
	}
	if code >= 400 {
		e := toSMTPError(code, text)
		if e.EnhancedCode != smtp.EnhancedCodeNotSet && (e.EnhancedCode[0] != code/100 || !strings.HasSuffix(text, e.Message)) {
			t.Fatalf("%d %q: enhanced code %v, message %q", code, text, e.EnhancedCode, e.Message)
		}
	}
}

// keywordRE is RFC 5321's ehlo-keyword, to check parseExtensions against.
var keywordRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// FuzzExtensions: every line after the first whose first word is an
// ehlo-keyword is an extension, upper-cased, with the rest of the line
// trimmed as its parameters; no other line is.
func FuzzExtensions(f *testing.F) {
	for _, s := range []string{"mx.test\nPIPELINING\nSIZE 10240000\nAUTH PLAIN LOGIN", "x\nAUTH=LOGIN\n-X\n8BITMIME", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := parseExtensions(text)
		want := map[string]string{}
		lines := strings.Split(text, "\n")
		for _, l := range lines[1:] {
			k, v, _ := strings.Cut(l, " ")
			if keywordRE.MatchString(k) {
				want[strings.ToUpper(k)] = strings.TrimSpace(v)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q: got %v, want %v", text, got, want)
		}
	})
}
