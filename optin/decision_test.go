package optin

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// decisionNow is the time every decision test decides at.
var decisionNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// recordState is a consent record's state as the decision rules speak of it.
type recordState string

const (
	stateNone           recordState = "none"
	stateGranted        recordState = "granted"
	stateGrantedExpired recordState = "granted-expired" // granted, ExpiresAt passed
	stateExpired        recordState = "expired"         // status expired
	statePending        recordState = "pending"
	stateWithdrawn      recordState = "withdrawn"
)

var recordStates = []recordState{stateNone, stateGranted, stateGrantedExpired, stateExpired, statePending, stateWithdrawn}

// record builds a consent record in state s, as a store would return it.
func record(s recordState) *Consent {
	c := &Consent{Purpose: "p", Basis: BasisConsent, Source: SourceForm,
		GrantedAt: decisionNow.Add(-48 * time.Hour), UpdatedAt: decisionNow.Add(-time.Hour)}
	switch s {
	case stateNone:
		return nil
	case stateGranted:
		c.Status, c.ExpiresAt = StatusGranted, decisionNow.Add(24*time.Hour)
	case stateGrantedExpired:
		c.Status, c.ExpiresAt = StatusGranted, decisionNow.Add(-time.Second)
	case stateExpired:
		c.Status, c.ExpiresAt = StatusExpired, decisionNow.Add(-time.Hour)
	case statePending:
		c.Status, c.GrantedAt = StatusPending, time.Time{}
	case stateWithdrawn:
		c.Status = StatusWithdrawn
	}
	return c
}

// expect is the decision table read row by row, written apart from Decide:
// first whether anything allows the mail, then which reason to give.
func expect(cat Category, state recordState, sups []SuppressionReason, role bool, basis Basis, rule RoleRule) Decision {
	has := func(r SuppressionReason) bool { return slices.Contains(sups, r) }
	switch cat {
	case CategoryTransactional:
		// "always, unless suppressed for hard_bounce, complaint or erased".
		for _, r := range []SuppressionReason{SuppressErased, SuppressComplaint, SuppressHardBounce} {
			if has(r) {
				return Decision{false, SuppressedReason(r)}
			}
		}
		return Decision{true, ReasonTransactional}
	case CategoryLegal:
		// "always, unless suppressed for hard_bounce".
		if has(SuppressHardBounce) {
			return Decision{false, SuppressedReason(SuppressHardBounce)}
		}
		return Decision{true, ReasonLegal}
	}

	// Marketing: the three ways in of the "allowed when" column.
	objected := state == stateWithdrawn
	byConsent := state == stateGranted
	byInterests := basis == BasisLegitimateInterests && !objected
	byRole := role && rule == RoleAllow && !objected // "a withdrawn record always beats a role address"
	// "Any suppression blocks marketing."
	if len(sups) == 0 {
		switch {
		case byConsent:
			return Decision{true, ReasonConsent}
		case byInterests:
			return Decision{true, ReasonLegitimateInterests}
		case byRole:
			return Decision{true, ReasonRoleAddress}
		}
	}
	// Blocked: a suppression names itself, most final first.
	for _, r := range []SuppressionReason{SuppressErased, SuppressComplaint, SuppressHardBounce, SuppressUnsubscribedAll, SuppressManual} {
		if has(r) {
			return Decision{false, SuppressedReason(r)}
		}
	}
	// Otherwise the record's state names the block.
	return Decision{false, map[recordState]Reason{
		stateNone:           ReasonNoConsent,
		stateGrantedExpired: ReasonExpired,
		stateExpired:        ReasonExpired,
		statePending:        ReasonPendingConfirmation,
		stateWithdrawn:      ReasonWithdrawn,
	}[state]}
}

// allSuppressions lists every set of the five reasons: none, each alone,
// and every combination, so precedence is covered too.
func allSuppressions() [][]SuppressionReason {
	reasons := []SuppressionReason{SuppressUnsubscribedAll, SuppressHardBounce, SuppressComplaint, SuppressErased, SuppressManual}
	var out [][]SuppressionReason
	for mask := range 1 << len(reasons) {
		var set []SuppressionReason
		for i, r := range reasons {
			if mask&(1<<i) != 0 {
				set = append(set, r)
			}
		}
		out = append(out, set)
	}
	return out
}

