package webhooks

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"optinproxy/optin"
)

// ErrNotMember means the address is not a member of the audience (the
// API answered 404): for a withdrawal or an erasure, nothing to do.
var ErrNotMember = errors.New("webhooks: not a member of the audience")

// Member statuses of the Mailchimp Marketing API.
const (
	MemberSubscribed    = "subscribed"
	MemberUnsubscribed  = "unsubscribed"
	MemberCleaned       = "cleaned"
	MemberPending       = "pending"
	MemberTransactional = "transactional"
	MemberArchived      = "archived"
)

// MaxMemberPage is the most members the API returns in one page.
const MaxMemberPage = 1000

// memberFields are the fields a members page is asked for, so that a page
// of 1000 stays small (no merge fields, stats, locations).
var memberFields = strings.Join([]string{
	"members.id", "members.email_address", "members.status", "members.timestamp_signup", "members.ip_signup",
	"members.timestamp_opt", "members.ip_opt", "members.last_changed", "members.marketing_permissions", "total_items",
}, ",")

// MailchimpClientOptions configure NewMailchimpClient.
type MailchimpClientOptions struct {
	// APIKey is the Marketing API key; its suffix after the last "-" is
	// the data centre ("...-us6": https://us6.api.mailchimp.com).
	APIKey string
	// BaseURL replaces the data centre's URL (a test server); without a
	// path, or with the path before /3.0.
	BaseURL string
	// HTTPClient sends the requests; nil for one whose transport holds
	// MaxConns connections at most and whose requests time out after 30s.
	HTTPClient *http.Client
	// MaxConns caps the requests in flight: default and at most
	// MaxAPIConns, Mailchimp's limit per key. Share one client among
	// everything that uses the same key.
	MaxConns int
	// Now reads the clock, for Retry-After dates; default time.Now.
	Now func() time.Time
}

// MailchimpClient calls the Mailchimp Marketing API: members paged, a
// member's status, a permanent delete. It does not retry: a target's
// failure goes back to the dispatcher, which records it and tries again
// later; SyncAudience retries a page itself. Safe for concurrent use; at
// most MaxConns requests are in flight at once.
type MailchimpClient struct {
	base string
	api  *apiCaller
}

var dataCentre = regexp.MustCompile(`^[a-z]+[0-9]+$`)

// NewMailchimpClient validates opts.
func NewMailchimpClient(opts MailchimpClientOptions) (*MailchimpClient, error) {
	if opts.APIKey == "" {
		return nil, errors.New("webhooks: mailchimp: no API key")
	}
	switch {
	case opts.MaxConns == 0:
		opts.MaxConns = MaxAPIConns
	case opts.MaxConns < 0 || opts.MaxConns > MaxAPIConns:
		return nil, fmt.Errorf("webhooks: mailchimp: max connections %d (1 to %d)", opts.MaxConns, MaxAPIConns)
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base == "" {
		i := strings.LastIndexByte(opts.APIKey, '-')
		dc := opts.APIKey[i+1:]
		if i < 0 || !dataCentre.MatchString(dc) {
			return nil, errors.New(`webhooks: mailchimp: the API key does not end in its data centre ("-us6")`)
		}
		base = "https://" + dc + ".api.mailchimp.com"
	} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhooks: mailchimp: base URL is not an http(s) URL")
	}
	api := newAPICaller("mailchimp", opts.HTTPClient, opts.MaxConns, opts.Now)
	key := opts.APIKey
	api.auth = func(r *http.Request) { r.SetBasicAuth("optinproxy", key) } // any user name will do
	return &MailchimpClient{base: base + "/3.0", api: api}, nil
}

// AudienceMember is a member as a members page shows it. Times are ISO
// 8601 as Mailchimp writes them, "" when unknown.
type AudienceMember struct {
	ID                   string                `json:"id"`
	EmailAddress         string                `json:"email_address"`
	Status               string                `json:"status"`
	TimestampSignup      string                `json:"timestamp_signup"`
	IPSignup             string                `json:"ip_signup"`
	TimestampOpt         string                `json:"timestamp_opt"`
	IPOpt                string                `json:"ip_opt"`
	LastChanged          string                `json:"last_changed"`
	MarketingPermissions []MarketingPermission `json:"marketing_permissions"`
}

// MarketingPermission is a member's answer to one of the audience's GDPR
// permissions.
type MarketingPermission struct {
	ID      string `json:"marketing_permission_id"`
	Text    string `json:"text"`
	Enabled bool   `json:"enabled"`
}

// AudiencePage is one page of members; TotalItems counts the whole
// audience.
type AudiencePage struct {
	Members    []AudienceMember `json:"members"`
	TotalItems int              `json:"total_items"`
}

// Members reads count members (1 to MaxMemberPage) from offset on.
func (c *MailchimpClient) Members(ctx context.Context, listID string, offset, count int) (AudiencePage, error) {
	if count < 1 || count > MaxMemberPage || offset < 0 {
		return AudiencePage{}, fmt.Errorf("webhooks: mailchimp: page of %d from %d (1 to %d, from 0 on)", count, offset, MaxMemberPage)
	}
	q := url.Values{"count": {strconv.Itoa(count)}, "offset": {strconv.Itoa(offset)}, "fields": {memberFields}}
	var page AudiencePage
	err := c.api.do(ctx, http.MethodGet, c.listURL(listID)+"/members?"+q.Encode(), nil, &page)
	return page, err
}

// SetStatus sets a member's status (PATCH): "unsubscribed" for a
// withdrawal. It never adds the address to the audience: a non-member is
// ErrNotMember.
func (c *MailchimpClient) SetStatus(ctx context.Context, listID string, a optin.Address, status string) error {
	switch status {
	case MemberSubscribed, MemberUnsubscribed, MemberPending, MemberTransactional:
	default:
		return fmt.Errorf("webhooks: mailchimp: cannot set status %q", status)
	}
	return c.eachHash(a, func(hash string) error {
		return c.api.do(ctx, http.MethodPatch, c.memberURL(listID, hash), map[string]string{"status": status}, nil)
	})
}

// DeletePermanent erases the member for good (GDPR); it cannot be added
// back through the API afterwards. A non-member is ErrNotMember.
func (c *MailchimpClient) DeletePermanent(ctx context.Context, listID string, a optin.Address) error {
	return c.eachHash(a, func(hash string) error {
		return c.api.do(ctx, http.MethodPost, c.memberURL(listID, hash)+"/actions/delete-permanent", nil, nil)
	})
}

// eachHash calls f with the address's subscriber hash, and when the
// member is not found and the domain is internationalized, with the hash
// of its ASCII form too: which form Mailchimp keeps is not documented.
func (c *MailchimpClient) eachHash(a optin.Address, f func(hash string) error) error {
	if a.IsZero() {
		return fmt.Errorf("webhooks: mailchimp: %w", optin.ErrBadAddress)
	}
	forms := []string{a.String()}
	if ascii := a.Local() + "@" + a.ASCIIDomain(); ascii != forms[0] {
		forms = append(forms, ascii)
	}
	var err error
	for _, form := range forms {
		err = f(SubscriberHash(form))
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			return err
		}
	}
	return fmt.Errorf("%w (%w)", ErrNotMember, err)
}

func (c *MailchimpClient) listURL(listID string) string {
	return c.base + "/lists/" + url.PathEscape(listID)
}

func (c *MailchimpClient) memberURL(listID, hash string) string {
	return c.listURL(listID) + "/members/" + hash
}

// SubscriberHash is Mailchimp's id of a member: the lowercase hex MD5 of
// the lowercased, trimmed address.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}
