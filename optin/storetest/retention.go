package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

const day = 24 * time.Hour

// sweepOpts are the policy's defaults, with pages small enough that the
// suite's few subjects take several.
var sweepOpts = optin.SweepOptions{Notice: 30 * day, PendingExpiry: 7 * day, PageSize: 3}

// sweep runs the ledger's retention sweep as of now.
func (f *fixture) sweep(now time.Time, opts optin.SweepOptions) optin.SweepReport {
	f.tb.Helper()
	rep, err := f.ledger.Sweep(f.ctx, now, opts)
	if err != nil {
		f.tb.Fatalf("Sweep at %s: %v", now.Format(time.RFC3339), err)
	}
	return rep
}

// wantSwept checks a sweep's counts for the newsletter and doi purposes.
func wantSwept(tb testing.TB, what string, rep optin.SweepReport, noticed, expired, unconfirmed int) {
	tb.Helper()
	total := func(m map[string]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	}
	if total(rep.Noticed) != noticed || total(rep.Expired) != expired || total(rep.Unconfirmed) != unconfirmed {
		tb.Errorf("%s: noticed %v, expired %v, unconfirmed %v; want %d, %d, %d", what, rep.Noticed, rep.Expired, rep.Unconfirmed,
			noticed, expired, unconfirmed)
	}
}

