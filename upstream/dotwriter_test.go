package upstream

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// dotStuff runs in through a dotWriter in writes of at most chunk bytes,
// then Finish.
func dotStuff(in []byte, chunk int) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	d := newDotWriter(bw)
	for len(in) > 0 {
		n := min(chunk, len(in))
		d.Write(in[:n])
		in = in[n:]
	}
	d.Finish()
	bw.Flush()
	return out.Bytes()
}

func TestDotWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.b\r\n..c\r\n", "a\r\n..b\r\n...c\r\n.\r\n"},
		{"a\nb\n", "a\r\nb\r\n.\r\n"},               // bare LF
		{"a\rb\r", "a\r\nb\r\n.\r\n"},               // bare CR
		{"a\r\r\nb\n\r", "a\r\n\r\nb\r\n\r\n.\r\n"}, // CR CRLF, LF CR: two line ends each
		{"body\r.\nMAIL FROM:<e@x>\r\n", "body\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n"},
		{"body\n.\rMAIL FROM:<e@x>\r\n", "body\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n"},
		{"body\r\n.\r", "body\r\n..\r\n.\r\n"},
	} {
		if got := dotStuff([]byte(tc.in), len(tc.in)+1); string(got) != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The output does not depend on where the writes split the message.
func TestDotWriterAnySplit(t *testing.T) {
	in := "a\r\n.b\r\n\r\n..c\nd\r\n.\r\ne\r.\rf\n\n.\r"
	want := "a\r\n..b\r\n\r\n...c\r\nd\r\n..\r\ne\r\n..\r\nf\r\n\r\n..\r\n.\r\n"
	for cut := 0; cut <= len(in); cut++ {
		for cut2 := cut; cut2 <= len(in); cut2++ {
			var out bytes.Buffer
			bw := bufio.NewWriter(&out)
			d := newDotWriter(bw)
			d.Write([]byte(in[:cut]))
			d.Write([]byte(in[cut:cut2]))
			d.Write([]byte(in[cut2:]))
			d.Finish()
			bw.Flush()
			if out.String() != want {
				t.Fatalf("split at %d,%d: %q, want %q", cut, cut2, out.String(), want)
			}
		}
	}
}

// A write error (the socket broke) stops the writer.
func TestDotWriterError(t *testing.T) {
	bw := bufio.NewWriterSize(failWriter{}, 16)
	d := newDotWriter(bw)
	if _, err := d.Write([]byte(strings.Repeat("line\r\n", 10))); err != io.ErrClosedPipe {
		t.Errorf("Write: %v", err)
	}
	if err := d.Finish(); err != io.ErrClosedPipe {
		t.Errorf("Finish: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// FuzzDotWriter checks the writer against receivers written here, apart
// from it: whatever the message, however the writes split it,
//   - no CR goes out without an LF after it, no LF without a CR before,
//   - a receiver that takes any of CR, LF or CRLF for a line end (as
//     lenient ones do) sees no end of data but the last,
//   - a receiver following RFC 5321 gets the message back, its line
//     ends made CRLF and a last one added when missing.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", "a\r\n.b\r\n", "body\r.\nMAIL FROM:<e@x>\r\n", "\n.\n", "\r.\r", "a\r", ".", "x\r\r\n\n\r."} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16) {
		out := dotStuff(in, int(chunk)+1)
		if whole := dotStuff(in, len(in)+1); !bytes.Equal(out, whole) {
			t.Fatalf("%q: in writes of %d: %q; in one: %q", in, int(chunk)+1, out, whole)
		}
		for i, c := range out {
			if c == '\r' && (i+1 == len(out) || out[i+1] != '\n') || c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("%q: bare line end at %d of %q", in, i, out)
			}
		}
		if ends := lenientEnds(out); len(ends) != 1 || ends[0] != len(out) {
			t.Fatalf("%q: a lenient receiver sees ends of data at %v in %q (length %d)", in, ends, out, len(out))
		}
		if got, want := unstuff(t, out), normalise(in); got != want {
			t.Fatalf("%q: received %q, want %q", in, got, want)
		}
	})
}

// lenientEnds lists where a receiver that takes CR, LF and CRLF alike
// for a line end would find the end of data: after a line that is just
// a dot. The data starts at a line's beginning.
func lenientEnds(b []byte) []int {
	isEnd := func(c byte) bool { return c == '\r' || c == '\n' }
	var ends []int
	for i, c := range b {
		if c == '.' && (i == 0 || isEnd(b[i-1])) && i+1 < len(b) && isEnd(b[i+1]) {
			end := i + 2
			if b[i+1] == '\r' && end < len(b) && b[end] == '\n' {
				end++
			}
			ends = append(ends, end)
		}
	}
	return ends
}

// unstuff reads DATA as RFC 5321 section 4.5.2 says: lines end in CRLF,
// "." alone ends the data, a leading dot is dropped.
func unstuff(t *testing.T, b []byte) string {
	var got strings.Builder
	for rest := string(b); ; {
		line, after, ok := strings.Cut(rest, "\r\n")
		if !ok {
			t.Fatalf("no end of data in %q", b)
		}
		if line == "." {
			if after != "" {
				t.Fatalf("%q after the end of data", after)
			}
			return got.String()
		}
		got.WriteString(strings.TrimPrefix(line, ".") + "\r\n")
		rest = after
	}
}

// normalise makes every line end (CRLF, CR, LF) CRLF and ends the last
// line.
func normalise(in []byte) string {
	s := strings.ReplaceAll(string(in), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// BenchmarkDotWriter: a 1 MiB message handed over in one write, as the
// proxy does, with CRLF, bare LF and bare CR line ends (the last two
// must not cost more than the first).
func BenchmarkDotWriter(b *testing.B) {
	line := strings.Repeat("x", 74)
	for _, eol := range []string{"\r\n", "\n", "\r"} {
		var msg strings.Builder
		for i := 0; msg.Len() < 1<<20; i++ {
			if i%50 == 0 {
				msg.WriteString(".")
			}
			msg.WriteString(line + eol)
		}
		body := []byte(msg.String())
		b.Run(strings.NewReplacer("\r", "CR", "\n", "LF").Replace(eol), func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, 8<<10)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				d := newDotWriter(bw)
				d.Write(body)
				d.Finish()
				bw.Flush()
			}
		})
	}
}
