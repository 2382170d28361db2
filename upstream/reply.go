package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// Replies are read with limits: RFC 5321 section 4.5.3.1.5 allows 512
// octets a line; servers exceed it a little, never by this much. An
// upstream sending more is broken, and must not make the proxy hold an
// unbounded reply.
const (
	maxReplyLine  = 4096 // the reader's buffer: a longer line is refused
	maxReplyLines = 128
)

// readReply reads one reply (RFC 5321 section 4.2): lines "ddd-text",
// then a last "ddd text" or "ddd", all with the same code, 2xx to 5xx.
// The text of the lines is joined with "\n", control characters made
// spaces. A broken reply is an ErrProtocol; a broken connection its own
// error (io.EOF when it ended before the reply began).
func readReply(r *bufio.Reader) (int, string, error) {
	var b strings.Builder
	code := 0
	for n := 0; n < maxReplyLines; n++ {
		line, err := readLine(r, n == 0)
		if err != nil {
			return 0, "", err
		}
		c, more, text, ok := parseReplyLine(line)
		switch {
		case !ok:
			// Not quoted: a reply may name a recipient, and errors are logged.
			return 0, "", fmt.Errorf("%w: a garbled reply line of %d bytes", ErrProtocol, len(line))
		case n > 0 && c != code:
			return 0, "", fmt.Errorf("%w: reply lines with codes %d and %d", ErrProtocol, code, c)
		case n > 0:
			b.WriteByte('\n')
		}
		code = c
		writeText(&b, text)
		if !more {
			return code, b.String(), nil
		}
	}
	return 0, "", fmt.Errorf("%w: a reply of more than %d lines", ErrProtocol, maxReplyLines)
}

// readLine reads a line and drops its CRLF (or LF).
func readLine(r *bufio.Reader, first bool) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: a reply line longer than %d bytes", ErrProtocol, r.Size())
	case err == io.EOF && (len(line) > 0 || !first):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseReplyLine splits "250-text", "250 text" or "250".
func parseReplyLine(line []byte) (code int, more bool, text []byte, ok bool) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, false, nil, false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, nil, true
	}
	switch line[3] {
	case '-':
		return code, true, line[4:], true
	case ' ':
		return code, false, line[4:], true
	}
	return 0, false, nil, false
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// writeText copies reply text, control characters made spaces: the text
// may reach the proxy's own client in a reply, and the log.
func writeText(b *strings.Builder, text []byte) {
	b.Grow(len(text)) // once, not byte by byte: a reply per command
	for _, c := range text {
		if c < ' ' && c != '\t' || c == 0x7f {
			c = ' '
		}
		b.WriteByte(c)
	}
}

// toSMTPError turns a reply into go-smtp's error type, reading the
// enhanced status code (RFC 3463) from the start of the text.
func toSMTPError(code int, msg string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: msg}
	if first, rest, ok := strings.Cut(msg, " "); ok {
		parts := strings.Split(first, ".")
		if len(parts) == 3 {
			var ec smtp.EnhancedCode
			good := true
			for i, p := range parts {
				n, err := strconv.Atoi(p)
				good = good && err == nil && len(p) <= 3 && isDigit(p[0])
				ec[i] = n
			}
			if good && ec[0] == code/100 {
				e.EnhancedCode, e.Message = ec, rest
			}
		}
	}
	return e
}

// parseExtensions reads the lines of an EHLO reply after the first: an
// extension keyword, then its parameters (RFC 5321 section 4.1.1.1).
// Keywords are upper-cased; a line whose keyword is not one (such as the
// old "AUTH=LOGIN") is skipped.
func parseExtensions(text string) map[string]string {
	ext := map[string]string{}
	_, rest, _ := strings.Cut(text, "\n")
	for line := range strings.SplitSeq(rest, "\n") {
		k, v, _ := strings.Cut(line, " ")
		if isKeyword(k) {
			ext[strings.ToUpper(k)] = strings.TrimSpace(v)
		}
	}
	return ext
}

// isKeyword: ALPHA or DIGIT, then ALPHA, DIGIT or "-".
func isKeyword(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		alnum := isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alnum && (i == 0 || c != '-') {
			return false
		}
	}
	return k != ""
}