// TestDecideCrossProduct checks Decide against expect for every category,
// record state, set of suppressions, role or not, basis and role rule.
func TestDecideCrossProduct(t *testing.T) {
	n := 0
	for _, cat := range []Category{CategoryMarketing, CategoryTransactional, CategoryLegal} {
		for _, state := range recordStates {
			for _, sups := range allSuppressions() {
				for _, role := range []bool{false, true} {
					for _, basis := range []Basis{BasisConsent, BasisLegitimateInterests} {
						for _, rule := range []RoleRule{RoleAllow, RoleRequireConsent} {
							n++
							p := Purpose{Name: "p", Category: cat, Basis: basis, RoleAddresses: rule}
							st := Standing{Consent: record(state), Suppressions: slices.Clone(sups)}
							got := Decide(p, st, role, decisionNow)
							want := expect(cat, state, sups, role, basis, rule)
							if got != want {
								t.Errorf("%s, record %s, suppressed %v, role %v, basis %s, rule %s: got %v, want %v",
									cat, state, sups, role, basis, rule, got, want)
							}
							if !slices.Equal(st.Suppressions, sups) {
								t.Errorf("Decide changed the suppressions to %v", st.Suppressions)
							}
						}
					}
				}
			}
		}
	}
	if want := 3 * len(recordStates) * 32 * 2 * 2 * 2; n != want {
		t.Fatalf("ran %d cases, want %d", n, want)
	}
}

