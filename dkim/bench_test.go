package dkim

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
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
				defer reportCPU(b)()
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

// BenchmarkKeyOp: the private-key operation alone, as go-msgauth calls it
// for one signature (over the SHA-256 digest of the signed header fields;
// Ed25519 signs the digest as its message), and the SHA-256 of a 4 KiB
// body. Set against BenchmarkSign, it shows how much of a copy's cost no
// signer can avoid.
func BenchmarkKeyOp(b *testing.B) {
	digest := sha256.Sum256([]byte("the canonical signed header fields"))
	for _, k := range []struct {
		name string
		key  crypto.Signer
		hash crypto.Hash
	}{{"ed25519", edKey(), 0}, {"rsa2048", rsaKey(), crypto.SHA256}} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := k.key.Sign(rand.Reader, digest[:], k.hash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("sha256-4KiB", func(b *testing.B) {
		body := make([]byte, 4<<10)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			sha256.Sum256(body)
		}
	})
}

// reportCPU, deferred before the loop, reports the CPU time the process
// spent per iteration (user and system, every thread: the garbage
// collector and go-msgauth's goroutine included) as cpu-ns/op. On a
// shared machine ns/op grows with the others' load; the CPU time much
// less, and it is what bounds how many copies a core signs.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
