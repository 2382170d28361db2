package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// Purposes of the suite's ledger, one of each kind a store meets.
const (
	newsletter = "newsletter" // consent, marketing, with retention
	doi        = "doi"        // consent, marketing, double opt-in
	offers     = "offers"     // legitimate interests, marketing
	orders     = "orders"     // contract, transactional
)

const (
	retention = 730 * 24 * time.Hour
	policy    = "2026-01"
)

var purposes = optin.Purposes{
	newsletter: {Name: newsletter, Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: retention, Unsubscribe: true},
	doi:        {Name: doi, Basis: optin.BasisConsent, Category: optin.CategoryMarketing, DoubleOptIn: true, Unsubscribe: true},
	offers:     {Name: offers, Basis: optin.BasisLegitimateInterests, Category: optin.CategoryMarketing, Unsubscribe: true},
	orders:     {Name: orders, Basis: optin.BasisContract, Category: optin.CategoryTransactional},
}

// clock moves one millisecond on every reading, so every event the suite
// makes has its own time, growing in the order the changes are built.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// advance moves the clock on by d.
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is one store with a ledger writing to it.
type fixture struct {
	tb     testing.TB
	ctx    context.Context
	store  optin.Store
	ledger *optin.Ledger
	clock  *clock
	// keys is the ledger key the store was opened with.
	keys *optin.Keys
	// base is the clock's start; change times (At) are taken before it.
	base time.Time
}

// newFixture writes to s, a store that keeps its own clock (for the
// benchmarks).
func newFixture(tb testing.TB, s optin.Store) *fixture {
	tb.Helper()
	f := bareFixture(tb)
	f.use(s)
	return f
}

// openFixture opens a store of h on the fixture's clock.
func openFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	f := bareFixture(t)
	f.use(h.Open(t, f.clock.Now, f.keys))
	return f
}

func bareFixture(tb testing.TB) *fixture {
	base := time.Now().UTC().Truncate(time.Second)
	return &fixture{tb: tb, ctx: context.Background(), clock: &clock{t: base}, base: base,
		keys: optin.StaticKeys(optin.NewKeyring(base))}
}

// reopen restarts the fixture's store with h.Reopen, on the same clock
// and key.
func (f *fixture) reopen(t *testing.T, h Harness) {
	t.Helper()
	s, err := h.Reopen(t, f.store, f.clock.Now, f.keys)
	if err != nil {
		t.Fatalf("reopening the store: %v", err)
	}
	f.use(s)
}

// use points the fixture at s, a reopened store.
func (f *fixture) use(s optin.Store) {
	f.tb.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: purposes, PolicyVersion: policy, Now: f.clock.Now})
	if err != nil {
		f.tb.Fatal(err)
	}
	f.store, f.ledger = s, l
}

// ago is a change time d before the clock's start.
func (f *fixture) ago(d time.Duration) time.Time { return f.base.Add(-d) }

func (f *fixture) addr(s string) optin.Address {
	f.tb.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		f.tb.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return a
}

func (f *fixture) grant(a optin.Address, purpose string, cc optin.ConsentChange) optin.Change {
	f.tb.Helper()
	ch, err := f.ledger.GrantChange(a, purpose, cc)
	if err != nil {
		f.tb.Fatalf("GrantChange(%s): %v", purpose, err)
	}
	return ch
}

func (f *fixture) withdraw(a optin.Address, purpose string, cc optin.ConsentChange) optin.Change {
	f.tb.Helper()
	ch, err := f.ledger.WithdrawChange(a, purpose, cc)
	if err != nil {
		f.tb.Fatalf("WithdrawChange(%s): %v", purpose, err)
	}
	return ch
}

// suppress and unsuppress build the changes optin.Ledger.Suppress and
// Unsuppress make, for batches.
func (f *fixture) suppress(a optin.Address, r optin.SuppressionReason) optin.Change {
	return optin.Change{Subject: a, AddSuppression: r, Event: optin.Event{
		Time: f.clock.Now(), Type: optin.EventSuppressionAdded, Subject: a, Actor: "storetest",
		Details: json.RawMessage(`{"reason":"` + string(r) + `"}`),
	}}
}

func (f *fixture) unsuppress(a optin.Address, r optin.SuppressionReason) optin.Change {
	return optin.Change{Subject: a, RemoveSuppression: r, Event: optin.Event{
		Time: f.clock.Now(), Type: optin.EventSuppressionRemoved, Subject: a, Actor: "storetest",
		Details: json.RawMessage(`{"reason":"` + string(r) + `"}`),
	}}
}

