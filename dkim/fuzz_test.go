package dkim

import (
	"bytes"
	"testing"
)

// FuzzSign: for any message, Sign and BrokenSignatures do not panic;
// Sign without a key writes the message unchanged; a signed message
// still holds the original's body and verifies with go-msgauth.
func FuzzSign(f *testing.F) {
	f.Add(newsletter("a@shop.example"))
	f.Add([]byte("From: a@shop.example\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; l=3; bh=AAAA; h=from; d=x; s=y; b=\r\n\r\nbody"))
	f.Add([]byte("From: a@shop.example\n\n"))
	f.Add([]byte(" folded first\r\nFrom:<a@shop.example>\r\n"))
	f.Add([]byte("From: =?x?q?a?= <a@xn--caf-dma.example>\r\n\r\n  \t\r\n"))
	key := Key{Domain: "shop.example", Selector: "s1", Signer: edKey()}
	s := newSigner(f, key)
	none := newSigner(f)
	txt := records(f, key)
	f.Fuzz(func(t *testing.T, msg []byte) {
		BrokenSignatures(msg, "List-Unsubscribe")
		var plain bytes.Buffer
		if _, _, err := none.Sign(&plain, msg); err != nil || !bytes.Equal(plain.Bytes(), msg) {
			t.Fatalf("without a key: %v, message changed", err)
		}
		var out bytes.Buffer
		ok, _, err := s.Sign(&out, msg)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if !ok {
			if !bytes.Equal(out.Bytes(), msg) {
				t.Fatal("unsigned message changed")
			}
			return
		}
		if vs := verify(t, out.Bytes(), txt); len(vs) == 0 || vs[0].Err != nil {
			t.Fatalf("our signature does not verify: %+v\n%q", vs, out.Bytes())
		}
	})
}
