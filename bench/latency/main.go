// Command latency measures how long an SMTP server takes to accept messages
// offered at a fixed rate over a fixed number of kept connections.
//
//	go run ./bench/latency -addr 127.0.0.1:2525 -rate 500 -duration 20s
//	go run ./bench/latency -addr 127.0.0.1:2525 -rate 0 -count 10000   # closed loop: the peak rate
//
// Open loop (-rate R > 0): message i is due at start + i/R, whatever the
// server has answered so far. Each of the -conns connections keeps its
// connection and takes the next due message as soon as it is free (MAIL,
// RCPT for each recipient, DATA, the body, the final dot; RSET only after
// a refused or broken transaction). A message's latency runs from the
// time it was due to the server's reply to the final dot, so the time a
// message waits for a free connection counts: a slow reply delays the
// messages behind it, and they are measured from when they should have
// gone, not from when the client got round to them (no coordinated
// omission). Closed loop (-rate 0): every connection sends its next message
// as soon as the last one was answered; latency runs from the send, and the
// achieved rate is the peak the server (and this client) manage.
//
// Messages due in the first -warmup are sent but left out of the figures.
// Standard output gets one JSON line with the results (-format tsv: a header
// and one line of tab-separated values); standard error a human-readable
// summary. The exit code is 0 when every message was accepted, 1 when some
// were refused, failed or never sent, 2 for a wrong invocation or when the
// connections could not be opened.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

type options struct {
	addr       string
	rate       float64
	conns      int
	duration   time.Duration
	count      int
	warmup     time.Duration
	grace      time.Duration
	size       int
	rcpts      int
	pattern    string
	rcptStart  int
	rcptRange  int
	from       string
	helo       string
	timeout    time.Duration
	format     string
	quiet      bool
	header     string
	dialWithin time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "latency: %v\n", err)
		return 2
	}
	rcpts, err := newRecipients(o.pattern, o.rcptStart, o.rcptRange, o.rcpts)
	if err != nil {
		fmt.Fprintf(stderr, "latency: %v\n", err)
		return 2
	}
	b := newBench(o, rcpts)
	if err := b.connect(); err != nil {
		fmt.Fprintf(stderr, "latency: %v\n", err)
		return 2
	}
	res := b.run()
	if err := res.write(stdout, o.format); err != nil {
		fmt.Fprintf(stderr, "latency: %v\n", err)
		return 2
	}
	if !o.quiet {
		res.human(stderr)
	}
	if res.Failed > 0 || res.Unsent > 0 || res.WarmupFailed > 0 {
		return 1
	}
	return 0
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "", "SMTP server, host:port (required)")
	fs.Float64Var(&o.rate, "rate", 0, "messages per second offered (open loop); 0: closed loop, each connection sends as fast as it is answered")
	fs.IntVar(&o.conns, "conns", 20, "SMTP connections, opened before the run and kept")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure, after the warm-up (ignored with -count)")
	fs.IntVar(&o.count, "count", 0, "messages to measure, after the warm-up (instead of -duration)")
	fs.DurationVar(&o.warmup, "warmup", 0, "messages due (open loop) or sent (closed loop) in this first stretch are sent but not measured")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "open loop: messages not started this long after the schedule ended are given up (counted as unsent)")
	fs.IntVar(&o.size, "size", 4096, "bytes of message body (headers come on top)")
	fs.IntVar(&o.rcpts, "rcpts", 1, "recipients per message")
	fs.StringVar(&o.pattern, "rcpt", "r{n}@sink.test", "recipient address; {n} is replaced by a number cycling over -rcpt-range")
	fs.IntVar(&o.rcptStart, "rcpt-start", 0, "first {n}")
	fs.IntVar(&o.rcptRange, "rcpt-range", 20000, "how many numbers {n} cycles over: message k gets the next -rcpts of them")
	fs.StringVar(&o.from, "from", "sender@bench.test", "envelope sender")
	fs.StringVar(&o.helo, "helo", "latency.bench.test", "EHLO name")
	fs.StringVar(&o.header, "header", "", "an extra header line for every message, such as 'X-Optin-Purpose: newsletter'")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "time allowed for each SMTP reply")
	fs.DurationVar(&o.dialWithin, "connect-timeout", 10*time.Second, "time allowed to open each connection")
	fs.StringVar(&o.format, "format", "json", "machine-readable output on stdout: json or tsv")
	fs.BoolVar(&o.quiet, "q", false, "no human-readable summary on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: latency -addr HOST:PORT [-rate R] [-conns N] [-duration D | -count N] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.addr == "":
		return o, errors.New("-addr is required")
	case o.rate < 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0):
		return o, errors.New("-rate must be 0 (closed loop) or a positive number")
	case o.conns < 1:
		return o, errors.New("-conns must be at least 1")
	case o.count < 0, o.count == 0 && o.duration <= 0:
		return o, errors.New("give a positive -count or -duration")
	case o.warmup < 0 || o.grace < 0:
		return o, errors.New("-warmup and -grace must not be negative")
	case o.size < 0:
		return o, errors.New("-size must not be negative")
	case o.rcpts < 1:
		return o, errors.New("-rcpts must be at least 1")
	case o.format != "json" && o.format != "tsv":
		return o, errors.New("-format must be json or tsv")
	case strings.ContainsAny(o.header, "\r\n"), o.header != "" && !strings.Contains(o.header, ":"):
		return o, errors.New("-header must be one line such as 'Name: value'")
	}
	if o.rate > 0 && o.count == 0 {
		o.count = int(math.Round(o.rate * o.duration.Seconds()))
		if o.count < 1 {
			return o, errors.New("-rate times -duration is less than one message")
		}
	}
	return o, nil
}

