package upstream

import (
	"bufio"
	"bytes"
	"testing"
)

// The dot-stuffing does not depend on where the writes split the message.
func TestDotWriterAnySplit(t *testing.T) {
	in := "a\r\n.b\r\n\r\n..c\nd\r\n.\r\ne\r"
	want := "a\r\n..b\r\n\r\n...c\r\nd\r\n..\r\ne\r"
	for cut := 0; cut <= len(in); cut++ {
		for cut2 := cut; cut2 <= len(in); cut2++ {
			var out bytes.Buffer
			bw := bufio.NewWriter(&out)
			d := &dotWriter{w: bw, bol: true}
			d.Write([]byte(in[:cut]))
			d.Write([]byte(in[cut:cut2]))
			d.Write([]byte(in[cut2:]))
			bw.Flush()
			if out.String() != want {
				t.Fatalf("split at %d,%d: %q, want %q", cut, cut2, out.String(), want)
			}
		}
	}
}
