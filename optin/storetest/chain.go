package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// testHistoryAndChain: a subject's history comes back oldest first, each
// event naming the one before, from Subject and from Events alike, and
// Verify counts what is there.
func testHistoryAndChain(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b := f.addr("history@example.com"), f.addr("other@example.com")
	var ra, rb []optin.Result
	for i := range 12 {
		var ch optin.Change
		switch i % 4 {
		case 0:
			ch = f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Duration(20-i) * time.Minute)})
		case 1:
			ch = f.receipt(a, optin.EventMessageRelayed, fmt.Sprintf("<%d@crm.example>", i))
		case 2:
			ch = f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(time.Duration(20-i) * time.Minute)})
		case 3:
			ch = f.receipt(a, optin.EventMessageBlocked, fmt.Sprintf("<%d@crm.example>", i))
		}
		ra = append(ra, f.applied(ch))
		if i%4 == 0 {
			rb = append(rb, f.applied(f.receipt(b, optin.EventMessageRelayed, fmt.Sprintf("<b%d@crm.example>", i))))
		}
	}

	want := resultEvents(ra)
	v := f.subject(a, 100)
	sameEvents(t, "Subject(recent 100)", v.Events, want)
	checkChain(t, v.Events)
	sameEvents(t, "Subject(recent 5)", f.subject(a, 5).Events, want[len(want)-5:])
	if v := f.subject(a, 0); len(v.Events) != 0 {
		t.Errorf("Subject(recent 0): %d events", len(v.Events))
	}
	sameEvents(t, "Events(subject)", f.history(a), want)
	sameEvents(t, "Events(other subject)", f.history(b), resultEvents(rb))
	checkChain(t, f.history(b))
	f.wantVerified(2, len(ra)+len(rb))
}

func testVerifyEmpty(t *testing.T, h Harness) {
	f := openFixture(t, h)
	f.wantVerified(0, 0)
}

// testVerifyNamesTampered: an event changed in storage breaks its
// subject's chain, and only that one.
func testVerifyNamesTampered(t *testing.T, h Harness) {
	if h.Tamper == nil {
		t.Skip("the harness cannot tamper with storage")
	}
	f := openFixture(t, h)
	subjects := []optin.Address{f.addr("a@tamper.example"), f.addr("b@tamper.example"), f.addr("c@tamper.example")}
	eventIDs := map[string]bool{}
	for i, a := range subjects {
		for j := range 3 {
			r := f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Duration(10-j) * time.Minute)}))
			if i == 1 {
				eventIDs[r.Event.ID] = true
			}
		}
	}
	f.wantVerified(3, 9)
	h.Tamper(t, f.store, subjects[1], false)
	r := f.verify()
	if r.Subjects != 3 || len(r.Broken) != 1 || r.Broken[0].Subject != subjects[1].String() || !eventIDs[r.Broken[0].Event] {
		t.Errorf("Verify after tampering with %s: %+v; want it alone named, with one of its events %v", subjects[1], r, eventIDs)
	}
}

// concurrentChange is one change a writer goroutine made, with its result.
type concurrentChange struct {
	ch  optin.Change
	res optin.Result
}