// ofType keeps the events of type t.
func ofType(events []optin.Event, t optin.EventType) []optin.Event {
	var out []optin.Event
	for _, e := range events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// testRecordFields: a record's policy version and the time its expiry was
// announced are read back by every read, also after a restart.
func testRecordFields(t *testing.T, h Harness) {
	f := openFixture(t, h)
	old, cur := f.addr("old-policy@example.com"), f.addr("current@example.com")
	f.applied(f.grant(old, newsletter, optin.ConsentChange{At: f.ago(retention - day), Evidence: optin.Evidence{PolicyVersion: "2025-06"}}))
	f.applied(f.grant(cur, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
	f.applied(f.withdraw(cur, offers, optin.ConsentChange{At: f.ago(time.Hour)}))
	now := f.clock.Now()
	changes := optin.SweepChanges(f.subject(old, 0), now, sweepOpts)
	if len(changes) != 1 || changes[0].Notice == "" {
		t.Fatalf("SweepChanges of a grant a day before its expiry: %+v, want one notice", changes)
	}
	noticed := f.applied(changes[0])
	want := map[optin.Address]map[string][2]any{
		old: {newsletter: {"2025-06", noticed.Event.Time}},
		cur: {newsletter: {policy, time.Time{}}, offers: {"", time.Time{}}},
	}
	check := func(when string) {
		t.Helper()
		same := func(how string, a optin.Address, c optin.Consent) {
			t.Helper()
			w, ok := want[a][c.Purpose]
			switch {
			case !ok:
				t.Errorf("%s, %s: unexpected record %s of %s", when, how, c.Purpose, a)
			case c.PolicyVersion != w[0] || !c.NoticedAt.Equal(w[1].(time.Time)):
				t.Errorf("%s, %s: %s %s: policy %q, noticed %s; want %q, %s", when, how, a, c.Purpose,
					c.PolicyVersion, c.NoticedAt, w[0], w[1])
			}
		}
		for a, ps := range want {
			v := f.subject(a, 0)
			for _, c := range v.Consents {
				same("Subject", a, c)
			}
			for p := range ps {
				if st := f.lookup(p, []optin.Address{a})[0]; st.Consent == nil {
					t.Errorf("%s, Lookup: %s has no %s record", when, a, p)
				} else {
					same("Lookup", a, *st.Consent)
				}
			}
		}
		page, err := f.store.Subjects(f.ctx, "", optin.MaxPageSize)
		if err != nil || len(page.Subjects) != 2 {
			t.Fatalf("%s: Subjects: %d, %v", when, len(page.Subjects), err)
		}
		for _, v := range page.Subjects {
			for _, c := range v.Consents {
				same("Subjects", v.Address, c)
			}
		}
	}
	check("written")
	if h.Reopen != nil {
		f.reopen(t, h)
		check("after a restart")
	}
}

// testSweepNotice: consent.expiring is recorded once a term, retention
// notice ahead of the expiry, into the log and the outbox, and the record
// keeps its event and evidence; a renewal's term gets its own notice.
func testSweepNotice(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, later := f.addr("notice@example.com"), f.addr("later@example.com")
	grant := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(retention - 10*day), Evidence: optin.Evidence{IP: "192.0.2.5"}}))
	f.applied(f.grant(later, newsletter, optin.ConsentChange{At: f.ago(retention - 40*day)}))
	start := f.outboxAll("", 100)
	now := f.clock.Now()

	rep := f.sweep(now, sweepOpts)
	wantSwept(t, "first sweep", rep, 1, 0, 0)
	if rep.Subjects != 2 || rep.Noticed[newsletter] != 1 {
		t.Errorf("first sweep: %+v; want 2 subjects, the newsletter noticed once", rep)
	}
	v := f.subject(a, 10)
	c := v.Consents[0]
	notices := ofType(v.Events, optin.EventConsentExpiring)
	if len(notices) != 1 {
		t.Fatalf("after the sweep: %d consent.expiring events; history %s", len(notices), describeAll(v.Events))
	}
	n := notices[0]
	var d optin.NoticeDetails
	if err := json.Unmarshal(n.Details, &d); err != nil || d.Purpose != newsletter || !d.ExpiresAt.Equal(c.ExpiresAt) {
		t.Errorf("notice details %s (%v); want the purpose and expires_at %s", n.Details, err, c.ExpiresAt)
	}
	switch {
	case n.Purpose != newsletter || n.Actor != optin.ActorRetention || !n.Time.Equal(now):
		t.Errorf("notice %s; want purpose newsletter, actor retention, time %s", describe(n), now)
	case c.Status != optin.StatusGranted || c.EventID != grant.Event.ID || !c.NoticedAt.Equal(n.Time):
		t.Errorf("record after the notice %s, noticed %s; want the grant's, noticed at the event's time %s", describeRecord(&c), c.NoticedAt, n.Time)
	case c.Evidence == nil || c.Evidence.IP != "192.0.2.5":
		t.Errorf("the noticed record's evidence %+v; want the grant's", c.Evidence)
	}
	checkChain(t, v.Events)
	if got := f.outboxAll("", 100); len(got) != len(start)+1 || got[len(got)-1].Event.Type != optin.EventConsentExpiring ||
		got[len(got)-1].Event.Subject != a || !jsonEqual(got[len(got)-1].Event.Details, n.Details) {
		t.Errorf("outbox after the notice: %d items (before %d), the last %+v; want the notice queued", len(got), len(start), got[len(got)-1].Event)
	}

	// Once only: the next sweeps find it announced.
	for _, at := range []time.Time{now, now.Add(time.Hour), now.Add(9 * day)} {
		wantSwept(t, "sweep at "+at.String(), f.sweep(at, sweepOpts), 0, 0, 0)
	}
	if got := ofType(f.history(a), optin.EventConsentExpiring); len(got) != 1 {
		t.Errorf("after three more sweeps: %d notices", len(got))
	}

	// A renewal starts a term of its own, which gets its own notice.
	renewal := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.clock.Now()}))
	if r := renewal.Consent; !r.NoticedAt.IsZero() || !r.ExpiresAt.After(now.Add(retention-day)) {
		t.Fatalf("renewal: noticed %s, expires %s; want no notice and a new term", r.NoticedAt, r.ExpiresAt)
	}
	wantSwept(t, "sweep after the renewal", f.sweep(now.Add(9*day), sweepOpts), 0, 0, 0)
	next := renewal.Consent.ExpiresAt.Add(-5 * day)
	// later's notice is due too by then, and its expiry: one of each.
	wantSwept(t, "sweep in the next term", f.sweep(next, sweepOpts), 1, 1, 0)
	hist := f.history(a)
	if got := ofType(hist, optin.EventConsentExpiring); len(got) != 2 || !got[1].Time.Equal(next) {
		t.Errorf("notices over two terms: %s", describeAll(got))
	}
	if c := f.subject(a, 0).Consents[0]; c.EventID != renewal.Event.ID || !c.NoticedAt.Equal(next) {
		t.Errorf("record in the next term %s, noticed %s", describeRecord(&c), c.NoticedAt)
	}
	checkChain(t, hist)
	f.wantVerified(2, 6)
}

