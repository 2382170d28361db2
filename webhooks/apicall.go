package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Limits of the Mailchimp and Mandrill API clients.
const (
	// MaxAPIConns is Mailchimp's limit of simultaneous connections per
	// API key; more are answered 429.
	MaxAPIConns = 10
	// maxAPIBody caps an API answer: a page of 1000 members with the
	// fields asked for is well under it.
	maxAPIBody = 32 << 20
	apiTimeout = 30 * time.Second
)

// APIError is a refusal by the Mailchimp or Mandrill API: the HTTP status
// and the problem's title and detail, with any address in them replaced,
// so that the text can go into delivery records and logs.
type APIError struct {
	Service string // "mailchimp" or "mandrill"
	Status  int
	Title   string
	Detail  string
	// Temporary says whether a later attempt may succeed (429, 5xx).
	Temporary bool
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: %d", e.Service, e.Status)
	if e.Title != "" {
		msg += " " + e.Title
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// apiCaller sends the JSON requests of one API client: at most cap(sem)
// at once, answers capped, failures classified.
type apiCaller struct {
	service string
	client  *http.Client
	sem     chan struct{}
	now     func() time.Time
	// auth adds the credentials to a request.
	auth func(*http.Request)
	// permanent names the 5xx answers that no retry will change (Mandrill
	// answers every error with a 500 and a name).
	permanent func(status int, title string) bool
}

func newAPICaller(service string, client *http.Client, maxConns int, now func() time.Time) *apiCaller {
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// The transport's cap holds the connections, the semaphore the
		// requests: a caller's own client may have no cap.
		tr.MaxConnsPerHost = maxConns
		tr.MaxIdleConnsPerHost = maxConns
		client = &http.Client{Transport: tr, Timeout: apiTimeout}
	}
	if now == nil {
		now = time.Now
	}
	return &apiCaller{service: service, client: client, sem: make(chan struct{}, maxConns), now: now}
}

// do sends in as JSON (none when nil) and decodes a 2xx answer into out
// (when not nil). A refusal is an *APIError; one whose sender said when
// to come back is wrapped in a *LaterError.
func (c *apiCaller) do(ctx context.Context, method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", c.service, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("%s: %w", c.service, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != nil {
		c.auth(req)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for a connection: %w", c.service, ctx.Err())
	}
	defer func() { <-c.sem }()
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", c.service, method, redactURL(req), errors.Unwrap(err))
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxAPIBody)) // so the connection is reused
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.refusal(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIBody)).Decode(out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", c.service, err)
	}
	return nil
}

// redactURL names the request without its path, which holds a subscriber
// hash.
func redactURL(req *http.Request) string { return req.URL.Scheme + "://" + req.URL.Host }

// refusal reads a non-2xx answer: a Marketing API problem (title,
// detail) or a Mandrill error (name, message).
func (c *apiCaller) refusal(resp *http.Response) error {
	var p struct {
		Title   string `json:"title"`
		Detail  string `json:"detail"`
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p) // a body that is no problem leaves the status alone
	e := &APIError{Service: c.service, Status: resp.StatusCode, Title: p.Title, Detail: p.Detail}
	if e.Title == "" {
		e.Title = p.Name
	}
	if e.Detail == "" {
		e.Detail = p.Message
	}
	e.Title, e.Detail = redactAddresses(apiClip(e.Title, 200)), redactAddresses(apiClip(e.Detail, 400))
	e.Temporary = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	if e.Temporary && c.permanent != nil && c.permanent(resp.StatusCode, e.Title) {
		e.Temporary = false
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
			return &LaterError{After: after, Err: e}
		}
	}
	return e
}

// apiRetry is the Targets' classifier: whether a later attempt may
// succeed. Network failures and timeouts may; a refusal only when it says
// so.
func apiRetry(err error) bool {
	var le *LaterError
	if errors.As(err, &le) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Temporary
	}
	return true
}

// addressLike matches anything that may be an address in an API's error
// text ("x@y is already a list member").
var addressLike = regexp.MustCompile(`[^\s"'<>(),;:]*@[^\s"'<>(),;:]*`)

func redactAddresses(s string) string { return addressLike.ReplaceAllString(s, "<address>") }

func apiClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
