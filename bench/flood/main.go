// Command flood sends large messages from many SMTP sessions at once, for
// a while, and retries each message refused with 452 as a CRM would, to
// see a relay's in-flight byte budget hold under the load.
//
//	go run ./bench/flood -addr 127.0.0.1:2525 -metrics http://127.0.0.1:8080/metrics -sessions 100 -duration 20s
//
// Each session keeps one connection and sends one message after another,
// each with a Message-ID of its own, from one shared body. A 452 reply,
// at MAIL (when -announce sends SIZE=) or at the end of DATA, is counted
// and the same message is sent again after -backoff (with jitter); any
// other failure is counted and the session dials again. Once -duration
// has passed no message is started or retried; the ones in progress are
// finished. While it runs, -metrics is read every -sample for the highest
// optinproxy_smtp_inflight_bytes seen.
//
// Standard output gets one JSON line with the counts; -accepted names a
// file that gets the Message-ID of every accepted message, one a line.
// The exit code is 0 when every failure was a 452, 1 otherwise, 2 for a
// wrong invocation.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

type options struct {
	addr     string
	metrics  string
	sessions int
	size     int
	duration time.Duration
	announce bool
	backoff  time.Duration
	sample   time.Duration
	timeout  time.Duration
	id       string
	accepted string
}

