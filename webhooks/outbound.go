package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"optinproxy/optin"
)

// EndpointOptions configure an outbound endpoint.
type EndpointOptions struct {
	// URL receives the events: http or https.
	URL string
	// Secret signs them: "whsec_" and base64 (ParseSecret).
	Secret string
	// Events are the types sent; empty is every type but receipts
	// (message.relayed and message.blocked, which the outbox does not hold
	// anyway).
	Events []optin.EventType
	// Client sends; nil is NewHTTPClient(HTTPClientOptions{}).
	Client *retryablehttp.Client
	// Now is the clock for webhook-timestamp and Retry-After dates.
	Now func() time.Time
}

// Endpoint is a Target that posts each event as Standard-Webhooks-signed
// JSON (Payload) to a URL. Safe for concurrent use.
type Endpoint struct {
	name   string
	url    string
	secret string
	events []optin.EventType
	client *retryablehttp.Client
	now    func() time.Time
}

var _ Target = (*Endpoint)(nil)

// maxResponse is how much of a receiver's answer is read (and thrown
// away) so that its connection can be reused.
const maxResponse = 64 << 10

// NewEndpoint checks opts and returns the endpoint. Errors name the
// problem without the URL or the secret.
func NewEndpoint(opts EndpointOptions) (*Endpoint, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhooks: outbound url is not an http or https URL")
	}
	if _, err := ParseSecret(opts.Secret); err != nil {
		return nil, fmt.Errorf("webhooks: outbound secret: %w", err)
	}
	for _, t := range opts.Events {
		if t == "" {
			return nil, fmt.Errorf("webhooks: outbound events: empty type")
		}
	}
	if opts.Client == nil {
		opts.Client = NewHTTPClient(HTTPClientOptions{})
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Endpoint{
		name:   EndpointName(opts.URL),
		url:    opts.URL,
		secret: opts.Secret,
		events: slices.Clone(opts.Events),
		client: opts.Client,
		now:    opts.Now,
	}, nil
}

// EndpointName is the target name of the endpoint at rawURL: "hook-" and
// the first 8 hex digits of the URL's SHA-256, stable across restarts and
// showing nothing of the URL.
func EndpointName(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "hook-" + hex.EncodeToString(sum[:4])
}

// Name returns "hook-" and 8 hex digits (EndpointName).
func (p *Endpoint) Name() string { return p.name }

// Wants reports whether e's type is among the configured events (all but
// receipts when none are).
func (p *Endpoint) Wants(e optin.Event) bool {
	if len(p.events) == 0 {
		return e.Type != optin.EventMessageRelayed && e.Type != optin.EventMessageBlocked
	}
	return slices.Contains(p.events, e.Type)
}

// Deliver posts d's event, signed, with webhook-id d.ID. A 2xx is done; a
// timeout, a connection failure, a 429 or a 5xx (but 501) may pass (a 429
// or 503 with Retry-After as a *LaterError); any other answer will not.
// Error texts hold status codes and fixed words, never the response body,
// the URL or an address.
func (p *Endpoint) Deliver(ctx context.Context, d Delivery) (retry bool, err error) {
	body, err := MarshalPayload(d.Event)
	if err != nil {
		return false, fmt.Errorf("webhooks: encode event: %w", err)
	}
	now := p.now()
	sig, err := SignStandard(p.secret, d.ID, now, body)
	if err != nil {
		return false, err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, p.url, body)
	if err != nil {
		return false, fmt.Errorf("webhooks: build request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "optinproxy")
	req.Header.Set(HeaderID, d.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	resp, err := p.client.Do(req)
	if resp != nil {
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	}
	if err != nil && resp == nil {
		if ctx.Err() != nil {
			return true, fmt.Errorf("webhooks: canceled")
		}
		return retryableTransport(err), fmt.Errorf("webhooks: %s", transportText(err))
	}
	return classifyResponse(resp, p.now())
}

// classifyResponse decides what an answer means: done, retry (when
// Retry-After is given, as a *LaterError), or never.
func classifyResponse(resp *http.Response, now time.Time) (retry bool, err error) {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return false, nil
	}
	err = fmt.Errorf("webhooks: receiver answered %d", code)
	if !retryableStatus(code) {
		return false, err
	}
	if d, ok := retryAfterHeader(resp, now); ok {
		return true, &LaterError{After: d, Err: err}
	}
	return true, err
}