// testSweepExpiry: a granted consent past its expiry is marked expired,
// dated at the expiry, once; the relay's lookup sees it; a renewal made
// after the expiry wins.
func testSweepExpiry(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("expired@example.com"), f.addr("undated@example.com")
	grant := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(retention + 2*day), Source: optin.SourceForm}))
	// An undated import's term runs from the import: not due yet.
	f.applied(f.grant(b, newsletter, optin.ConsentChange{Source: optin.SourceImport, Import: &optin.ImportSource{File: "x.csv", Line: 2, At: f.base}}))
	now := f.clock.Now()

	rep := f.sweep(now, sweepOpts)
	wantSwept(t, "sweep", rep, 0, 1, 0)
	if rep.Expired[newsletter] != 1 {
		t.Errorf("expired by purpose %v", rep.Expired)
	}
	v := f.subject(a, 10)
	expired := ofType(v.Events, optin.EventConsentExpired)
	if len(expired) != 1 {
		t.Fatalf("after the sweep: history %s", describeAll(v.Events))
	}
	e := expired[0]
	var d optin.ConsentDetails
	if err := json.Unmarshal(e.Details, &d); err != nil || d.Status != optin.StatusExpired || d.Reason != optin.ExpiredRetention ||
		!d.ExpiresAt.Equal(grant.Consent.ExpiresAt) || d.Basis != optin.BasisConsent {
		t.Errorf("expiry details %s (%v)", e.Details, err)
	}
	want := optin.Consent{Purpose: newsletter, Status: optin.StatusExpired, Basis: optin.BasisConsent, Source: optin.SourceRetention,
		GrantedAt: grant.Consent.GrantedAt, UpdatedAt: grant.Consent.ExpiresAt, ExpiresAt: grant.Consent.ExpiresAt, EventID: e.ID}
	sameRecord(t, "expired record", &v.Consents[0], &want)
	if e.Actor != optin.ActorRetention || !e.Time.Equal(now) {
		t.Errorf("expiry event %s", describe(e))
	}
	st := f.lookup(newsletter, []optin.Address{a, b})
	if st[0].Consent == nil || st[0].Consent.Status != optin.StatusExpired || st[0].Consent.Active(now) {
		t.Errorf("Lookup after the expiry: %+v", st[0].Consent)
	}
	if st[1].Consent == nil || st[1].Consent.Status != optin.StatusGranted {
		t.Errorf("the undated import, not due: %+v", st[1].Consent)
	}
	wantSwept(t, "second sweep", f.sweep(now.Add(time.Hour), sweepOpts), 0, 0, 0)

	// Renewed after the expiry (a day ago; it expired two days ago): the
	// newer record wins.
	renewal := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(day)}))
	if c := f.subject(a, 0).Consents[0]; c.Status != optin.StatusGranted || c.EventID != renewal.Event.ID {
		t.Errorf("after a renewal: %s", describeRecord(&c))
	}
	checkChain(t, f.history(a))
	f.wantVerified(2, 4)
}