// result is the JSON line on standard output.
type result struct {
	Sessions int  `json:"sessions"`
	Announce bool `json:"announce"`
	// MessageBytes is the size of each message, headers included.
	MessageBytes int     `json:"message_bytes"`
	Seconds      float64 `json:"seconds"`
	Attempts     int64   `json:"attempts"`
	Accepted     int64   `json:"accepted"`
	// RefusedMail and RefusedData are the 452 replies at MAIL and at the
	// end of DATA.
	RefusedMail int64 `json:"refused_452_mail"`
	RefusedData int64 `json:"refused_452_data"`
	// Other counts failures that were not a 452; Abandoned, messages
	// refused with 452 when the time was up, so never retried.
	Other     int64  `json:"other_failures"`
	Abandoned int64  `json:"abandoned"`
	LastError string `json:"last_error,omitempty"`
	// GaugeMax is the highest optinproxy_smtp_inflight_bytes read.
	GaugeMax float64 `json:"gauge_max"`
	Samples  int     `json:"gauge_samples"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "", "SMTP server, host:port (required)")
	fs.StringVar(&o.metrics, "metrics", "", "the server's Prometheus URL, read for optinproxy_smtp_inflight_bytes")
	fs.IntVar(&o.sessions, "sessions", 100, "SMTP sessions at once")
	fs.IntVar(&o.size, "size", 24<<20, "bytes of each message, headers included")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long to start and retry messages")
	fs.BoolVar(&o.announce, "announce", false, "announce each message's size with SIZE= in MAIL")
	fs.DurationVar(&o.backoff, "backoff", 200*time.Millisecond, "wait before sending a refused message again (plus up to as much again at random)")
	fs.DurationVar(&o.sample, "sample", 20*time.Millisecond, "how often -metrics is read")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "time allowed for each SMTP reply")
	fs.StringVar(&o.id, "id", "flood", "Message-IDs are <ID-SESSION-N@bench.test>")
	fs.StringVar(&o.accepted, "accepted", "", "file to write the Message-ID of each accepted message to")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.addr == "" || fs.NArg() > 0 || o.sessions < 1 || o.size < 1024 {
		fmt.Fprintln(stderr, "flood: usage: flood -addr HOST:PORT [-metrics URL] [-sessions N] [-size BYTES] [-duration D] [-announce]")
		return 2
	}
	res, ids := flood(o)
	if o.accepted != "" {
		if err := os.WriteFile(o.accepted, []byte(strings.Join(ids, "")), 0o644); err != nil {
			fmt.Fprintf(stderr, "flood: %v\n", err)
			return 2
		}
	}
	line, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", line)
	if res.Other > 0 {
		return 1
	}
	return 0
}

// body is the message after its headers, CRLF lines of 78 characters,
// shared by every message.
func body(n int) []byte {
	line := strings.Repeat("0123456789abcdef", 5)[:78] + "\r\n"
	b := bytes.Repeat([]byte(line), n/len(line)+1)
	return b[:n-n%len(line)]
}

func flood(o options) (result, []string) {
	const headerRoom = 200
	shared := body(o.size - headerRoom)
	res := result{Sessions: o.sessions, Announce: o.announce}

	var attempts, accepted, refMail, refData, other, abandoned atomic.Int64
	var mu sync.Mutex
	var ids []string
	var lastErr string

	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if o.metrics == "" {
			return
		}
		t := time.NewTicker(o.sample)
		defer t.Stop()
		for {
			if v, err := inflight(o.metrics); err == nil {
				res.GaugeMax = max(res.GaugeMax, v)
				res.Samples++
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()

	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for s := range o.sessions {
		wg.Go(func() {
			var c *smtp.Client
			defer func() {
				if c != nil {
					c.Quit()
				}
			}()
			for n := 0; time.Now().Before(deadline); n++ {
				id := fmt.Sprintf("<%s-%d-%d@bench.test>", o.id, s, n)
				header := fmt.Sprintf("From: <flood@bench.test>\r\nTo: <sink@bench.test>\r\nSubject: flood %d\r\nMessage-ID: %s\r\n\r\n", n, id)
				size := len(header) + len(shared)
				for {
					if c == nil {
						var err error
						if c, err = dial(o); err != nil {
							other.Add(1)
							mu.Lock()
							lastErr = err.Error()
							mu.Unlock()
							time.Sleep(o.backoff)
							if time.Now().After(deadline) {
								return
							}
							continue
						}
					}
					attempts.Add(1)
					atData, err := send(c, o.announce, size, header, shared)
					if err == nil {
						accepted.Add(1)
						mu.Lock()
						ids = append(ids, id+"\n")
						mu.Unlock()
						break
					}
					var se *smtp.SMTPError
					if errors.As(err, &se) && se.Code == 452 {
						if atData {
							refData.Add(1)
						} else {
							refMail.Add(1)
						}
						if c.Reset() != nil {
							c.Close()
							c = nil
						}
					} else {
						other.Add(1)
						mu.Lock()
						lastErr = err.Error()
						mu.Unlock()
						c.Close()
						c = nil
					}
					if time.Now().After(deadline) {
						abandoned.Add(1)
						return
					}
					time.Sleep(o.backoff + rand.N(o.backoff+1))
				}
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	close(stopSampling)
	<-sampled
	res.MessageBytes = len(shared) + len(fmt.Sprintf("From: <flood@bench.test>\r\nTo: <sink@bench.test>\r\nSubject: flood 0\r\nMessage-ID: <%s-0-0@bench.test>\r\n\r\n", o.id))
	res.Attempts, res.Accepted = attempts.Load(), accepted.Load()
	res.RefusedMail, res.RefusedData = refMail.Load(), refData.Load()
	res.Other, res.Abandoned, res.LastError = other.Load(), abandoned.Load(), lastErr
	return res, ids
}

func dial(o options) (*smtp.Client, error) {
	c, err := smtp.Dial(o.addr)
	if err != nil {
		return nil, err
	}
	c.CommandTimeout, c.SubmissionTimeout = o.timeout, o.timeout
	if err := c.Hello("flood.bench.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// send runs one transaction; atData says whether the failure, if any,
// came at the end of DATA.
func send(c *smtp.Client, announce bool, size int, header string, shared []byte) (atData bool, err error) {
	opts := &smtp.MailOptions{}
	if announce {
		opts.Size = int64(size)
	}
	if err := c.Mail("flood@bench.test", opts); err != nil {
		return false, err
	}
	if err := c.Rcpt("sink@bench.test", nil); err != nil {
		return false, err
	}
	w, err := c.Data()
	if err != nil {
		return false, err
	}
	if _, err := io.WriteString(w, header); err != nil {
		return true, err
	}
	if _, err := w.Write(shared); err != nil {
		return true, err
	}
	return true, w.Close()
}

// inflight reads optinproxy_smtp_inflight_bytes from a Prometheus text page.
func inflight(url string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "optinproxy_smtp_inflight_bytes "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no optinproxy_smtp_inflight_bytes in " + url)
}
