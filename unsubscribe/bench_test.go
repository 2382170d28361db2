package unsubscribe

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"runtime"
	"strings"
	"testing"
)

// alternative is a marketing message of about size bytes: text and HTML,
// both quoted-printable, both to get the footer.
func alternative(size int) []byte {
	n := max(1, size/2/len(para))
	raw := alternativeOf(n)
	return alternativeOf(max(1, n*size/len(raw)))
}

const para = "Onze nieuwe collectie is binnen – tot 80% korting op café-servies en meer. "

func alternativeOf(n int) []byte {
	text := strings.Repeat(para, n)
	var t, h bytes.Buffer
	q := quotedprintable.NewWriter(&t)
	q.Write([]byte(text))
	q.Close()
	q = quotedprintable.NewWriter(&h)
	q.Write([]byte("<html><body><p>" + text + "</p></body></html>"))
	q.Close()
	return msg("From: a@shop.example\nTo: b@customer.example\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"000000000000d4f1a2061a3b5c7e\"\n",
		"--000000000000d4f1a2061a3b5c7e\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+t.String()+
			"\r\n--000000000000d4f1a2061a3b5c7e\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+h.String()+"\r\n--000000000000d4f1a2061a3b5c7e--\r\n")
}

// withAttachment is a short HTML message with a base64 attachment of
// about size bytes once encoded.
func withAttachment(size int) []byte {
	data := make([]byte, size*3/4)
	for i := range data {
		data[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	var lines strings.Builder
	for len(enc) > 76 {
		lines.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	lines.WriteString(enc + "\r\n")
	return msg("From: a@shop.example\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"m\"\n",
		"--m\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Zie de bijlage.</p></body></html>\r\n"+
			"--m\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			lines.String()+"--m--\r\n")
}

// BenchmarkWriteCopy is the cost of one recipient's copy.
func BenchmarkWriteCopy(b *testing.B) {
	for _, bc := range []struct {
		name string
		raw  []byte
	}{
		{"4KiB", alternative(4 << 10)},
		{"1MiB-text", alternative(1 << 20)},
		{"1MiB-attachment", withAttachment(1 << 20)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, body := split(b, bc.raw)
			c := testCopy()
			b.SetBytes(int64(len(bc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := WriteCopy(io.Discard, h.Copy(), body, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteCopy25MiB: the extra memory of one copy of a 25 MiB
// message with a 24 MiB base64 attachment (bytes allocated per copy; the
// body is shared and not counted).
func BenchmarkWriteCopy25MiB(b *testing.B) {
	raw := withAttachment(24 << 20)
	raw = append(raw[:len(raw):len(raw)], []byte(strings.Repeat(" ", max(0, 25<<20-len(raw))))...)
	h, body := split(b, raw)
	c := testCopy()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	for b.Loop() {
		if _, err := WriteCopy(io.Discard, h.Copy(), body, c); err != nil {
			b.Fatal(err)
		}
		n++
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "alloc-bytes/copy")
	b.ReportMetric(float64(len(raw)), "message-bytes")
}

func TestBenchmarkMessagesAreLinked(t *testing.T) {
	for _, raw := range [][]byte{alternative(4 << 10), withAttachment(64 << 10)} {
		if _, o := writeCopy(t, raw, testCopy()); o.Skipped != 0 || o.Linked == 0 {
			t.Errorf("outcome %+v", o)
		}
	}
	if n := len(alternative(4 << 10)); n < 3<<10 || n > 5<<10 {
		t.Errorf("the 4 KiB message has %d bytes", n)
	}
}