// recipients names the recipients of each message.
type recipients struct {
	prefix, suffix string
	fixed          bool
	start, count   int
	perMsg         int
}

func newRecipients(pattern string, start, count, perMsg int) (*recipients, error) {
	before, after, found := strings.Cut(pattern, "{n}")
	if !found {
		if perMsg > 1 {
			return nil, fmt.Errorf("-rcpt %q has no {n}, so the %d recipients of a message would be one address", pattern, perMsg)
		}
		return &recipients{prefix: pattern, fixed: true, perMsg: 1}, nil
	}
	if strings.Contains(after, "{n}") {
		return nil, fmt.Errorf("-rcpt %q: {n} may appear once", pattern)
	}
	if count < perMsg {
		return nil, fmt.Errorf("-rcpt-range %d is smaller than -rcpts %d: a message's recipients would repeat", count, perMsg)
	}
	if start < 0 {
		return nil, errors.New("-rcpt-start must not be negative")
	}
	return &recipients{prefix: before, suffix: after, start: start, count: count, perMsg: perMsg}, nil
}

// forMessage appends the recipients of message seq (0, 1, ...) to dst:
// perMsg consecutive numbers, cycling over [start, start+count).
func (r *recipients) forMessage(seq int64, dst []string) []string {
	if r.fixed {
		return append(dst, r.prefix)
	}
	base := seq * int64(r.perMsg)
	for i := range r.perMsg {
		n := int64(r.start) + (base+int64(i))%int64(r.count)
		dst = append(dst, r.prefix+strconv.FormatInt(n, 10)+r.suffix)
	}
	return dst
}

// bench is one run: its connections, its schedule and what it measured.
type bench struct {
	o     options
	rcpts *recipients
	body  []byte
	runID string
	conns []*smtp.Client

	start     time.Time
	interval  time.Duration // open loop: between due times
	warmN     int64         // open loop: messages due in the warm-up
	total     int64         // open loop: all messages; closed loop with -count: measured ones
	warmEnd   time.Time
	stopAfter time.Time // no message starts after this

	next     atomic.Int64 // open loop: the next message to take; closed loop: sequence numbers
	measured atomic.Int64 // closed loop with -count: measured messages taken
}

