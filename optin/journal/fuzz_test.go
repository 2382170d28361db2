package journal

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"testing"
	"time"

	"optinproxy/optin"
)

// fuzzAEAD is the key the fuzz targets' frames are sealed under.
func fuzzAEAD(f *testing.F) cipher.AEAD {
	aead, err := newAEAD(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	return aead
}

func fuzzFrame(f *testing.F, aead cipher.AEAD, n int) []byte {
	var changes []optin.Change
	for i := range n {
		changes = append(changes, receipt(addr(f, "fuzz%d@example.com", i), "<fuzz@x>", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
	frame, err := sealFrame(aead, changes)
	if err != nil {
		f.Fatal(err)
	}
	return frame
}

// FuzzDecodeFrame: the decoder of what is read from disk never panics,
// reports only its three errors, and what it opens has the shape Drain
// relies on.
func FuzzDecodeFrame(f *testing.F) {
	aead := fuzzAEAD(f)
	frame := fuzzFrame(f, aead, 2)
	f.Add(frame)
	f.Add(frame[:headerSize])
	f.Add(frame[:len(frame)-1])
	f.Add(append(bytes.Clone(frame), frame...))
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		changes, n, err := decodeFrame(aead, buf)
		if err != nil {
			if !errors.Is(err, errShort) && !errors.Is(err, errHeader) && !errors.Is(err, errSeal) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n < headerSize+nonceSize+tagSize || n > len(buf) || len(changes) == 0 {
			t.Fatalf("%d changes in %d bytes of %d", len(changes), n, len(buf))
		}
		for _, ch := range changes {
			if ch.Subject.IsZero() || ch.Event.ID == "" || !ch.Once {
				t.Fatalf("a change Drain cannot replay: %+v", ch)
			}
		}
	})
}

// FuzzScan: scanning any bytes ends, cuts them into regions that follow
// each other from the start to the end, and finds every frame that
// decodeFrame opens where a region starts.
func FuzzScan(f *testing.F) {
	aead := fuzzAEAD(f)
	a, b := fuzzFrame(f, aead, 1), fuzzFrame(f, aead, 3)
	f.Add(append(bytes.Clone(a), b...))
	f.Add(append(append(bytes.Clone(a), "garbage"...), b...))
	f.Add(append(bytes.Clone(a), b[:len(b)-3]...))
	f.Add(append([]byte(magic+"\x00\x00\x00\x20"), a...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := &scanner{r: bytes.NewReader(data), aead: aead, end: int64(len(data))}
		for off := int64(0); off < sc.end; {
			r, err := sc.at(off)
			if err != nil {
				t.Fatal(err)
			}
			if r.off != off || r.end <= off || r.end > sc.end {
				t.Fatalf("region [%d, %d) after %d of %d bytes", r.off, r.end, off, sc.end)
			}
			changes, n, derr := decodeFrame(aead, data[off:])
			if r.damaged() != (derr != nil) {
				t.Fatalf("at %d: scanner damaged=%v, decodeFrame %v", off, r.damaged(), derr)
			}
			if !r.damaged() && (int64(n) != r.end-r.off || len(changes) != len(r.changes)) {
				t.Fatalf("at %d: frame of %d bytes, decodeFrame says %d", off, r.end-r.off, n)
			}
			off = r.end
		}
	})
}
