package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// testUndatedImport: an import row without granted_at invents nothing:
// no grant time, no evidence time or policy version, the file and line
// named instead; and it does not override a stored record, which it
// cannot be ordered against.
func testUndatedImport(t *testing.T, h Harness) {
	f := openFixture(t, h)
	a, b, c := f.addr("withdrew@example.com"), f.addr("fresh@example.com"), f.addr("dated@example.com")
	f.applied(f.withdraw(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour), Source: optin.SourceUnsubscribe}))
	src := func(line int) *optin.ImportSource {
		return &optin.ImportSource{File: "list.csv", Line: line, At: f.base}
	}
	undatedA := f.grant(a, newsletter, optin.ConsentChange{Source: optin.SourceImport, Import: src(2)})
	undatedB := f.grant(b, newsletter, optin.ConsentChange{Source: optin.SourceImport, Import: src(3)})
	dated := f.grant(c, newsletter, optin.ConsentChange{Source: optin.SourceImport, Import: src(4), At: f.ago(48 * time.Hour),
		Evidence: optin.Evidence{PolicyVersion: "2025-06", IP: "198.51.100.7"}})
	rs := f.apply(undatedA, undatedB, dated)
	if rs[0].Applied || !rs[1].Applied || !rs[2].Applied {
		t.Fatalf("applied: %v %v %v; want the undated row over a stored withdrawal ignored, the others applied", rs[0].Applied, rs[1].Applied, rs[2].Applied)
	}
	if st := f.lookup(newsletter, []optin.Address{a})[0]; st.Consent == nil || st.Consent.Status != optin.StatusWithdrawn {
		t.Errorf("%s after an undated import: %+v, want still withdrawn", a, st.Consent)
	}
	v := f.subject(b, 10)
	if len(v.Consents) != 1 {
		t.Fatalf("%s: %d consents", b, len(v.Consents))
	}
	got := v.Consents[0]
	if got.Status != optin.StatusGranted || !got.GrantedAt.IsZero() || got.UpdatedAt.IsZero() ||
		got.Gaps != optin.GapGrantTime|optin.GapPolicyVersion|optin.GapEvidence {
		t.Errorf("undated import: %+v; want granted, no grant time, gaps granted_at, policy_version, evidence", got)
	}
	if got.Evidence != nil {
		t.Errorf("undated import got evidence %+v; it gave none", got.Evidence)
	}
	var d optin.ConsentDetails
	if err := json.Unmarshal(v.Events[0].Details, &d); err != nil || d.Import == nil || d.Import.File != "list.csv" || d.Import.Line != 3 {
		t.Errorf("undated import's event names %+v (%v); want list.csv line 3", d.Import, err)
	}
	w := f.subject(c, 10).Consents[0]
	if !w.GrantedAt.Equal(f.ago(48*time.Hour)) || w.Gaps != 0 || w.Evidence == nil || w.Evidence.PolicyVersion != "2025-06" {
		t.Errorf("dated import with a policy version: %+v, evidence %+v; want its time and no gaps", w, w.Evidence)
	}
}

// testProofGaps: what a consent's proof lacks is kept with the record,
// for the no-proof report, and read back by every read.
func testProofGaps(t *testing.T, h Harness) {
	f := openFixture(t, h)
	bare, full := f.addr("bare@example.com"), f.addr("full@example.com")
	f.applied(f.grant(bare, newsletter, optin.ConsentChange{}))
	f.applied(f.grant(full, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.9", Text: "Yes"}}))
	f.applied(f.withdraw(full, offers, optin.ConsentChange{}))
	sts := f.lookup(newsletter, []optin.Address{bare, full})
	if sts[0].Consent.Gaps != optin.GapEvidence || sts[1].Consent.Gaps != 0 {
		t.Errorf("lookup: gaps %v and %v; want evidence alone for a grant without evidence, none with it",
			sts[0].Consent.Gaps.Names(), sts[1].Consent.Gaps.Names())
	}
	for _, c := range f.subject(full, 0).Consents {
		if c.Gaps != 0 {
			t.Errorf("%s %s: gaps %v", c.Purpose, c.Status, c.Gaps.Names())
		}
	}
	if g := f.subject(bare, 0).Consents[0].Gaps; g != optin.GapEvidence {
		t.Errorf("Subject: gaps %v", g.Names())
	}
}

// testSubjectsPaging: Subjects lists every subject once, with its
// address and records, over pages of any size.
func testSubjectsPaging(t *testing.T, h Harness) {
	f := openFixture(t, h)
	want := map[optin.Address]int{}
	for i := range 25 {
		a := f.addr(fmt.Sprintf("page%02d@example.com", i))
		switch i % 3 {
		case 0:
			f.applied(f.grant(a, newsletter, optin.ConsentChange{}))
			want[a] = 1
		case 1:
			f.applied(f.grant(a, newsletter, optin.ConsentChange{}))
			f.applied(f.withdraw(a, offers, optin.ConsentChange{}))
			want[a] = 2
		case 2:
			f.applied(f.receipt(a, optin.EventMessageBlocked, "<p@crm.example>"))
			want[a] = 0
		}
	}
	for _, limit := range []int{1, 7, 25, 1000} {
		seen := map[optin.Address]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("limit %d: more than 100 pages", limit)
			}
			p, err := f.store.Subjects(f.ctx, cursor, limit)
			if err != nil {
				t.Fatalf("Subjects(limit %d): %v", limit, err)
			}
			if len(p.Subjects) > limit {
				t.Errorf("limit %d: a page of %d", limit, len(p.Subjects))
			}
			for _, v := range p.Subjects {
				if seen[v.Address] {
					t.Errorf("limit %d: %s listed twice", limit, v.Address)
				}
				seen[v.Address] = true
				if n, ok := want[v.Address]; !ok || len(v.Consents) != n {
					t.Errorf("limit %d: %s with %d consents, want %d (known: %v)", limit, v.Address, len(v.Consents), n, ok)
				}
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if len(seen) != len(want) {
			t.Errorf("limit %d: %d subjects listed, want %d", limit, len(seen), len(want))
		}
	}
}
