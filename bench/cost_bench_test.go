package bench

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"optinproxy/dkim"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/optin/redisstore"
	"optinproxy/smtpproxy"
	"optinproxy/unsubscribe"
)

// BenchmarkMessageCost relays marketing mail with everything on that a
// message can cost: a Redis store deciding every recipient by consent and
// keeping a receipt and a delivery mark for each, a copy per recipient with
// its own unsubscribe link (headers and footer), and an Ed25519 DKIM
// signature on every copy. "direct" sends the same messages straight to
// the sink in the same run; the proxy's share of -benchmem's allocations
// (counted for the whole process: client, proxy and sink) is "full" less
// "direct". Its CPU profile, with pprof labels, is where a message's cost
// goes (docs/benchmarks.md, "Where a message's cost goes").
//
//	go test -run '^$' -bench MessageCost/rcpts=1 -benchtime 4000x -benchmem -cpuprofile /tmp/cpu.out -o /tmp/bench.test ./bench/
//	go tool pprof -top -tagfocus role=proxy /tmp/bench.test /tmp/cpu.out
//
// "rcpts=1/nodkim" is everything but the signature.
// "size=256KiB" is the same with 1 recipient and a 256 KiB body, where
// reading the body from the client weighs more.
func BenchmarkMessageCost(b *testing.B) {
	for _, n := range []int{1, 50} {
		setRecipients(b, n)
		b.Run(fmt.Sprintf("rcpts=%d/direct", n), func(b *testing.B) {
			s := startSink(b)
			run(b, s.addr, true)
			if got := s.msgs.Load(); got != int64(b.N) {
				b.Fatalf("sink got %d messages, want %d", got, b.N)
			}
		})
		b.Run(fmt.Sprintf("rcpts=%d/full", n), func(b *testing.B) { fullCost(b, n, true) })
	}
	setRecipients(b, 1)
	b.Run("rcpts=1/nodkim", func(b *testing.B) { fullCost(b, 1, false) })
	setRecipients(b, 1)
	b.Run("size=256KiB/direct", func(b *testing.B) {
		setMessageSize(b, 256<<10)
		s := startSink(b)
		run(b, s.addr, true)
		if got := s.msgs.Load(); got != int64(b.N) {
			b.Fatalf("sink got %d messages, want %d", got, b.N)
		}
	})
	b.Run("size=256KiB/full", func(b *testing.B) {
		setMessageSize(b, 256<<10)
		fullCost(b, 1, true)
	})
}

// fullCost relays b.N messages to n recipients with everything on; without
// sign, everything but the DKIM signature.
func fullCost(b *testing.B, n int, sign bool) {
	st := teststore.Redis(b, redistest.Start(b))
	counted := &countingLedger{Store: st}
	var signer *dkim.Signer
	if sign {
		var err error
		signer, err = dkim.New([]dkim.Key{{Domain: "source.test", Selector: "s1",
			Signer: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}}, dkim.Options{})
		if err != nil {
			b.Fatal(err)
		}
	}
	links := newLinks(b)
	enforce(b, counted, n, func(o *smtpproxy.Options) {
		newsletter := o.Purposes["newsletter"]
		newsletter.Unsubscribe = true
		o.Purposes = optin.Purposes{"newsletter": newsletter}
		o.Personalize = links.copy
		if signer != nil {
			o.Signer = signer
		}
	})
	b.ReportMetric(float64(st.(*redisstore.Store).RoundTrips()-counted.base)/float64(b.N), "roundtrips/msg")
	b.ReportMetric(float64(counted.applies.Load())/float64(b.N), "writes/msg")
}

// links makes each copy as `optinproxy serve` does (cmd/optinproxy's
// personalizer, which this package cannot import): a token of its own in
// the List-Unsubscribe headers and in the built-in footer.
type links struct {
	tokens    *unsubscribe.Tokens
	templates *unsubscribe.Templates
}

func newLinks(b *testing.B) *links {
	b.Helper()
	tokens, err := unsubscribe.NewTokens([]byte("bench secret of thirty-two bytes"))
	if err != nil {
		b.Fatal(err)
	}
	templates, err := unsubscribe.NewTemplates(nil)
	if err != nil {
		b.Fatal(err)
	}
	return &links{tokens: tokens, templates: templates}
}

func (l *links) copy(p optin.Purpose, to optin.Address, message string, h textproto.Header, body []byte) (io.WriterTo, error) {
	token := l.tokens.Issue(unsubscribe.Claim{Subject: to, Purpose: p.Name, Message: message, Issued: time.Now()})
	c := unsubscribe.Copy{URL: "https://relay.test/u/" + token, ListID: unsubscribe.ListID(p.Name, "", "relay.test"),
		Footer: true, Templates: l.templates}
	return writerTo(func(w io.Writer) (int64, error) {
		var n int64
		_, err := unsubscribe.WriteCopy(writeFunc(func(p []byte) (int, error) {
			k, err := w.Write(p)
			n += int64(k)
			return k, err
		}), h.Copy(), body, c)
		return n, err
	}), nil
}

type writerTo func(w io.Writer) (int64, error)

func (f writerTo) WriteTo(w io.Writer) (int64, error) { return f(w) }

type writeFunc func(p []byte) (int, error)

func (f writeFunc) Write(p []byte) (int, error) { return f(p) }
