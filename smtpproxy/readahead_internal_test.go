package smtpproxy

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"
)

// Whatever the client writes, in pieces of any size, comes out of
// readAhead in order and whole, then EOF, for reads of any size; and no
// buffer is held once a streamed read is drained.
func TestReadAheadKeepsTheStream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewSource(1))
	sent := make([]byte, 3<<20)
	rng.Read(sent)
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		for p := sent; len(p) > 0; {
			n := min(len(p), 1+rng.Intn(100<<10))
			if _, err := c.Write(p[:n]); err != nil {
				return
			}
			p = p[n:]
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := &readAhead{conn: c}
	var got bytes.Buffer
	sizes := []int{1, 7, 4096, 4096, 4096, 100, 4096, 70 << 10}
	streamed := false
	for i := 0; ; i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := a.Read(p)
		got.Write(p[:n])
		streamed = streamed || a.buf != nil
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), sent) {
		t.Fatalf("got %d bytes, not the %d sent", got.Len(), len(sent))
	}
	if !streamed {
		t.Error("no read went through the read-ahead buffer")
	}
	if a.buf != nil {
		t.Error("a buffer is still held after the stream ended")
	}
}
