package notices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"optinproxy/optin"
	"optinproxy/webhooks"
)

// Reader is what Confirmations reads of the store; optin.Store is one.
type Reader interface {
	Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error)
}

// ConfirmationsOptions configure NewConfirmations. All but Language,
// Now and Logger are required.
type ConfirmationsOptions struct {
	Mailer   *Mailer
	Store    Reader
	Purposes optin.Purposes
	// Link makes the confirmation link of the pending consent of a to
	// purpose recorded at pending (a /confirm/TOKEN URL).
	Link func(a optin.Address, purpose string, pending time.Time) string
	// Expiry is how long a link works after the pending consent was
	// recorded (policy.pending_expiry).
	Expiry time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Confirmations is the outbox target that mails the double opt-in
// confirmation of each consent.pending event. The Dispatcher makes it
// durable: the record of each event is saved before the mail is sent and
// retried with backoff, and of several instances on one store only the
// one holding the target's lease sends, so each pending event gets one
// mail. Deliver skips (no mail, the delivery retired) what must not be
// mailed when its turn comes. Safe for concurrent use.
type Confirmations struct {
	o   ConfirmationsOptions
	log *slog.Logger
}

// TargetName is the Confirmations target's name in the outbox.
const TargetName = "confirmations"

var _ webhooks.Target = (*Confirmations)(nil)

// NewConfirmations validates o.
func NewConfirmations(o ConfirmationsOptions) (*Confirmations, error) {
	switch {
	case o.Mailer == nil:
		return nil, errors.New("notices: confirmations without a mailer")
	case o.Store == nil:
		return nil, errors.New("notices: confirmations without a store")
	case o.Link == nil:
		return nil, errors.New("notices: confirmations without links")
	case o.Expiry <= 0:
		return nil, errors.New("notices: confirmations without an expiry")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Confirmations{o: o, log: o.Logger.With("component", "notices.confirmations")}, nil
}

// Name is TargetName.
func (c *Confirmations) Name() string { return TargetName }

// Wants takes the consent.pending events only.
func (c *Confirmations) Wants(e optin.Event) bool { return e.Type == optin.EventConsentPending }

// Deliver mails the confirmation of d's pending consent, unless it must
// not go (see skip): then it records nothing and returns nil, so that the
// delivery is retired. A mail the upstream refused for good, or that may
// have gone out already, is not tried again.
func (c *Confirmations) Deliver(ctx context.Context, d webhooks.Delivery) (bool, error) {
	e := d.Event
	p, details, why := c.check(e)
	if why == "" {
		var err error
		if why, err = c.current(ctx, e, p); err != nil {
			return true, err
		}
	}
	if why != "" {
		c.log.Info("confirmation not mailed", "reason", why, "event_id", e.ID, "purpose", e.Purpose)
		return false, nil
	}
	link := c.o.Link(e.Subject, p.Name, e.Time)
	err := c.o.Mailer.SendConfirmation(ctx, e.Subject, describe(p), link, e.Time.Add(c.o.Expiry), language(details))
	if errors.Is(err, ErrMaybeSent) {
		// Sending again might mail it twice; the subject can sign up again
		// should it not have arrived.
		c.log.Warn("confirmation may have been mailed: the upstream's reply was lost; not sending it again", "event_id", e.ID)
		return false, nil
	}
	if err != nil {
		return Retryable(err), err
	}
	c.log.Info("confirmation mailed", "event_id", e.ID, "purpose", p.Name, "subject", e.Subject)
	return false, nil
}

// check applies the rules that need no store: what is not mailed, and
// why ("" to mail). An import must not mail the list it brings in; a
// purpose no longer configured has no page to confirm on; an event whose
// link would have expired on arrival is not worth a mail.
func (c *Confirmations) check(e optin.Event) (optin.Purpose, optin.ConsentDetails, string) {
	var details optin.ConsentDetails
	if e.Erased {
		return optin.Purpose{}, details, "subject erased"
	}
	if err := json.Unmarshal(e.Details, &details); err != nil {
		return optin.Purpose{}, details, "details unreadable"
	}
	p, ok := c.o.Purposes[e.Purpose]
	switch {
	case details.Import != nil || details.Source == optin.SourceImport:
		return p, details, "imported"
	case !ok:
		return p, details, "purpose not configured"
	case !c.o.Now().Before(e.Time.Add(c.o.Expiry)):
		return p, details, "expired"
	}
	return p, details, ""
}

// current reads the subject's record and says why not to mail: the
// record is no longer the one this event made pending (confirmed,
// withdrawn, erased, expired, or pending again with a mail of its own),
// or the address takes no mail even of a transactional kind (a hard
// bounce, a complaint, an erasure).
func (c *Confirmations) current(ctx context.Context, e optin.Event, p optin.Purpose) (string, error) {
	sts, err := c.o.Store.Lookup(ctx, optin.LookupQuery{Purpose: p.Name, Addresses: []optin.Address{e.Subject}})
	if err != nil {
		return "", fmt.Errorf("notices: reading the record: %w", err)
	}
	if len(sts) != 1 {
		return "", fmt.Errorf("notices: the store answered %d records for one address", len(sts))
	}
	st := sts[0]
	switch {
	case st.Consent == nil || st.Consent.Status != optin.StatusPending:
		return "no longer pending", nil
	case st.Consent.EventID != e.ID:
		return "superseded by a later request", nil
	}
	notice := optin.Purpose{Name: p.Name, Basis: optin.BasisContract, Category: optin.CategoryTransactional}
	if d := optin.Decide(notice, optin.Standing{Suppressions: st.Suppressions}, false, c.o.Now()); !d.Allow {
		return string(d.Reason), nil
	}
	return "", nil
}

// describe names a purpose to the subject: its description, else its
// name.
func describe(p optin.Purpose) string {
	if p.Description != "" {
		return p.Description
	}
	return p.Name
}

// language is the one the sign-up's evidence names ("lang": "nl" or
// "en"), "" for the Mailer's own.
func language(d optin.ConsentDetails) string {
	if d.Evidence != nil {
		return d.Evidence.Extra["lang"]
	}
	return ""
}
