package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"optinproxy/optin"
)

// RunCopy checks optin.Copy from a store of from into one of to (both
// must implement optin.Dumper and optin.Restorer): a ledger with every
// kind of thing a store keeps is copied, and the two stores then answer
// alike (Subject, Events, Verify, Lookup, Suppressions, DueErasures and
// the outbox). Run it for every pair of stores, each way.
func RunCopy(t *testing.T, from, to Harness) {
	t.Run("Whole", func(t *testing.T) { testCopyWhole(t, from, to) })
	t.Run("Resume", func(t *testing.T) { testCopyResume(t, from, to) })
	t.Run("NotEmpty", func(t *testing.T) { testCopyNotEmpty(t, from, to) })
}

// copyPair is a source with a seeded ledger and an empty target, on one
// clock and key.
type copyPair struct {
	src, dst *fixture
	addrs    []optin.Address
}

func openCopyPair(t *testing.T, from, to Harness) *copyPair {
	t.Helper()
	src := openFixture(t, from)
	dst := bareFixture(t)
	dst.clock, dst.keys, dst.base = src.clock, src.keys, src.base
	dst.use(to.Open(t, dst.clock.Now, dst.keys))
	return &copyPair{src: src, dst: dst, addrs: seedCopy(src)}
}

// seedCopy writes a ledger with each thing a copy must carry and returns
// its addresses.
func seedCopy(f *fixture) []optin.Address {
	f.tb.Helper()
	a, b, c, d, e, g := f.addr("ann@copy.example"), f.addr("bob@copy.example"), f.addr("cas@copy.example"),
		f.addr("dee@copy.example"), f.addr("eve@copy.example"), f.addr("gus@copy.example")
	ev := optin.Evidence{IP: "192.0.2.1", Text: "Yes, send me the newsletter"}
	f.apply(f.grant(a, newsletter, optin.ConsentChange{Source: "form", Evidence: ev, Actor: "api"}),
		f.grant(a, orders, optin.ConsentChange{Source: "api", Actor: "api"}))
	rc := f.receipt(a, optin.EventMessageRelayed, "<m1@copy.example>")
	rc.Delivered = &optin.Delivery{Message: "mid:<m1@copy.example>", Until: f.base.Add(time.Hour)}
	f.apply(rc, f.receipt(a, optin.EventMessageBlocked, "<m2@copy.example>"))
	f.apply(f.grant(b, doi, optin.ConsentChange{Source: "form", Status: optin.StatusPending, Actor: "api"}),
		f.grant(b, newsletter, optin.ConsentChange{Source: "form", Actor: "api"}))
	f.apply(f.withdraw(b, newsletter, optin.ConsentChange{Source: "unsubscribe", Actor: "subject"}), f.suppress(b, optin.SuppressManual))
	for _, x := range []optin.Address{c, d, e} {
		f.apply(f.grant(x, newsletter, optin.ConsentChange{Source: "import", Actor: "import"}), f.receipt(x, optin.EventMessageRelayed, "<m3@copy.example>"))
	}
	if _, err := f.ledger.Erase(f.ctx, c, optin.ErasureRequest{Actor: "api", Notify: true}); err != nil {
		f.tb.Fatalf("Erase: %v", err)
	}
	if _, err := f.ledger.Erase(f.ctx, d, optin.ErasureRequest{Actor: "api", At: f.base.Add(48 * time.Hour)}); err != nil {
		f.tb.Fatalf("Erase later: %v", err)
	}
	// e is erased and comes back: its key starts after the erasure.
	if _, err := f.ledger.Erase(f.ctx, e, optin.ErasureRequest{Actor: "api"}); err != nil {
		f.tb.Fatalf("Erase: %v", err)
	}
	f.applied(f.unsuppress(e, optin.SuppressErased))
	f.apply(f.grant(e, offers, optin.ConsentChange{Source: "api", Actor: "api"}), f.receipt(e, optin.EventMessageRelayed, "<m4@copy.example>"))
	// g's oldest receipts are pruned.
	f.applied(f.grant(g, newsletter, optin.ConsentChange{Source: "form", Actor: "api"}))
	for i := range 3 {
		f.applied(f.receipt(g, optin.EventMessageRelayed, fmt.Sprintf("<old%d@copy.example>", i)))
	}
	cut := f.clock.Now()
	f.applied(f.receipt(g, optin.EventMessageBlocked, "<new@copy.example>"))
	if n, err := f.store.PruneReceipts(f.ctx, cut); err != nil || n < 3 {
		f.tb.Fatalf("PruneReceipts = %d, %v; want at least 3", n, err)
	}
	// h's grant is near its expiry, announced by a sweep (NoticedAt).
	h := f.addr("hal@copy.example")
	f.applied(f.grant(h, newsletter, optin.ConsentChange{At: f.ago(retention - 10*day), Source: "form", Actor: "api"}))
	if rep := f.sweep(f.clock.Now(), sweepOpts); rep.Noticed[newsletter] != 1 {
		f.tb.Fatalf("the sweep noticed %v, want the newsletter of one subject", rep.Noticed)
	}
	// Two targets: one part way with a retired and a pending record, one
	// with a dead letter and no cursor.
	page, err := f.store.OutboxRead(f.ctx, "", 100)
	if err != nil || len(page.Items) < 4 {
		f.tb.Fatalf("OutboxRead = %d items, %v", len(page.Items), err)
	}
	rec := func(target string, it optin.OutboxItem, st optin.DeliveryStatus) optin.OutboxDelivery {
		return optin.OutboxDelivery{Target: target, EventID: it.Event.ID, EventType: it.Event.Type, Pos: it.Pos, SubjectID: it.SubjectID,
			Status: st, Attempts: 2, Created: f.base, NextAt: f.base.Add(time.Minute), LastError: "503"}
	}
	it := page.Items
	if err := f.store.SaveDeliveries(f.ctx, "crm", []optin.OutboxDelivery{rec("crm", it[0], optin.DeliveryRetired), rec("crm", it[1], optin.DeliveryPending)}, it[2].Pos); err != nil {
		f.tb.Fatalf("SaveDeliveries: %v", err)
	}
	if err := f.store.SaveDeliveries(f.ctx, "mailchimp", []optin.OutboxDelivery{rec("mailchimp", it[3], optin.DeliveryDead)}, ""); err != nil {
		f.tb.Fatalf("SaveDeliveries: %v", err)
	}
	return []optin.Address{a, b, c, d, e, g, h}
}