func newBench(o options, r *recipients) *bench {
	return &bench{o: o, rcpts: r, body: makeBody(o.size), runID: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// makeBody is size bytes of 72-byte lines (70 characters and CRLF); the
// last line is shorter, and the body always ends with CRLF.
func makeBody(size int) []byte {
	if size == 0 {
		return nil
	}
	line := []byte(strings.Repeat("0123456789", 7) + "\r\n")
	b := make([]byte, 0, size+len(line))
	for len(b) < size {
		b = append(b, line...)
	}
	b = b[:size]
	if size >= 2 {
		b[size-2], b[size-1] = '\r', '\n'
	} else {
		b = []byte("\r\n")
	}
	return b
}

func (b *bench) dial() (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", b.o.addr, b.o.dialWithin)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = b.o.timeout
	c.SubmissionTimeout = b.o.timeout
	if err := c.Hello(b.o.helo); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connect opens every connection and greets, before the clock starts.
func (b *bench) connect() error {
	b.conns = make([]*smtp.Client, b.o.conns)
	for i := range b.conns {
		c, err := b.dial()
		if err != nil {
			for _, c := range b.conns[:i] {
				c.Close()
			}
			return fmt.Errorf("connection %d of %d to %s: %w", i+1, b.o.conns, b.o.addr, err)
		}
		b.conns[i] = c
	}
	return nil
}

// worker is one connection's share of the run.
type worker struct {
	lat, svc, lag       []time.Duration // latency, service time (send to reply), lag (due to send)
	ok, failed          int64
	warmOK, warmFailed  int64
	codes               map[int]int64 // failures by reply code; 0 for a broken connection
	firstErr            string
	firstAt             time.Time // the earliest due time of a measured message
	lastDone            time.Time // the latest reply of a measured message
	redials, redialFail int
	rcptBuf             []string
}

func (b *bench) run() *result {
	b.start = time.Now().Add(5 * time.Millisecond)
	b.warmEnd = b.start.Add(b.o.warmup)
	if b.o.rate > 0 {
		b.interval = time.Duration(float64(time.Second) / b.o.rate)
		b.warmN = int64(math.Round(b.o.rate * b.o.warmup.Seconds()))
		b.total = b.warmN + int64(b.o.count)
		b.stopAfter = b.due(b.total - 1).Add(b.o.grace)
	} else {
		b.total = int64(b.o.count)
		if b.o.count == 0 {
			b.stopAfter = b.warmEnd.Add(b.o.duration)
		}
	}
	ws := make([]*worker, len(b.conns))
	var wg sync.WaitGroup
	for i := range b.conns {
		ws[i] = &worker{codes: map[int]int64{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(ws[i], b.conns[i])
		}()
	}
	wg.Wait()
	return b.collect(ws)
}

// due is when open-loop message i is to be sent.
func (b *bench) due(i int64) time.Time {
	return b.start.Add(time.Duration(i) * b.interval)
}

// take hands out the next message: its sequence number, when it was due,
// whether it is measured, and false when the run is over.
func (b *bench) take() (seq int64, due time.Time, measured, ok bool) {
	if b.o.rate > 0 {
		i := b.next.Add(1) - 1
		if i >= b.total {
			return 0, time.Time{}, false, false
		}
		due = b.due(i)
		sleepUntil(due)
		if time.Now().After(b.stopAfter) {
			return 0, time.Time{}, false, false
		}
		return i, due, i >= b.warmN, true
	}
	now := time.Now()
	if now.Before(b.start) {
		sleepUntil(b.start)
		now = time.Now()
	}
	if !b.stopAfter.IsZero() && now.After(b.stopAfter) {
		return 0, time.Time{}, false, false
	}
	measured = !now.Before(b.warmEnd)
	if measured && b.o.count > 0 && b.measured.Add(1) > b.total {
		return 0, time.Time{}, false, false
	}
	return b.next.Add(1) - 1, now, measured, true
}

// sleepUntil sleeps with the kernel's nanosleep rather than a Go timer: on
// an idle Linux machine the runtime waits for timers in epoll with whole
// milliseconds, which would add about half a millisecond to every due time.
// The goroutine holds an OS thread while it sleeps; there are -conns of them.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		if err := syscall.Nanosleep(&ts, nil); err != nil && !errors.Is(err, syscall.EINTR) {
			time.Sleep(time.Until(t))
			return
		}
	}
}

func (b *bench) work(w *worker, c *smtp.Client) {
	defer func() {
		if c != nil {
			c.Quit()
		}
	}()
	for {
		seq, due, measured, ok := b.take()
		if !ok {
			return
		}
		if c == nil {
			// The connection broke on an earlier message: open another,
			// on this message's time.
			w.redials++
			var err error
			if c, err = b.dial(); err != nil {
				w.redialFail++
				w.fail(measured, 0, err)
				if w.redialFail >= 3 {
					return // the other connections take the rest
				}
				continue
			}
		}
		sent := time.Now()
		err := b.send(c, w, seq)
		done := time.Now()
		if err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				w.fail(measured, se.Code, err)
				// A refused command leaves a transaction open; the reply
				// to the final dot ends it, but RSET is harmless then.
				if c.Reset() != nil {
					c.Close()
					c = nil
				}
			} else {
				w.fail(measured, 0, err)
				c.Close()
				c = nil
			}
			continue
		}
		if !measured {
			w.warmOK++
			continue
		}
		w.ok++
		w.lat = append(w.lat, done.Sub(due))
		w.svc = append(w.svc, done.Sub(sent))
		w.lag = append(w.lag, sent.Sub(due))
		if w.firstAt.IsZero() || due.Before(w.firstAt) {
			w.firstAt = due
		}
		if done.After(w.lastDone) {
			w.lastDone = done
		}
	}
}

