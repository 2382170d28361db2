package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// BenchmarkLargeMessages sends 20 messages of 24 MB at once through the
// proxy, as a trusted CRM might, and reports the process's peak resident
// memory above what it held before, per byte of message in flight
// (peak-x). The client streams each message from one shared buffer and
// the sink discards, so the growth is the proxy's. "size" announces the
// message size in MAIL (SIZE=), as most clients do; "nosize" does not.
//
//	go test -run '^$' -bench LargeMessages -benchtime 3x ./bench/
func BenchmarkLargeMessages(b *testing.B) {
	const (
		clients = 20
		size    = 24 << 20
	)
	msg := largeMessage(size)
	for _, announce := range []bool{true, false} {
		name := map[bool]string{true: "size", false: "nosize"}[announce]
		b.Run(name, func(b *testing.B) {
			s := startSink(b)
			p := startProxyWith(b, "smtp://"+s.addr, func(o *smtpproxy.Options) { o.MaxMessageBytes = 25 << 20 })
			var peak int64
			for b.Loop() {
				resetPeakRSS(b)
				base := rss(b, "VmRSS")
				var wg sync.WaitGroup
				errs := make(chan error, clients)
				for i := range clients {
					wg.Go(func() {
						opts := &smtp.MailOptions{}
						if announce {
							opts.Size = int64(len(msg))
						}
						errs <- sendLarge(p.addr, i, msg, opts)
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				peak = max(peak, rss(b, "VmHWM")-base)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
			b.ReportMetric(float64(peak)/float64(clients*len(msg)), "peak-x")
		})
	}
}

func largeMessage(size int) []byte {
	var buf bytes.Buffer
	buf.WriteString("From: <bench@source.test>\r\nTo: <rcpt@sink.test>\r\nSubject: large\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for buf.Len() < size {
		buf.WriteString(line)
	}
	return buf.Bytes()
}

func sendLarge(addr string, i int, msg []byte, opts *smtp.MailOptions) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("bench@source.test", opts); err != nil {
		return err
	}
	if err := c.Rcpt(fmt.Sprintf("r%d@sink.test", i), nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Message-ID: <large-%d-%s@source.test>\r\n", i, strconv.Itoa(os.Getpid()))
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux, clear_refs 5).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
}

// rss reads a /proc/self/status field in bytes.
func rss(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