func testCopyWhole(t *testing.T, from, to Harness) {
	p := openCopyPair(t, from, to)
	st, err := optin.Copy(p.src.ctx, dumper(t, p.src.store), restorer(t, p.dst.store), "test", nil)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if st.Subjects != len(p.addrs) || st.Written != len(p.addrs) || st.Receipts == 0 {
		t.Errorf("Copy = %+v, want %d subjects read and written, with receipts", st, len(p.addrs))
	}
	sameLedger(t, p.src, p.dst, p.addrs)
	// The copy goes on as a ledger of its own: chains extend, new
	// subjects come.
	p.dst.applied(p.dst.grant(p.addrs[0], offers, optin.ConsentChange{Source: "api", Actor: "api"}))
	p.dst.applied(p.dst.receipt(p.addrs[5], optin.EventMessageRelayed, "<after@copy.example>"))
	p.dst.applied(p.dst.grant(p.dst.addr("new@copy.example"), newsletter, optin.ConsentChange{Source: "api", Actor: "api"}))
	if r := p.dst.verify(); len(r.Broken) != 0 || r.Subjects != len(p.addrs)+1 {
		t.Errorf("Verify after writing on the copy = %+v", r)
	}
	events := p.dst.events(optin.EventQuery{Limit: optin.MaxPageSize})
	if n := len(events); n < 3 || events[n-1].Subject.String() != "new@copy.example" {
		t.Errorf("the log's last event after writing on the copy is not the new subject's: %v", ids(events[max(0, n-3):]))
	}
}

// failingRestorer writes half of the first batch (at least one) and then fails, as a
// copy killed part way leaves its target.
type failingRestorer struct {
	optin.Restorer
	wrote int
}

var errCut = errors.New("cut short")

func (r *failingRestorer) RestoreSubjects(ctx context.Context, subjects []optin.SubjectDump) (int, error) {
	n, err := r.Restorer.RestoreSubjects(ctx, subjects[:(len(subjects)+1)/2])
	r.wrote += n
	if err != nil {
		return n, err
	}
	return n, errCut
}

func testCopyResume(t *testing.T, from, to Harness) {
	p := openCopyPair(t, from, to)
	cut := &failingRestorer{Restorer: restorer(t, p.dst.store)}
	_, err := optin.Copy(p.src.ctx, dumper(t, p.src.store), cut, "test", nil)
	if !errors.Is(err, errCut) {
		t.Fatalf("Copy cut short = %v, want it to say so", err)
	}
	if _, err := optin.Copy(p.src.ctx, dumper(t, p.src.store), restorer(t, p.dst.store), "another", nil); !errors.Is(err, optin.ErrNotEmpty) {
		t.Errorf("another copy into a copy cut short = %v, want ErrNotEmpty", err)
	}
	st, err := optin.Copy(p.src.ctx, dumper(t, p.src.store), restorer(t, p.dst.store), "test", nil)
	if err != nil {
		t.Fatalf("Copy again: %v", err)
	}
	if cut.wrote == 0 || st.Written != len(p.addrs)-cut.wrote {
		t.Errorf("Copy again wrote %d subjects after the first wrote %d, want the %d the first left", st.Written, cut.wrote, len(p.addrs)-cut.wrote)
	}
	sameLedger(t, p.src, p.dst, p.addrs)
}

