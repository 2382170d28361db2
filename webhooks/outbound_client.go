package webhooks

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
)

// HTTPClientOptions configure NewHTTPClient. The zero value is usable.
type HTTPClientOptions struct {
	// Timeout caps one request, connection and response included
	// (default 10s).
	Timeout time.Duration
	// RetryMax is how many times one Deliver call retries in place
	// (default 2; -1 for none). Longer waits belong to the outbox.
	RetryMax int
	// WaitMin and WaitMax bound the in-call waits (defaults 200ms, 2s). A
	// Retry-After longer than WaitMax is not waited for in the call: the
	// outbox does.
	WaitMin, WaitMax time.Duration
	// Rand returns a number in [0, 1) for the jitter (default
	// math/rand/v2).
	Rand func() float64
	// Transport, when not nil, replaces the pooled default.
	Transport http.RoundTripper
}

// NewHTTPClient returns the client outbound targets send with: a few
// quick retries in the call, exponential backoff with full jitter,
// Retry-After honoured for 429 and 503, no redirects followed, and no
// logging (retryablehttp would log URLs, which may hold secrets; the
// Dispatcher logs outcomes by target name). POST is retried safely: the
// receivers deduplicate by webhook-id.
func NewHTTPClient(opts HTTPClientOptions) *retryablehttp.Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 2
	} else if opts.RetryMax < 0 {
		opts.RetryMax = 0
	}
	if opts.WaitMin <= 0 {
		opts.WaitMin = 200 * time.Millisecond
	}
	if opts.WaitMax <= 0 {
		opts.WaitMax = 2 * time.Second
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	hc := cleanhttp.DefaultPooledClient()
	if opts.Transport != nil {
		hc.Transport = opts.Transport
	}
	hc.Timeout = opts.Timeout
	// A webhook URL that redirects is a misconfiguration: report the 3xx
	// rather than post the event somewhere else.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       nil,
		RetryWaitMin: opts.WaitMin,
		RetryWaitMax: opts.WaitMax,
		RetryMax:     opts.RetryMax,
		CheckRetry:   checkRetry(opts.WaitMax),
		Backoff:      jitterBackoff(opts.Rand),
		// The last response comes back as it is, so that Deliver classifies
		// it (status, Retry-After) in one place.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}

// checkRetry retries in the call what retryable says is worth it, except
// a Retry-After longer than maxWait, which is left to the outbox. It never
// returns an error: Deliver classifies the last response itself.
func checkRetry(maxWait time.Duration) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, nil
		}
		if err != nil {
			return retryableTransport(err), nil
		}
		if d, ok := retryAfterHeader(resp, time.Now()); ok && d > maxWait {
			return false, nil
		}
		return retryableStatus(resp.StatusCode), nil
	}
}

// retryableTransport reports whether a transport error may pass: timeouts
// and connection failures may; a cancellation or a certificate the
// receiver will keep presenting will not.
func retryableTransport(err error) bool {
	switch transportText(err) {
	case "canceled", "tls certificate not trusted":
		return false
	}
	return true
}

// retryableStatus is the one classifier of status codes: 429 and 5xx
// (but 501, which will not change) may pass; everything else will not.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500 && code != http.StatusNotImplemented
}

// jitterBackoff is exponential backoff with full jitter between 0 and
// min·2^attempt (at most max), so that many senders retrying at once
// spread out; a 429 or 503 with Retry-After waits what it says, as
// retryablehttp's DefaultBackoff does.
func jitterBackoff(random func() float64) retryablehttp.Backoff {
	return func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		if d, ok := retryAfterHeader(resp, time.Now()); ok {
			return d
		}
		return fullJitter(min, max, attempt, random)
	}
}

// fullJitter is a random wait in [0, min·2^attempt], the ceiling capped
// at max.
func fullJitter(min, max time.Duration, attempt int, random func() float64) time.Duration {
	ceil := max
	if attempt < 62 {
		if c := min << attempt; c > 0 && c < max {
			ceil = c
		}
	}
	return time.Duration(random() * float64(ceil))
}

// retryAfterHeader is the wait a 429 or 503 response asks for in its
// Retry-After header; ok is false when there is none or it does not
// parse.
func retryAfterHeader(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), now)
}

// maxRetryAfter caps the wait a Retry-After asks for, so that a wrong
// header cannot park a delivery for ever.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP
// date (rfc/9110:10.2.3), at most maxRetryAfter; ok is false when it is
// empty, negative or does not parse.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}
