package optin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"time"
)

// Ledger is the one place where consent changes are made: it applies the
// purposes' rules (default basis, double opt-in, retention), fills the
// evidence defaults, builds the event, and hands the change to the Store.
// The admin API, the webhooks and the unsubscribe pages all go through it.
// Safe for concurrent use.
type Ledger struct {
	store Store
	// purposes are replaced whole by SetPurposes, never changed in place.
	purposes atomic.Pointer[Purposes]
	now      func() time.Time
	policy   string
}

// LedgerOptions configure NewLedger.
type LedgerOptions struct {
	Store    Store
	Purposes Purposes
	// PolicyVersion is the current privacy-policy version; new evidence
	// without one gets it.
	PolicyVersion string
	Now           func() time.Time
}

// NewLedger validates opts.
func NewLedger(opts LedgerOptions) (*Ledger, error) {
	if opts.Store == nil {
		return nil, errors.New("optin: ledger without a store")
	}
	if err := validPurposes(opts.Purposes); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Ledger{store: opts.Store, now: opts.Now, policy: opts.PolicyVersion}
	l.purposes.Store(&opts.Purposes)
	return l, nil
}

func validPurposes(ps Purposes) error {
	for name, p := range ps {
		if p.Name != name {
			return fmt.Errorf("%w: %q listed as %q", ErrBadPurpose, p.Name, name)
		}
		if err := p.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// SetPurposes validates ps as NewLedger does and puts it in force for
// every change made from now on (a configuration reload); a change under
// way finishes with the purposes it began with. ps must not be changed
// afterwards. Safe for concurrent use.
func (l *Ledger) SetPurposes(ps Purposes) error {
	if err := validPurposes(ps); err != nil {
		return err
	}
	l.purposes.Store(&ps)
	return nil
}

// Store is the ledger's store, for reads.
func (l *Ledger) Store() Store { return l.store }

// Purposes are the purposes in force; the map must not be changed.
func (l *Ledger) Purposes() Purposes { return *l.purposes.Load() }

// ConsentChange is a grant or a withdrawal as a caller asks for it. Zero
// fields take defaults: Basis the purpose's, At now, Source "api".
type ConsentChange struct {
	Basis    Basis
	Source   string
	Evidence Evidence
	// At is when the change happened (a webhook's occurred_at); it orders
	// changes, newest wins.
	At time.Time
	// Actor is who made it: an API token's name, "webhook:mailchimp", ...
	Actor string
	// Status, when set, records that status instead of granted or
	// withdrawn (an import of "pending" or "expired" rows).
	Status Status
	// Import, when set, says the change comes from an import. Imports
	// never invent evidence: without At the grant time stays
	// unknown, and the evidence gets no default time or policy version.
	// An import without At is applied only when no record for the
	// purpose is stored (it cannot be ordered against one).
	Import *ImportSource
}

// ImportSource names where an imported change came from, kept in its
// event: the file (as the importer named it), its line, and when.
type ImportSource struct {
	File string    `json:"file,omitempty"`
	Line int       `json:"line,omitempty"`
	At   time.Time `json:"at"`
}

var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_:.-]{0,63}$`)

// GrantChange builds the Change for a grant of purpose to a: granted, or
// pending for a double opt-in purpose unless the source is the
// confirmation itself.
func (l *Ledger) GrantChange(a Address, purpose string, cc ConsentChange) (Change, error) {
	p, err := l.Purposes().Get(purpose)
	if err != nil {
		return Change{}, err
	}
	status := StatusGranted
	if p.DoubleOptIn && cc.Source != SourceDoubleOptIn {
		status = StatusPending
	}
	if cc.Status != "" {
		status = cc.Status
	}
	return l.change(a, p, status, cc)
}

// WithdrawChange builds the Change for a withdrawal. A withdrawal is
// recorded even when nothing was granted: for a legitimate-interests
// purpose it is the objection that stops the mail.
func (l *Ledger) WithdrawChange(a Address, purpose string, cc ConsentChange) (Change, error) {
	p, err := l.Purposes().Get(purpose)
	if err != nil {
		return Change{}, err
	}
	return l.change(a, p, StatusWithdrawn, cc)
}

func (l *Ledger) change(a Address, p Purpose, status Status, cc ConsentChange) (Change, error) {
	if a.IsZero() {
		return Change{}, fmt.Errorf("%w: no address", ErrBadAddress)
	}
	if !status.Valid() {
		return Change{}, fmt.Errorf("%w: status %q", ErrBadInput, status)
	}
	now := l.now().UTC()
	at := cc.At.UTC()
	undated := cc.At.IsZero()
	if undated {
		at = now
	}
	if at.After(now.Add(5 * time.Minute)) {
		return Change{}, fmt.Errorf("%w: change time %s is in the future", ErrBadInput, at.Format(time.RFC3339))
	}
	basis := cc.Basis
	if basis == "" {
		basis = p.Basis
	}
	if !basis.Valid() {
		return Change{}, fmt.Errorf("%w: basis %q", ErrBadInput, basis)
	}
	source := cc.Source
	if source == "" {
		source = SourceAPI
	}
	if !sourcePattern.MatchString(source) {
		return Change{}, fmt.Errorf("%w: source %q (lowercase letters, digits, _ : . -)", ErrBadInput, source)
	}
	ev := cc.Evidence
	given := !ev.IsZero()
	imported := cc.Import != nil
	if ev.Time.IsZero() && !(imported && undated) {
		ev.Time = at
	}
	if ev.PolicyVersion == "" && status != StatusWithdrawn && !imported {
		ev.PolicyVersion = l.policy
	}
	c := &Consent{Subject: a, Purpose: p.Name, Status: status, Basis: basis, Source: source, UpdatedAt: at}
	if status == StatusGranted || status == StatusPending {
		c.PolicyVersion = ev.PolicyVersion
	}
	if status == StatusGranted {
		if !(imported && undated) {
			c.GrantedAt = at
		}
		if p.Retention > 0 {
			// An undated import's retention runs from the import: the
			// grant time is unknown, and the consent must still end.
			c.ExpiresAt = at.Add(p.Retention)
		}
	}
	if status == StatusGranted || status == StatusPending {
		if status == StatusGranted && c.GrantedAt.IsZero() {
			c.Gaps |= GapGrantTime
		}
		if ev.PolicyVersion == "" {
			c.Gaps |= GapPolicyVersion
		}
		if !given {
			c.Gaps |= GapEvidence
		}
	}
	details := ConsentDetails{Status: status, Basis: basis, Source: source, ExpiresAt: c.ExpiresAt, Import: cc.Import}
	if !ev.IsZero() {
		details.Evidence = &ev
	}
	return Change{
		Subject: a,
		Undated: imported && undated,
		Consent: c,
		Event: Event{
			Time: now, Type: eventFor(status), Subject: a, Purpose: p.Name, Actor: cc.Actor,
			Details: details.Marshal(),
		},
	}, nil
}

func eventFor(s Status) EventType {
	switch s {
	case StatusPending:
		return EventConsentPending
	case StatusWithdrawn:
		return EventConsentWithdrawn
	case StatusExpired:
		return EventConsentExpired
	}
	return EventConsentGranted
}

// Grant records a grant (or pending) and returns what was stored. An
// erased address is refused: an error wrapping ErrErased.
func (l *Ledger) Grant(ctx context.Context, a Address, purpose string, cc ConsentChange) (Result, error) {
	ch, err := l.GrantChange(a, purpose, cc)
	if err != nil {
		return Result{}, err
	}
	return l.applyOne(ctx, ch)
}

// Withdraw records a withdrawal.
func (l *Ledger) Withdraw(ctx context.Context, a Address, purpose string, cc ConsentChange) (Result, error) {
	ch, err := l.WithdrawChange(a, purpose, cc)
	if err != nil {
		return Result{}, err
	}
	return l.applyOne(ctx, ch)
}

// Suppress adds an address-level block; adding one that exists changes
// nothing and records nothing.
func (l *Ledger) Suppress(ctx context.Context, a Address, reason SuppressionReason, actor string) (Result, error) {
	ch, err := l.SuppressChange(a, reason, actor)
	if err != nil {
		return Result{}, err
	}
	return l.applyOne(ctx, ch)
}

// SuppressChange builds the Change Suppress applies, for a batch (a sync
// page, an erasure with its withdrawals).
func (l *Ledger) SuppressChange(a Address, reason SuppressionReason, actor string) (Change, error) {
	if !reason.Valid() {
		return Change{}, badReason(reason)
	}
	return Change{Subject: a, AddSuppression: reason, Event: l.suppressionEvent(a, EventSuppressionAdded, reason, actor)}, nil
}

// Unsuppress removes an address-level block.
func (l *Ledger) Unsuppress(ctx context.Context, a Address, reason SuppressionReason, actor string) (Result, error) {
	if !reason.Valid() {
		return Result{}, badReason(reason)
	}
	return l.applyOne(ctx, Change{Subject: a, RemoveSuppression: reason, Event: l.suppressionEvent(a, EventSuppressionRemoved, reason, actor)})
}

func (l *Ledger) suppressionEvent(a Address, t EventType, reason SuppressionReason, actor string) Event {
	return Event{Time: l.now().UTC(), Type: t, Subject: a, Actor: actor, Details: []byte(`{"reason":"` + string(reason) + `"}`)}
}

// Apply hands prepared changes to the store in one batch.
func (l *Ledger) Apply(ctx context.Context, changes []Change) ([]Result, error) {
	return l.store.Apply(ctx, changes)
}

func (l *Ledger) applyOne(ctx context.Context, ch Change) (Result, error) {
	rs, err := l.store.Apply(ctx, []Change{ch})
	if err != nil {
		return Result{}, err
	}
	return rs[0], rs[0].Refused
}