func testCopyNotEmpty(t *testing.T, from, to Harness) {
	p := openCopyPair(t, from, to)
	other := p.dst.addr("other@copy.example")
	p.dst.applied(p.dst.grant(other, newsletter, optin.ConsentChange{Source: "api", Actor: "api"}))
	_, err := optin.Copy(p.src.ctx, dumper(t, p.src.store), restorer(t, p.dst.store), "test", nil)
	if !errors.Is(err, optin.ErrNotEmpty) {
		t.Fatalf("Copy into a store with a ledger = %v, want ErrNotEmpty", err)
	}
	if _, err := p.dst.store.Subject(p.dst.ctx, p.addrs[0], 1); !errors.Is(err, optin.ErrNotFound) {
		t.Errorf("the refused copy wrote a subject: Subject = %v", err)
	}
	p.dst.wantVerified(1, 1)
}

func dumper(t *testing.T, s optin.Store) optin.Dumper {
	t.Helper()
	d, ok := s.(optin.Dumper)
	if !ok {
		t.Fatalf("%T is not an optin.Dumper", s)
	}
	return d
}

func restorer(t *testing.T, s optin.Store) optin.Restorer {
	t.Helper()
	r, ok := s.(optin.Restorer)
	if !ok {
		t.Fatalf("%T is not an optin.Restorer", s)
	}
	return r
}

// sameLedger checks that b answers every read as a does.
func sameLedger(t *testing.T, a, b *fixture, addrs []optin.Address) {
	t.Helper()
	ra, rb := a.verify(), b.verify()
	if len(ra.Broken) != 0 || len(rb.Broken) != 0 || ra.Subjects != rb.Subjects || ra.Events != rb.Events || ra.Receipts != rb.Receipts {
		t.Errorf("Verify: source %+v, copy %+v", ra, rb)
	}
	sameEvents(t, "the whole log", b.events(optin.EventQuery{Limit: 7}), a.events(optin.EventQuery{Limit: 7}))
	noticed := false
	for _, x := range addrs {
		va, vb := a.subject(x, 1000), b.subject(x, 1000)
		for _, c := range va.Consents {
			noticed = noticed || !c.NoticedAt.IsZero()
		}
		if va.Erased != vb.Erased || !va.ErasureAt.Equal(vb.ErasureAt) {
			t.Errorf("Subject(%s): erased %v at %v, source %v at %v", x, vb.Erased, vb.ErasureAt, va.Erased, va.ErasureAt)
		}
		sameEvents(t, "Subject("+x.String()+").Events", vb.Events, va.Events)
		sameEvents(t, "history of "+x.String(), b.history(x), a.history(x))
		if len(va.Consents) != len(vb.Consents) {
			t.Errorf("Subject(%s): %d consents, source %d", x, len(vb.Consents), len(va.Consents))
		} else {
			for i := range va.Consents {
				sameRecord(t, "Subject("+x.String()+")", &vb.Consents[i], &va.Consents[i])
				if !jsonEqual(asJSON(vb.Consents[i].Evidence), asJSON(va.Consents[i].Evidence)) {
					t.Errorf("Subject(%s) %s: evidence %+v, source %+v", x, va.Consents[i].Purpose, vb.Consents[i].Evidence, va.Consents[i].Evidence)
				}
			}
		}
		if !slices.EqualFunc(va.Suppressions, vb.Suppressions, func(p, q optin.Suppression) bool {
			return p.Reason == q.Reason && p.CreatedAt.Equal(q.CreatedAt) && p.Subject == q.Subject
		}) {
			t.Errorf("Subject(%s): suppressions %+v, source %+v", x, vb.Suppressions, va.Suppressions)
		}
	}
	if !noticed {
		t.Error("no consent of the source has NoticedAt: the copy of notices is not checked")
	}
	for _, purpose := range []string{newsletter, doi, offers, orders} {
		la, lb := a.lookup(purpose, addrs), b.lookup(purpose, addrs)
		for i := range la {
			sameRecord(t, "Lookup("+purpose+", "+addrs[i].String()+")", lb[i].Consent, la[i].Consent)
			if !sameReasons(lb[i].Suppressions, la[i].Suppressions) {
				t.Errorf("Lookup(%s, %s): suppressions %v, source %v", purpose, addrs[i], lb[i].Suppressions, la[i].Suppressions)
			}
		}
	}
	if sa, sb := allSuppressions(a), allSuppressions(b); fmt.Sprint(sa) != fmt.Sprint(sb) {
		t.Errorf("Suppressions:\n copy %v\nsource %v", sb, sa)
	}
	far := a.base.Add(1000 * time.Hour)
	da, erra := a.store.DueErasures(a.ctx, far, 100)
	db, errb := b.store.DueErasures(b.ctx, far, 100)
	if erra != nil || errb != nil || fmt.Sprint(da) != fmt.Sprint(db) {
		t.Errorf("DueErasures: copy %v (%v), source %v (%v)", db, errb, da, erra)
	}
	sameOutbox(t, a, b)
}

