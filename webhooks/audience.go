package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"optinproxy/optin"
)

// AudienceOptions configure NewAudience.
type AudienceOptions struct {
	Client *MailchimpClient
	// ListID is the audience.
	ListID string
	// Purpose is the purpose the audience stands for: its withdrawals
	// unsubscribe the member.
	Purpose string
}

// Audience is the Target that keeps a Mailchimp audience in step with the
// ledger: a withdrawal of its purpose, or any suppression, unsubscribes
// the member (so that mail sent from Mailchimp stops too); an erasure
// deletes the member for good. It never subscribes anyone and never adds
// an address to the audience. Safe for concurrent use.
type Audience struct {
	client  *MailchimpClient
	listID  string
	purpose string
	name    string
}

var _ Target = (*Audience)(nil)

// NewAudience validates opts.
func NewAudience(opts AudienceOptions) (*Audience, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("webhooks: audience without a Mailchimp client")
	case opts.ListID == "":
		return nil, errors.New("webhooks: audience without a list id")
	case opts.Purpose == "":
		return nil, errors.New("webhooks: audience without a purpose")
	}
	return &Audience{client: opts.Client, listID: opts.ListID, purpose: opts.Purpose, name: "mailchimp-" + targetSlug(opts.ListID, 30)}, nil
}

// Name is "mailchimp-" and the list id in lowercase ([a-z0-9-]).
func (a *Audience) Name() string { return a.name }

// Wants takes withdrawals of the purpose, every suppression added and
// erasures, except the changes that came from Mailchimp itself.
func (a *Audience) Wants(e optin.Event) bool {
	switch e.Type {
	case optin.EventConsentWithdrawn:
		if e.Purpose != a.purpose {
			return false
		}
	case optin.EventSuppressionAdded, optin.EventSubjectErased:
	default:
		return false
	}
	return !fromMailchimp(e)
}

// Deliver unsubscribes the member, or deletes it permanently for an
// erasure (subject.erased, or the erased suppression). A member that is
// not in the audience is done with. The address of an erased subject is
// read only from its erasure's notice (optin.Erasure.Notify): the
// subject.erased event carries it, the subject's earlier events do not.
func (a *Audience) Deliver(ctx context.Context, d Delivery) (bool, error) {
	e := d.Event
	if e.Subject.IsZero() {
		return false, errors.New("webhooks: the subject was erased before its update reached Mailchimp: its address can no longer be read")
	}
	var err error
	switch {
	case e.Type == optin.EventSubjectErased, erasedSuppression(e):
		// The subject asked for erasure (or a CRM passed it on, which
		// records the erased suppression): Mailchimp's copy goes too.
		err = a.client.DeletePermanent(ctx, a.listID, e.Subject)
	case e.Type == optin.EventConsentWithdrawn, e.Type == optin.EventSuppressionAdded:
		err = a.client.SetStatus(ctx, a.listID, e.Subject, MemberUnsubscribed)
	default:
		return false, fmt.Errorf("webhooks: the Mailchimp audience takes no %s events", e.Type)
	}
	if err == nil || errors.Is(err, ErrNotMember) {
		return false, nil
	}
	return apiRetry(err), err
}

// erasedSuppression reports whether e adds the erased suppression.
func erasedSuppression(e optin.Event) bool {
	var d struct {
		Reason optin.SuppressionReason `json:"reason"`
	}
	return e.Type == optin.EventSuppressionAdded && json.Unmarshal(e.Details, &d) == nil && d.Reason == optin.SuppressErased
}

// fromMailchimp reports whether e records a change that Mailchimp told
// us of (its webhooks, the sync).
func fromMailchimp(e optin.Event) bool {
	if e.Actor == ActorMailchimp || e.Actor == ActorMailchimpSync {
		return true
	}
	var d struct {
		Source string `json:"source"`
	}
	return len(e.Details) > 0 && json.Unmarshal(e.Details, &d) == nil && d.Source == optin.SourceMailchimp
}

// targetSlug turns s into the [a-z0-9-] of a target name, at most n
// bytes.
func targetSlug(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() == n {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}