func (w *worker) fail(measured bool, code int, err error) {
	if !measured {
		w.warmFailed++
	} else {
		w.failed++
	}
	w.codes[code]++
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
}

// send runs one transaction.
func (b *bench) send(c *smtp.Client, w *worker, seq int64) error {
	w.rcptBuf = b.rcpts.forMessage(seq, w.rcptBuf[:0])
	if err := c.Mail(b.o.from, nil); err != nil {
		return err
	}
	for _, r := range w.rcptBuf {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	d, err := c.Data()
	if err != nil {
		return err
	}
	var h strings.Builder
	fmt.Fprintf(&h, "Message-ID: <%d.%s@latency.bench.test>\r\n", seq, b.runID)
	fmt.Fprintf(&h, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&h, "From: <%s>\r\nTo: <%s>\r\nSubject: latency %d\r\n", b.o.from, w.rcptBuf[0], seq)
	if b.o.header != "" {
		h.WriteString(b.o.header + "\r\n")
	}
	h.WriteString("\r\n")
	if _, err := io.WriteString(d, h.String()); err != nil {
		return err
	}
	if _, err := d.Write(b.body); err != nil {
		return err
	}
	return d.Close()
}

// result is the run's outcome, as written out.
type result struct {
	Target       string           `json:"target"`
	Mode         string           `json:"mode"` // open or closed
	OfferedRate  float64          `json:"offered_rate"`
	Conns        int              `json:"conns"`
	Size         int              `json:"size"`
	Rcpts        int              `json:"rcpts"`
	Warmup       float64          `json:"warmup_s"`
	Sent         int64            `json:"sent"` // transactions started, warm-up included
	Measured     int64            `json:"measured"`
	OK           int64            `json:"ok"`
	Failed       int64            `json:"failed"`
	Unsent       int64            `json:"unsent"` // open loop: given up
	WarmupOK     int64            `json:"warmup_ok"`
	WarmupFailed int64            `json:"warmup_failed"`
	Elapsed      float64          `json:"elapsed_s"`
	Rate         float64          `json:"achieved_rate"`
	P50          float64          `json:"p50_ms"`
	P90          float64          `json:"p90_ms"`
	P99          float64          `json:"p99_ms"`
	P999         float64          `json:"p999_ms"`
	Max          float64          `json:"max_ms"`
	Mean         float64          `json:"mean_ms"`
	SvcP50       float64          `json:"service_p50_ms"`
	SvcP99       float64          `json:"service_p99_ms"`
	LagP50       float64          `json:"lag_p50_ms"`
	LagP99       float64          `json:"lag_p99_ms"`
	LagMax       float64          `json:"lag_max_ms"`
	Redials      int              `json:"redials"`
	Codes        map[string]int64 `json:"failure_codes,omitempty"`
	FirstError   string           `json:"first_error,omitempty"`
}

func (b *bench) collect(ws []*worker) *result {
	r := &result{Target: b.o.addr, Mode: "closed", OfferedRate: b.o.rate, Conns: b.o.conns, Size: b.o.size,
		Rcpts: b.o.rcpts, Warmup: b.o.warmup.Seconds(), Codes: map[string]int64{}}
	if b.o.rate > 0 {
		r.Mode = "open"
	}
	var lat, svc, lag []time.Duration
	var first, last time.Time
	for _, w := range ws {
		lat = append(lat, w.lat...)
		svc = append(svc, w.svc...)
		lag = append(lag, w.lag...)
		r.OK += w.ok
		r.Failed += w.failed
		r.WarmupOK += w.warmOK
		r.WarmupFailed += w.warmFailed
		r.Redials += w.redials
		for code, n := range w.codes {
			r.Codes[strconv.Itoa(code)] += n
		}
		if r.FirstError == "" {
			r.FirstError = w.firstErr
		}
		if !w.firstAt.IsZero() && (first.IsZero() || w.firstAt.Before(first)) {
			first = w.firstAt
		}
		if w.lastDone.After(last) {
			last = w.lastDone
		}
	}
	r.Measured = r.OK + r.Failed
	r.Sent = r.Measured + r.WarmupOK + r.WarmupFailed
	if b.o.rate > 0 {
		r.Unsent = b.total - r.Sent
	}
	if len(r.Codes) == 0 {
		r.Codes = nil
	}
	if !first.IsZero() && last.After(first) {
		elapsed := last.Sub(first).Seconds()
		r.Elapsed = math.Round(elapsed*1e6) / 1e6
		r.Rate = math.Round(float64(r.OK)/elapsed*100) / 100
	}
	s := summarize(lat)
	r.P50, r.P90, r.P99, r.P999, r.Max, r.Mean = ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max), ms(s.Mean)
	sv := summarize(svc)
	r.SvcP50, r.SvcP99 = ms(sv.P50), ms(sv.P99)
	lg := summarize(lag)
	r.LagP50, r.LagP99, r.LagMax = ms(lg.P50), ms(lg.P99), ms(lg.Max)
	return r
}