func asJSON(e *optin.Evidence) []byte {
	if e == nil {
		return nil
	}
	b, _ := json.Marshal(e)
	return b
}

// allSuppressions lists every suppression, in the order the pages give.
func allSuppressions(f *fixture) []string {
	f.tb.Helper()
	var out []string
	cursor := ""
	for range 1000 {
		p, err := f.store.Suppressions(f.ctx, cursor, 2)
		if err != nil {
			f.tb.Fatalf("Suppressions: %v", err)
		}
		for _, s := range p.Suppressions {
			out = append(out, fmt.Sprintf("%s %s %s", s.Subject, s.Reason, s.CreatedAt.Format(time.RFC3339Nano)))
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	slices.Sort(out) // the order of pages is a store's own
	return out
}

// sameOutbox checks that b's outbox holds a's items in a's order, that
// each target goes on from the same item, and that its records name the
// same items (positions are each store's own).
func sameOutbox(t *testing.T, a, b *fixture) {
	t.Helper()
	items := func(f *fixture, after string) []optin.OutboxItem {
		var out []optin.OutboxItem
		for range 1000 {
			p, err := f.store.OutboxRead(f.ctx, after, 3)
			if err != nil {
				f.tb.Fatalf("OutboxRead: %v", err)
			}
			out = append(out, p.Items...)
			if len(p.Items) == 0 {
				break
			}
			after = p.Next
		}
		return out
	}
	same := func(what string, ia, ib []optin.OutboxItem) {
		if len(ia) != len(ib) {
			t.Errorf("%s: %d items, source %d", what, len(ib), len(ia))
			return
		}
		for i := range ia {
			if ia[i].SubjectID != ib[i].SubjectID {
				t.Errorf("%s: item %d of subject %s, source %s", what, i, ib[i].SubjectID, ia[i].SubjectID)
			}
			sameEvent(t, fmt.Sprintf("%s: item %d", what, i), ib[i].Event, ia[i].Event)
		}
	}
	same("the outbox", items(a, ""), items(b, ""))
	for _, target := range []string{"crm", "mailchimp"} {
		ca, erra := a.store.OutboxCursor(a.ctx, target)
		cb, errb := b.store.OutboxCursor(b.ctx, target)
		if errors.Is(erra, optin.ErrNotFound) != errors.Is(errb, optin.ErrNotFound) {
			t.Errorf("OutboxCursor(%s): copy %v, source %v", target, errb, erra)
			continue
		}
		if erra == nil {
			same("after the cursor of "+target, items(a, ca), items(b, cb))
		}
		for _, st := range []optin.DeliveryStatus{optin.DeliveryPending, optin.DeliveryDead, optin.DeliveryRetired} {
			pa, erra := a.store.Deliveries(a.ctx, optin.DeliveryQuery{Target: target, Status: st})
			pb, errb := b.store.Deliveries(b.ctx, optin.DeliveryQuery{Target: target, Status: st})
			if erra != nil || errb != nil || len(pa.Deliveries) != len(pb.Deliveries) {
				t.Errorf("Deliveries(%s, %s): copy %+v (%v), source %+v (%v)", target, st, pb.Deliveries, errb, pa.Deliveries, erra)
				continue
			}
			for i, da := range pa.Deliveries {
				db := pb.Deliveries[i]
				ia, _ := a.store.OutboxItem(a.ctx, da.Pos)
				ib, _ := b.store.OutboxItem(b.ctx, db.Pos)
				da.Pos, db.Pos = "", ""
				if fmt.Sprint(da) != fmt.Sprint(db) || ia.Event.ID != ib.Event.ID {
					t.Errorf("Deliveries(%s, %s) %d:\n copy %+v (item %s)\nsource %+v (item %s)", target, st, i, db, ib.Event.ID, da, ia.Event.ID)
				}
			}
		}
	}
}