// runWriters runs writers goroutines, each applying its changes in order,
// one at a time or (odd writers) in batches of five, while a reader
// looks the subjects up. It returns every change with its result.
func runWriters(t *testing.T, f *fixture, changes [][]optin.Change, read []optin.Address) []concurrentChange {
	var (
		mu   sync.Mutex
		out  []concurrentChange
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	for g, list := range changes {
		wg.Go(func() {
			step := 1 + 4*(g%2)
			for i := 0; i < len(list); i += step {
				batch := list[i:min(i+step, len(list))]
				rs, err := f.store.Apply(f.ctx, batch)
				if err != nil || len(rs) != len(batch) {
					t.Errorf("writer %d: Apply: %d results, %v", g, len(rs), err)
					return
				}
				mu.Lock()
				for j := range batch {
					out = append(out, concurrentChange{batch[j], rs[j]})
				}
				mu.Unlock()
			}
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := f.store.Lookup(f.ctx, optin.LookupQuery{Purpose: newsletter, Addresses: read, Message: "mid:<concurrent@storetest>"}); err != nil {
				t.Errorf("Lookup during writes: %v", err)
				return
			}
			if _, err := f.store.Subject(f.ctx, read[0], 5); err != nil && !errors.Is(err, optin.ErrNotFound) {
				t.Errorf("Subject during writes: %v", err)
				return
			}
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	return out
}

// checkConcurrent checks one subject after concurrent writes: every
// applied change is in its history exactly once, the chain holds, and
// the record is the newest change's.
func checkConcurrent(t *testing.T, f *fixture, a optin.Address, made []concurrentChange) int {
	t.Helper()
	var applied []string
	var newest *optin.Change
	for _, m := range made {
		if m.ch.Subject != a {
			continue
		}
		if m.res.Applied {
			applied = append(applied, m.res.Event.ID)
		}
		if c := m.ch.Consent; c != nil && (newest == nil || c.UpdatedAt.After(newest.Consent.UpdatedAt)) {
			newest = &m.ch
		}
	}
	hist := f.history(a)
	checkChain(t, hist)
	got := ids(hist)
	slices.Sort(got)
	slices.Sort(applied)
	if !slices.Equal(got, applied) {
		t.Errorf("%s: history holds %d events, %d changes were applied (lost or extra events)", a, len(got), len(applied))
	}
	if newest != nil {
		st := f.lookup(newsletter, []optin.Address{a})[0]
		if st.Consent == nil || st.Consent.Status != newest.Consent.Status || !st.Consent.UpdatedAt.Equal(newest.Consent.UpdatedAt) {
			t.Errorf("%s: record %+v, want the newest change's %s at %s", a, st.Consent, newest.Consent.Status, newest.Consent.UpdatedAt)
		}
	}
	return len(applied)
}

// testConcurrentSameSubject: 8 writers x 50 changes to one subject.
func testConcurrentSameSubject(t *testing.T, h Harness) {
	const writers, each = 8, 50
	f := openFixture(t, h)
	a := f.addr("busy@example.com")
	base := f.ago(10 * time.Hour)
	changes := make([][]optin.Change, writers)
	for g := range writers {
		for i := range each {
			at := base.Add(time.Duration(i*writers+g) * time.Second)
			switch {
			case i%5 == 4:
				changes[g] = append(changes[g], f.receipt(a, optin.EventMessageRelayed, fmt.Sprintf("<%d.%d@crm.example>", g, i)))
			case (g+i)%2 == 0:
				changes[g] = append(changes[g], f.grant(a, newsletter, optin.ConsentChange{At: at}))
			default:
				changes[g] = append(changes[g], f.withdraw(a, newsletter, optin.ConsentChange{At: at}))
			}
		}
	}
	made := runWriters(t, f, changes, []optin.Address{a})
	if len(made) != writers*each {
		t.Fatalf("%d of %d changes answered", len(made), writers*each)
	}
	n := checkConcurrent(t, f, a, made)
	f.wantVerified(1, n)
}

// testConcurrentManySubjects: 8 writers, each on its own subject and on
// one shared subject.
func testConcurrentManySubjects(t *testing.T, h Harness) {
	const writers, each = 8, 50
	f := openFixture(t, h)
	shared := f.addr("shared@example.com")
	subjects := []optin.Address{shared}
	base := f.ago(10 * time.Hour)
	changes := make([][]optin.Change, writers)
	for g := range writers {
		own := f.addr(fmt.Sprintf("writer%d@example.com", g))
		subjects = append(subjects, own)
		for i := range each {
			a := own
			if i%2 == 1 {
				a = shared
			}
			at := base.Add(time.Duration(i*writers+g) * time.Second)
			switch i % 3 {
			case 0:
				changes[g] = append(changes[g], f.grant(a, newsletter, optin.ConsentChange{At: at}))
			case 1:
				changes[g] = append(changes[g], f.withdraw(a, newsletter, optin.ConsentChange{At: at}))
			default:
				changes[g] = append(changes[g], f.receipt(a, optin.EventMessageBlocked, fmt.Sprintf("<%d.%d@crm.example>", g, i)))
			}
		}
	}
	made := runWriters(t, f, changes, subjects)
	if len(made) != writers*each {
		t.Fatalf("%d of %d changes answered", len(made), writers*each)
	}
	total := 0
	for _, a := range subjects {
		total += checkConcurrent(t, f, a, made)
	}
	f.wantVerified(len(subjects), total)
}