// TestDecideEdgeCases runs named cases from address to decision, through
// ParseAddress, RoleAddresses.Is and Decide, as the relay does.
func TestDecideEdgeCases(t *testing.T) {
	marketing := Purpose{Name: "newsletter", Category: CategoryMarketing, Basis: BasisConsent, RoleAddresses: RoleAllow}
	strict := marketing
	strict.RoleAddresses = RoleRequireConsent
	unset := marketing
	unset.RoleAddresses = ""
	interests := marketing
	interests.Basis = BasisLegitimateInterests
	transactional := Purpose{Name: "orders", Category: CategoryTransactional, Basis: BasisContract}
	legal := Purpose{Name: "breach-notice", Category: CategoryLegal, Basis: BasisLegalObligation}

	at := func(s Status, expires time.Time) *Consent {
		return &Consent{Purpose: "p", Status: s, ExpiresAt: expires}
	}
	sup := func(rs ...SuppressionReason) []SuppressionReason { return rs }

	tests := []struct {
		name         string
		addr         string
		add, remove  []string // policy.role_addresses
		purpose      Purpose
		consent      *Consent
		suppressions []SuppressionReason
		want         Decision
	}{
		// A withdrawn record beats a role address.
		{"withdrawn beats role address", "info@example.com", nil, nil, marketing, record(stateWithdrawn), nil, block(ReasonWithdrawn)},
		// The same role address without a record is allowed.
		{"role address, no record", "info@example.com", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// A person without a record under a consent basis is blocked.
		{"person, no record", "jan@example.com", nil, nil, marketing, nil, nil, block(ReasonNoConsent)},
		// A granted consent past its ExpiresAt no longer counts.
		{"expired by time", "jan@example.com", nil, nil, marketing, record(stateGrantedExpired), nil, block(ReasonExpired)},
		// Expiry is exclusive: at ExpiresAt itself the consent has expired.
		{"expires exactly now", "jan@example.com", nil, nil, marketing, at(StatusGranted, decisionNow), nil, block(ReasonExpired)},
		// A nanosecond before ExpiresAt it still counts.
		{"expires a moment later", "jan@example.com", nil, nil, marketing, at(StatusGranted, decisionNow.Add(time.Nanosecond)), nil, allow(ReasonConsent)},
		// A consent without ExpiresAt (retention 0) never expires.
		{"granted for ever", "jan@example.com", nil, nil, marketing, at(StatusGranted, time.Time{}), nil, allow(ReasonConsent)},
		// Status expired blocks even if ExpiresAt lies ahead: the sweeper's word stands.
		{"expired status, later ExpiresAt", "jan@example.com", nil, nil, marketing, at(StatusExpired, decisionNow.Add(time.Hour)), nil, block(ReasonExpired)},
		// An expired consent to a role address: the role address still allows it.
		{"expired role address", "sales@example.com", nil, nil, marketing, record(stateExpired), nil, allow(ReasonRoleAddress)},
		// Double opt-in not yet confirmed: a person waits.
		{"pending double opt-in", "jan@example.com", nil, nil, marketing, record(statePending), nil, block(ReasonPendingConfirmation)},
		// Pending for a role address of a purpose that allows them: allowed as a role address.
		{"pending role address", "info@example.com", nil, nil, marketing, record(statePending), nil, allow(ReasonRoleAddress)},
		// Pending for a role address of a require_consent purpose: waits like a person.
		{"pending role address, require_consent", "info@example.com", nil, nil, strict, record(statePending), nil, block(ReasonPendingConfirmation)},
		// require_consent: a role address without a record is blocked.
		{"role address, require_consent", "info@example.com", nil, nil, strict, nil, nil, block(ReasonNoConsent)},
		// An unset role rule means allow (the default).
		{"role rule unset", "info@example.com", nil, nil, unset, nil, nil, allow(ReasonRoleAddress)},
		// Legitimate interests with an objection (withdrawal) blocks.
		{"legitimate interests, objection", "jan@example.com", nil, nil, interests, record(stateWithdrawn), nil, block(ReasonWithdrawn)},
		// Legitimate interests with no record allows.
		{"legitimate interests, no record", "jan@example.com", nil, nil, interests, nil, nil, allow(ReasonLegitimateInterests)},
		// Legitimate interests to a role address: the basis is named, it comes first.
		{"legitimate interests, role address", "info@example.com", nil, nil, interests, nil, nil, allow(ReasonLegitimateInterests)},
		// A pending record is no objection: legitimate interests still allow.
		{"legitimate interests, pending", "jan@example.com", nil, nil, interests, record(statePending), nil, allow(ReasonLegitimateInterests)},
		// A granted consent is named even under legitimate interests.
		{"legitimate interests, granted", "jan@example.com", nil, nil, interests, record(stateGranted), nil, allow(ReasonConsent)},
		// The purpose's basis counts, not the record's.
		{"record basis ignored", "jan@example.com", nil, nil, marketing, &Consent{Status: StatusPending, Basis: BasisLegitimateInterests}, nil, block(ReasonPendingConfirmation)},
		// A status this version does not know allows nothing, not even a role address: fail closed.
		{"unknown status", "info@example.com", nil, nil, interests, at("objected", time.Time{}), nil, block(ReasonNoConsent)},
		// A suppression beats a granted consent.
		{"suppressed despite consent", "jan@example.com", nil, nil, marketing, record(stateGranted), sup(SuppressManual), block(SuppressedReason(SuppressManual))},
		// A suppression beats a role address.
		{"suppressed role address", "info@example.com", nil, nil, marketing, nil, sup(SuppressUnsubscribedAll), block(SuppressedReason(SuppressUnsubscribedAll))},
		// Several suppressions: the most final is named, whatever the stored order.
		{"suppression precedence", "jan@example.com", nil, nil, marketing, nil, sup(SuppressManual, SuppressHardBounce, SuppressErased), block(SuppressedReason(SuppressErased))},
		// A suppression reason this version does not know still blocks marketing.
		{"unknown suppression, marketing", "jan@example.com", nil, nil, marketing, record(stateGranted), sup("quarantine"), block(SuppressedReason("quarantine"))},
		// ... and a known one is preferred to it for the name.
		{"unknown and known suppression", "jan@example.com", nil, nil, marketing, nil, sup("quarantine", SuppressManual), block(SuppressedReason(SuppressManual))},
		// Transactional mail does not read the record: a withdrawal does not stop an order confirmation.
		{"transactional, withdrawn", "jan@example.com", nil, nil, transactional, record(stateWithdrawn), nil, allow(ReasonTransactional)},
		// unsubscribed_all and manual do not block transactional mail.
		{"transactional, unsubscribed and manual", "jan@example.com", nil, nil, transactional, nil, sup(SuppressUnsubscribedAll, SuppressManual), allow(ReasonTransactional)},
		// A complaint blocks transactional mail.
		{"transactional, complaint", "jan@example.com", nil, nil, transactional, nil, sup(SuppressManual, SuppressComplaint), block(SuppressedReason(SuppressComplaint))},
		// An unknown suppression reason does not block transactional mail: only erased, complaint and hard_bounce do.
		{"transactional, unknown suppression", "jan@example.com", nil, nil, transactional, nil, sup("quarantine"), allow(ReasonTransactional)},
		// Legal mail is blocked by a hard bounce only.
		{"legal, hard bounce", "jan@example.com", nil, nil, legal, nil, sup(SuppressComplaint, SuppressHardBounce), block(SuppressedReason(SuppressHardBounce))},
		// Erasure does not block legal mail: only a hard bounce does.
		{"legal, erased", "jan@example.com", nil, nil, legal, nil, sup(SuppressErased, SuppressComplaint, SuppressUnsubscribedAll, SuppressManual), allow(ReasonLegal)},
		// A plus-tag does not hide a role address.
		{"plus-tagged role address", "info+x@example.com", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// A local part that is all tag has no base: not a role address.
		{"empty base", "+info@example.com", nil, nil, marketing, nil, nil, block(ReasonNoConsent)},
		// Mixed case is the same mailbox.
		{"mixed case", "INFO@Example.COM", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// A Unicode (IDN) domain: the local part decides.
		{"IDN domain", "info@bücher.example", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// The same domain in punycode.
		{"punycode domain", "info@xn--bcher-kva.example", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// An SMTPUTF8 local part naming a person is no role address.
		{"SMTPUTF8 person", "jürgen@example.com", nil, nil, marketing, nil, nil, block(ReasonNoConsent)},
		// Separator variants of the listed noreply.
		{"no-reply", "no-reply@example.com", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		{"no_reply", "no_reply@example.com", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		{"noreply", "noreply@example.com", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		{"no.reply", "No.Reply@example.com", nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// A quoted atom is unquoted by ParseAddress: "info"@ is info@.
		{"quoted info", `"info"@example.com`, nil, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
		// A local part that must stay quoted never matches, though without dots it would read "info".
		{"quoted, stays quoted", `"in..fo"@example.com`, nil, nil, marketing, nil, nil, block(ReasonNoConsent)},
		// Removing info from the list makes info@ a person's address.
		{"configured remove", "info@example.com", nil, []string{"info"}, marketing, nil, nil, block(ReasonNoConsent)},
		// Removing info leaves the rest of the list alone.
		{"configured remove, other entry", "sales@example.com", nil, []string{"info"}, marketing, nil, nil, allow(ReasonRoleAddress)},
		// An added entry is a role address.
		{"configured add", "verkoop-nl@example.com", []string{"verkoop-nl"}, []string{"info"}, marketing, nil, nil, allow(ReasonRoleAddress)},
		// An added entry matches its separator variants and plus-tags.
		{"configured add, variant", "Verkoop_NL+crm@example.com", []string{"verkoop-nl"}, nil, marketing, nil, nil, allow(ReasonRoleAddress)},
	}
	for _, tt := range tests {
		roles, err := NewRoleAddresses(tt.add, tt.remove)
		if err != nil {
			t.Fatalf("%s: NewRoleAddresses: %v", tt.name, err)
		}
		a, err := ParseAddress(tt.addr)
		if err != nil {
			t.Errorf("%s: ParseAddress(%q): %v", tt.name, tt.addr, err)
			continue
		}
		st := Standing{Address: a, Consent: tt.consent, Suppressions: tt.suppressions}
		if got := Decide(tt.purpose, st, roles.Is(a), decisionNow); got != tt.want {
			t.Errorf("%s: %s: got %v, want %v", tt.name, tt.addr, got, tt.want)
		}
	}
}

// TestReasonCodes pins the reason codes: they are stored in events and
// shown to clients, so they must not change.
func TestReasonCodes(t *testing.T) {
	tests := []struct {
		reason Reason
		want   string
	}{
		{ReasonConsent, "consent"},                          // allow
		{ReasonLegitimateInterests, "legitimate_interests"}, // allow
		{ReasonRoleAddress, "role_address"},                 // allow
		{ReasonTransactional, "transactional"},              // allow
		{ReasonLegal, "legal"},                              // allow
		{ReasonNoConsent, "no_consent"},                     // block
		{ReasonWithdrawn, "withdrawn"},                      // block
		{ReasonExpired, "expired"},                          // block
		{ReasonPendingConfirmation, "pending_confirmation"}, // block
		{SuppressedReason(SuppressUnsubscribedAll), "suppressed:unsubscribed_all"},
		{SuppressedReason(SuppressHardBounce), "suppressed:hard_bounce"},
		{SuppressedReason(SuppressComplaint), "suppressed:complaint"},
		{SuppressedReason(SuppressErased), "suppressed:erased"},
		{SuppressedReason(SuppressManual), "suppressed:manual"},
	}
	for _, tt := range tests {
		if string(tt.reason) != tt.want {
			t.Errorf("reason %q, want %q", tt.reason, tt.want)
		}
	}
}

func TestReasonSuppression(t *testing.T) {
	tests := []struct {
		reason Reason
		want   SuppressionReason
		ok     bool
	}{
		// A suppression's reason comes back out.
		{SuppressedReason(SuppressComplaint), SuppressComplaint, true},
		// Other reasons are not suppressions.
		{ReasonWithdrawn, "", false},
		// Allow reasons neither.
		{ReasonTransactional, "", false},
	}
	for _, tt := range tests {
		got, ok := tt.reason.Suppression()
		if got != tt.want || ok != tt.ok {
			t.Errorf("%q.Suppression() = %q, %v; want %q, %v", tt.reason, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		d    Decision
		want string
	}{
		// An allow names its reason.
		{allow(ReasonConsent), "allow consent"},
		// A block by a suppression names it.
		{block(SuppressedReason(SuppressHardBounce)), "block suppressed:hard_bounce"},
		// The zero Decision is a block without a reason.
		{Decision{}, "block"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.d, got, tt.want)
		}
		if got := fmt.Sprint(tt.d); got != tt.want {
			t.Errorf("fmt.Sprint(%#v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