// tsvFields are the columns of -format tsv, in order.
var tsvFields = []string{"mode", "offered_rate", "conns", "size", "rcpts", "sent", "measured", "ok", "failed", "unsent",
	"warmup_ok", "warmup_failed", "elapsed_s", "achieved_rate", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
	"service_p50_ms", "service_p99_ms", "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "redials"}

func (r *result) write(w io.Writer, format string) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if format == "json" {
		_, err := fmt.Fprintf(w, "%s\n", raw)
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	vals := make([]string, len(tsvFields))
	for i, f := range tsvFields {
		switch v := m[f].(type) {
		case float64:
			vals[i] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			vals[i] = fmt.Sprint(v)
		}
	}
	_, err = fmt.Fprintf(w, "%s\n%s\n", strings.Join(tsvFields, "\t"), strings.Join(vals, "\t"))
	return err
}

func (r *result) human(w io.Writer) {
	if r.Mode == "open" {
		fmt.Fprintf(w, "%s: offered %.1f msgs/s (open loop) over %d kept connections; %d-byte bodies, %d recipient(s) each\n",
			r.Target, r.OfferedRate, r.Conns, r.Size, r.Rcpts)
	} else {
		fmt.Fprintf(w, "%s: closed loop over %d kept connections; %d-byte bodies, %d recipient(s) each\n",
			r.Target, r.Conns, r.Size, r.Rcpts)
	}
	fmt.Fprintf(w, "  measured %d messages in %.2f s: %.1f msgs/s; %d accepted, %d failed", r.Measured, r.Elapsed, r.Rate, r.OK, r.Failed)
	if r.Unsent > 0 {
		fmt.Fprintf(w, ", %d never sent (the server fell too far behind)", r.Unsent)
	}
	if r.WarmupOK+r.WarmupFailed > 0 {
		fmt.Fprintf(w, "; warm-up %d accepted, %d failed", r.WarmupOK, r.WarmupFailed)
	}
	fmt.Fprintln(w)
	from := "the due time"
	if r.Mode == "closed" {
		from = "the send"
	}
	fmt.Fprintf(w, "  latency from %s, ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
		from, r.P50, r.P90, r.P99, r.P999, r.Max, r.Mean)
	if r.Mode == "open" {
		fmt.Fprintf(w, "  of it waiting to be sent (timer, busy connections), ms: p50 %.3f  p99 %.3f  max %.3f; the transaction itself: p50 %.3f  p99 %.3f\n",
			r.LagP50, r.LagP99, r.LagMax, r.SvcP50, r.SvcP99)
	}
	if len(r.Codes) > 0 {
		codes := make([]string, 0, len(r.Codes))
		for c, n := range r.Codes {
			if c == "0" {
				c = "no reply"
			}
			codes = append(codes, fmt.Sprintf("%s: %d", c, n))
		}
		slices.Sort(codes)
		fmt.Fprintf(w, "  failures by reply code: %s; first: %s\n", strings.Join(codes, ", "), r.FirstError)
	}
	if r.Redials > 0 {
		fmt.Fprintf(w, "  connections reopened after a failure: %d\n", r.Redials)
	}
}
