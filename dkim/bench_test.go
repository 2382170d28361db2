package dkim

import (
	"io"
	"strings"
	"testing"
)

// BenchmarkSign: the cost of signing one copy, by key and message size,
// with a CRM signature to check on the way (the usual marketing copy).
func BenchmarkSign(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		line := "De aanbiedingen van deze week, in een regel van tekst." + "\r\n"
		body := strings.Repeat(line, size.bytes/len(line)+1)[:size.bytes]
		plain := message([]string{
			"From: nieuws@shop.example", "To: klant@example.net", "Subject: Nieuws",
			"List-Unsubscribe: <https://optin.shop.example/u/TOKEN>",
			"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		}, body)
		msg := withFooter(crmSign(b, plain, crm, "relaxed", nil))
		for _, k := range []struct {
			name string
			key  Key
		}{
			{"ed25519", Key{Domain: "shop.example", Selector: "s1", Signer: edKey()}},
			{"rsa2048", Key{Domain: "shop.example", Selector: "s1", Signer: rsaKey()}},
		} {
			b.Run(size.name+"/"+k.name, func(b *testing.B) {
				s := newSigner(b, k.key)
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := s.Sign(io.Discard, msg, "List-Unsubscribe"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(size.name+"/no-key", func(b *testing.B) {
			s := newSigner(b)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				s.Sign(io.Discard, msg, "List-Unsubscribe")
			}
		})
	}
}