// testSweepRenewalRace: a sweep's changes made from a record that a
// renewal replaced before they were written record nothing; and sweeps
// racing renewals for real always leave the renewal standing.
func testSweepRenewalRace(t *testing.T, h Harness) {
	f := openFixture(t, h)
	due, soon := f.addr("due@example.com"), f.addr("soon@example.com")
	f.applied(f.grant(due, newsletter, optin.ConsentChange{At: f.ago(retention + day)}))
	f.applied(f.grant(soon, newsletter, optin.ConsentChange{At: f.ago(retention - 5*day)}))
	now := f.clock.Now()
	stale := append(optin.SweepChanges(f.subject(due, 0), now, sweepOpts), optin.SweepChanges(f.subject(soon, 0), now, sweepOpts)...)
	if len(stale) != 2 {
		t.Fatalf("SweepChanges: %d changes, want an expiry and a notice", len(stale))
	}
	// due's renewal was made before its expiry (a CRM's webhook dated
	// then, arriving now): the expiry, dated later, must not undo it.
	renewals := map[optin.Address]optin.Result{
		due:  f.applied(f.grant(due, newsletter, optin.ConsentChange{At: f.ago(2 * day)})),
		soon: f.applied(f.grant(soon, newsletter, optin.ConsentChange{At: f.ago(time.Hour)})),
	}
	for i, r := range f.apply(stale...) {
		if r.Applied {
			t.Errorf("the sweep's %s written over a renewal", stale[i].Event.Type)
		}
	}
	for a, r := range renewals {
		if c := f.subject(a, 0).Consents[0]; c.Status != optin.StatusGranted || c.EventID != r.Event.ID || !c.NoticedAt.IsZero() {
			t.Errorf("%s after the stale sweep: %s, noticed %s; want the renewal", a, describeRecord(&c), c.NoticedAt)
		}
	}

	// For real: a sweeper and renewals at once, on subjects due either
	// way. Whoever comes first, the renewal stands.
	var addrs []optin.Address
	for i := range 12 {
		a := f.addr(fmt.Sprintf("race%02d@example.com", i))
		back := retention + day
		if i%2 == 1 {
			back = retention - 5*day
		}
		f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(back)}))
		addrs = append(addrs, a)
	}
	now = f.clock.Now()
	var wg sync.WaitGroup
	renewed := make([]optin.Result, len(addrs))
	wg.Go(func() {
		if _, err := f.ledger.Sweep(f.ctx, now, optin.SweepOptions{Notice: 30 * day, PageSize: 2}); err != nil {
			t.Errorf("Sweep beside renewals: %v", err)
		}
	})
	for i, a := range addrs {
		wg.Go(func() {
			r, err := f.ledger.Grant(f.ctx, a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)})
			if err != nil || !r.Applied {
				t.Errorf("renewal of %s beside a sweep: %+v, %v", a, r, err)
			}
			renewed[i] = r
		})
	}
	wg.Wait()
	for i, a := range addrs {
		if c := f.subject(a, 0).Consents[0]; c.Status != optin.StatusGranted || c.EventID != renewed[i].Event.ID || !c.NoticedAt.IsZero() {
			t.Errorf("%s after a sweep raced its renewal: %s, noticed %s; want the renewal", a, describeRecord(&c), c.NoticedAt)
		}
	}
	if r := f.verify(); len(r.Broken) != 0 {
		t.Errorf("Verify after the race: broken %+v", r.Broken)
	}
}

