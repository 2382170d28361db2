package storetest

import (
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// walkSuppressions pages through Suppressions with limit and checks the
// page sizes: full pages but the last, none over the limit.
func walkSuppressions(t *testing.T, f *fixture, limit int) []optin.Suppression {
	t.Helper()
	size := optin.PageSize(limit)
	var all []optin.Suppression
	cursor := ""
	for pages := 1; ; pages++ {
		p, err := f.store.Suppressions(f.ctx, cursor, limit)
		if err != nil {
			t.Fatalf("Suppressions(%q, %d): %v", cursor, limit, err)
		}
		all = append(all, p.Suppressions...)
		if p.NextCursor == "" {
			if len(p.Suppressions) > size {
				t.Errorf("last page of limit %d holds %d", limit, len(p.Suppressions))
			}
			return all
		}
		if len(p.Suppressions) != size {
			t.Errorf("page %d of limit %d holds %d and is not the last", pages, limit, len(p.Suppressions))
		}
		if p.NextCursor == cursor || pages > 1000 {
			t.Fatalf("Suppressions(%q, %d): the cursor does not move", cursor, limit)
		}
		cursor = p.NextCursor
	}
}

// checkSuppressions compares a walk with the suppressions wanted, as
// "address reason" strings.
func checkSuppressions(t *testing.T, what string, got []optin.Suppression, want map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range got {
		k := s.Subject.String() + " " + string(s.Reason)
		switch {
		case seen[k]:
			t.Errorf("%s: %s listed twice", what, k)
		case !want[k]:
			t.Errorf("%s: %s listed, not suppressed", what, k)
		case s.CreatedAt.IsZero():
			t.Errorf("%s: %s without a time", what, k)
		}
		seen[k] = true
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("%s: %s missing", what, k)
		}
	}
}

// testSuppressionPaging: 250 suppressions of 230 addresses, paged.
func testSuppressionPaging(t *testing.T, h Harness) {
	f := openFixture(t, h)
	if p, err := f.store.Suppressions(f.ctx, "", 0); err != nil || len(p.Suppressions) != 0 || p.NextCursor != "" {
		t.Fatalf("Suppressions of an empty store: %+v %v", p, err)
	}
	want := map[string]bool{}
	var changes []optin.Change
	var twice optin.Address
	for i := range 230 {
		a := f.addr(fmt.Sprintf("s%03d@paging.example", (i*37)%230)) // stored out of order
		changes = append(changes, f.suppress(a, optin.SuppressManual))
		want[a.String()+" manual"] = true
		if i%23 == 0 || i%23 == 11 {
			changes = append(changes, f.suppress(a, optin.SuppressHardBounce))
			want[a.String()+" hard_bounce"] = true
			twice = a
		}
	}
	f.apply(changes...)
	if len(want) != 250 {
		t.Fatalf("seeded %d suppressions", len(want))
	}
	checkSuppressions(t, "limit 100", walkSuppressions(t, f, 100), want)
	checkSuppressions(t, "limit 7", walkSuppressions(t, f, 7), want)
	checkSuppressions(t, "limit 1000", walkSuppressions(t, f, 1000), want)
	if p, err := f.store.Suppressions(f.ctx, "", 0); err != nil || len(p.Suppressions) != optin.DefaultPageSize || p.NextCursor == "" {
		t.Errorf("Suppressions with limit 0: %d, cursor %q, %v; want the default page of %d", len(p.Suppressions), p.NextCursor, err, optin.DefaultPageSize)
	}

	f.applied(f.unsuppress(twice, optin.SuppressManual))
	delete(want, twice.String()+" manual")
	checkSuppressions(t, "after removing one", walkSuppressions(t, f, 100), want)
	f.applied(f.unsuppress(twice, optin.SuppressHardBounce))
	delete(want, twice.String()+" hard_bounce")
	checkSuppressions(t, "after removing an address's last", walkSuppressions(t, f, 100), want)
}