// receipt is an event-only change, as the SMTP proxy records a relayed
// or blocked recipient.
func (f *fixture) receipt(a optin.Address, t optin.EventType, messageID string) optin.Change {
	d := optin.Decision{Allow: true, Reason: optin.ReasonConsent}
	if t == optin.EventMessageBlocked {
		d = optin.Decision{Reason: optin.ReasonNoConsent}
	}
	return optin.Receipt{Subject: a, Purpose: newsletter, Actor: "smtp:crm", Time: f.clock.Now(), Decision: d,
		Relayed: t == optin.EventMessageRelayed, Details: optin.ReceiptDetails{MessageID: messageID, QueueID: "q" + messageID}}.Change()
}

// apply applies changes as one batch and fails the test on an error.
func (f *fixture) apply(changes ...optin.Change) []optin.Result {
	f.tb.Helper()
	rs, err := f.store.Apply(f.ctx, changes)
	if err != nil {
		f.tb.Fatalf("Apply of %d changes: %v", len(changes), err)
	}
	if len(rs) != len(changes) {
		f.tb.Fatalf("Apply of %d changes returned %d results", len(changes), len(rs))
	}
	return rs
}

func (f *fixture) applyOne(ch optin.Change) optin.Result {
	f.tb.Helper()
	return f.apply(ch)[0]
}

// applied applies one change and fails the test unless it was applied.
func (f *fixture) applied(ch optin.Change) optin.Result {
	f.tb.Helper()
	r := f.applyOne(ch)
	if !r.Applied {
		f.tb.Fatalf("%s change for %s not applied: %+v", ch.Event.Type, ch.Subject, r)
	}
	return r
}

func (f *fixture) subject(a optin.Address, recent int) *optin.SubjectView {
	f.tb.Helper()
	v, err := f.store.Subject(f.ctx, a, recent)
	if err != nil {
		f.tb.Fatalf("Subject(%s): %v", a, err)
	}
	if v.Address != a {
		f.tb.Errorf("Subject(%s).Address = %s", a, v.Address)
	}
	return v
}

func (f *fixture) lookup(purpose string, addrs []optin.Address) []optin.Standing {
	f.tb.Helper()
	return f.lookupQuery(optin.LookupQuery{Purpose: purpose, Addresses: addrs})
}

// lookupQuery runs q and checks that it answers every address in order.
func (f *fixture) lookupQuery(q optin.LookupQuery) []optin.Standing {
	f.tb.Helper()
	addrs := q.Addresses
	st, err := f.store.Lookup(f.ctx, q)
	if err != nil {
		f.tb.Fatalf("Lookup of %d addresses: %v", len(addrs), err)
	}
	if len(st) != len(addrs) {
		f.tb.Fatalf("Lookup of %d addresses returned %d", len(addrs), len(st))
	}
	for i := range st {
		if st[i].Address != addrs[i] {
			f.tb.Fatalf("Lookup: standing %d is of %s, asked %s: out of order", i, st[i].Address, addrs[i])
		}
		if q.Message == "" && st[i].Delivered {
			f.tb.Errorf("Lookup without a message: standing %d (%s) Delivered", i, addrs[i])
		}
	}
	return st
}

func (f *fixture) verify() optin.VerifyReport {
	f.tb.Helper()
	r, err := f.store.Verify(f.ctx)
	if err != nil {
		f.tb.Fatalf("Verify: %v", err)
	}
	return r
}

// wantVerified checks a report of an untouched store.
func (f *fixture) wantVerified(subjects, events int) {
	f.tb.Helper()
	r := f.verify()
	if r.Subjects != subjects || r.Events != events || len(r.Broken) != 0 {
		f.tb.Errorf("Verify = %d subjects, %d events, broken %+v; want %d, %d, none", r.Subjects, r.Events, r.Broken, subjects, events)
	}
}

// pages walks every page of q and returns the pages.
func (f *fixture) pages(q optin.EventQuery) []optin.EventPage {
	f.tb.Helper()
	var out []optin.EventPage
	for {
		p, err := f.store.Events(f.ctx, q)
		if err != nil {
			f.tb.Fatalf("Events(%+v): %v", q, err)
		}
		out = append(out, p)
		if p.NextCursor == "" {
			return out
		}
		if p.NextCursor == q.Cursor {
			f.tb.Fatalf("Events(%+v): NextCursor does not move", q)
		}
		if len(out) > 5000 {
			f.tb.Fatalf("Events(%+v): more than 5000 pages", q)
		}
		q.Cursor = p.NextCursor
	}
}

// events returns every event q selects, walking its pages.
func (f *fixture) events(q optin.EventQuery) []optin.Event {
	f.tb.Helper()
	var out []optin.Event
	for _, p := range f.pages(q) {
		out = append(out, p.Events...)
	}
	return out
}

// history is a subject's whole history, oldest first.
func (f *fixture) history(a optin.Address) []optin.Event {
	f.tb.Helper()
	return f.events(optin.EventQuery{Subject: a, Limit: optin.MaxPageSize})
}