// testSweepPending: a double opt-in never confirmed is marked expired
// policy.pending_expiry after it was recorded, saying why.
func testSweepPending(t *testing.T, h Harness) {
	f := openFixture(t, h)
	stale, fresh := f.addr("stale@example.com"), f.addr("fresh@example.com")
	pending := f.applied(f.grant(stale, doi, optin.ConsentChange{Source: optin.SourceForm, At: f.ago(8 * day)}))
	f.applied(f.grant(fresh, doi, optin.ConsentChange{Source: optin.SourceForm, At: f.ago(6 * day)}))
	if pending.Consent.Status != optin.StatusPending {
		t.Fatalf("a double opt-in grant recorded %s", pending.Consent.Status)
	}
	now := f.clock.Now()
	if rep := f.sweep(now, optin.SweepOptions{Notice: 30 * day}); len(rep.Unconfirmed) != 0 {
		t.Errorf("pending expiry 0: %v expired", rep.Unconfirmed)
	}
	rep := f.sweep(now, sweepOpts)
	wantSwept(t, "sweep", rep, 0, 0, 1)
	if rep.Unconfirmed[doi] != 1 {
		t.Errorf("unconfirmed by purpose %v", rep.Unconfirmed)
	}
	v := f.subject(stale, 10)
	ended := pending.Consent.UpdatedAt.Add(7 * day)
	c := v.Consents[0]
	if c.Status != optin.StatusExpired || !c.UpdatedAt.Equal(ended) || c.Source != optin.SourceRetention || !c.ExpiresAt.IsZero() {
		t.Errorf("expired pending record %s; want expired at %s", describeRecord(&c), ended)
	}
	expired := ofType(v.Events, optin.EventConsentExpired)
	var d optin.ConsentDetails
	if len(expired) != 1 || json.Unmarshal(expired[0].Details, &d) != nil || d.Reason != optin.ExpiredUnconfirmed || !d.ExpiresAt.Equal(ended) {
		t.Errorf("expiry of the pending record: %s", describeAll(expired))
	}
	if c := f.subject(fresh, 0).Consents[0]; c.Status != optin.StatusPending {
		t.Errorf("a record pending for 6 days: %s", describeRecord(&c))
	}
	wantSwept(t, "second sweep", f.sweep(now, sweepOpts), 0, 0, 0)
	// The fresh one's turn comes a day later.
	wantSwept(t, "a day later", f.sweep(now.Add(day+time.Minute), sweepOpts), 0, 0, 1)
}

// testSweepNoRetention: records of purposes without retention, and
// records that are not granted, never expire or get a notice.
func testSweepNoRetention(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a := f.addr("forever@example.com")
	long := 20 * 365 * day
	f.applied(f.grant(a, doi, optin.ConsentChange{Source: optin.SourceDoubleOptIn, At: f.ago(long)}))
	f.applied(f.grant(a, orders, optin.ConsentChange{At: f.ago(long)}))
	f.applied(f.withdraw(a, offers, optin.ConsentChange{At: f.ago(long)}))
	f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(long)}))
	f.applied(f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(long - day)}))
	before := f.subject(a, 0).Consents
	for _, at := range []time.Time{f.clock.Now(), f.base.Add(100 * 365 * day)} {
		rep := f.sweep(at, sweepOpts)
		wantSwept(t, "sweep at "+at.String(), rep, 0, 0, 0)
		if rep.Subjects != 1 {
			t.Errorf("sweep: %d subjects read", rep.Subjects)
		}
	}
	after := f.subject(a, 0).Consents
	for i := range before {
		sameRecord(t, "after the sweeps", &after[i], &before[i])
	}
}

// testSweepTwiceAtOnce: two sweeps at once over many pages record each
// notice and expiry once, and count it once between them.
func testSweepTwiceAtOnce(t *testing.T, h Harness) {
	f := openFixture(t, h)
	var due []optin.Address
	for i := range 30 {
		a := f.addr(fmt.Sprintf("twice%02d@example.com", i))
		switch i % 3 {
		case 0:
			f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(retention + day)}))
			due = append(due, a)
		case 1:
			f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(retention - 10*day)}))
			due = append(due, a)
		default:
			f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour)}))
		}
	}
	now := f.clock.Now()
	reps := make([]optin.SweepReport, 2)
	var wg sync.WaitGroup
	for i := range reps {
		wg.Go(func() {
			var err error
			if reps[i], err = f.ledger.Sweep(f.ctx, now, optin.SweepOptions{Notice: 30 * day, PageSize: 4}); err != nil {
				t.Errorf("sweep %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n, e := reps[0].Noticed[newsletter]+reps[1].Noticed[newsletter], reps[0].Expired[newsletter]+reps[1].Expired[newsletter]; n != 10 || e != 10 {
		t.Errorf("two sweeps at once counted %d notices and %d expiries, want 10 and 10 (%+v, %+v)", n, e, reps[0], reps[1])
	}
	for _, a := range due {
		hist := f.history(a)
		if n := len(ofType(hist, optin.EventConsentExpiring)) + len(ofType(hist, optin.EventConsentExpired)); n != 1 {
			t.Errorf("%s: %d sweep events after two sweeps at once: %s", a, n, describeAll(hist))
		}
	}
	f.wantVerified(30, 50)
}