// testEventPaging: 1050 events of 150 subjects, paged oldest first, with
// and without filters.
func testEventPaging(t *testing.T, h Harness) {
	f := openFixture(t, h)
	if p, err := f.store.Events(f.ctx, optin.EventQuery{}); err != nil || len(p.Events) != 0 || p.NextCursor != "" {
		t.Fatalf("Events of an empty store: %+v %v", p, err)
	}
	const total, subjects = 1050, 150
	addrs := make([]optin.Address, subjects)
	for i := range addrs {
		addrs[i] = f.addr(fmt.Sprintf("e%03d@paging.example", i))
	}
	base := f.ago(10 * time.Hour)
	var changes []optin.Change
	for i := range total {
		a := addrs[i%subjects]
		switch i % 3 {
		case 0:
			changes = append(changes, f.grant(a, newsletter, optin.ConsentChange{At: base.Add(time.Duration(i) * time.Second)}))
		case 1:
			changes = append(changes, f.receipt(a, optin.EventMessageRelayed, fmt.Sprintf("<%d@crm.example>", i)))
		case 2:
			changes = append(changes, f.receipt(a, optin.EventMessageBlocked, fmt.Sprintf("<%d@crm.example>", i)))
		}
	}
	var all []optin.Event
	for start := 0; start < total; start += 350 {
		for i, r := range f.apply(changes[start : start+350]...) {
			if !r.Applied {
				t.Fatalf("change %d not applied", start+i)
			}
			all = append(all, r.Event)
		}
	}

	first, err := f.store.Events(f.ctx, optin.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "first page, default limit", first.Events, all[:optin.DefaultPageSize])
	if first.NextCursor == "" {
		t.Error("first page of many without a NextCursor")
	}
	capped, err := f.store.Events(f.ctx, optin.EventQuery{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "first page, limit 5000", capped.Events, all[:optin.MaxPageSize])

	for _, limit := range []int{100, 1000, 333} {
		pages := f.pages(optin.EventQuery{Limit: limit})
		var got []optin.Event
		for i, p := range pages {
			if i < len(pages)-1 && len(p.Events) != limit {
				t.Errorf("limit %d: page %d holds %d events and is not the last", limit, i, len(p.Events))
			}
			got = append(got, p.Events...)
		}
		sameEvents(t, fmt.Sprintf("all pages of limit %d", limit), got, all)
	}

	filter := func(keep func(i int, e optin.Event) bool) []optin.Event {
		var out []optin.Event
		for i, e := range all {
			if keep(i, e) {
				out = append(out, e)
			}
		}
		return out
	}
	sameEvents(t, "type message.blocked",
		f.events(optin.EventQuery{Type: optin.EventMessageBlocked}),
		filter(func(_ int, e optin.Event) bool { return e.Type == optin.EventMessageBlocked }))
	sameEvents(t, "type consent.granted, limit 50",
		f.events(optin.EventQuery{Type: optin.EventConsentGranted, Limit: 50}),
		filter(func(_ int, e optin.Event) bool { return e.Type == optin.EventConsentGranted }))
	a := addrs[7]
	ofA := filter(func(_ int, e optin.Event) bool { return e.Subject == a })
	sameEvents(t, "subject", f.events(optin.EventQuery{Subject: a, Limit: 2}), ofA)
	checkChain(t, ofA)
	sameEvents(t, "subject and type",
		f.events(optin.EventQuery{Subject: a, Type: optin.EventMessageRelayed, Limit: 1}),
		filter(func(_ int, e optin.Event) bool { return e.Subject == a && e.Type == optin.EventMessageRelayed }))
	since := all[600].Time
	sameEvents(t, "since the 601st event's time (at or after)",
		f.events(optin.EventQuery{Since: since, Limit: 200}),
		filter(func(i int, _ optin.Event) bool { return i >= 600 }))
	sameEvents(t, "subject since",
		f.events(optin.EventQuery{Subject: a, Since: since}),
		filter(func(i int, e optin.Event) bool { return i >= 600 && e.Subject == a }))

	for _, q := range []optin.EventQuery{
		{Since: all[total-1].Time.Add(time.Second)},
		{Subject: f.addr("nobody@paging.example")},
		{Type: optin.EventSubjectErased},
	} {
		if p, err := f.store.Events(f.ctx, q); err != nil || len(p.Events) != 0 || p.NextCursor != "" {
			t.Errorf("Events(%+v) that selects nothing: %d events, cursor %q, %v", q, len(p.Events), p.NextCursor, err)
		}
	}
}
