package optin

import (
	"slices"
	"strings"
	"time"
)

// Reason is the code that comes with a Decision. It is stored in
// message.relayed and message.blocked events, shown in SMTP replies and
// counted in metrics, so the values are part of the product contract.
type Reason string

// Allow reasons.
const (
	ReasonConsent             Reason = "consent"              // a granted, unexpired record
	ReasonLegitimateInterests Reason = "legitimate_interests" // the purpose's basis, no objection recorded
	ReasonRoleAddress         Reason = "role_address"         // a role address, and the purpose allows them
	ReasonTransactional       Reason = "transactional"        // transactional mail, not suppressed
	ReasonLegal               Reason = "legal"                // mail the law requires, not bounced
)

// Block reasons; see also SuppressedReason.
const (
	ReasonNoConsent           Reason = "no_consent"           // no record, and nothing else allows it
	ReasonWithdrawn           Reason = "withdrawn"            // the subject withdrew or objected
	ReasonExpired             Reason = "expired"              // the consent ran past its retention
	ReasonPendingConfirmation Reason = "pending_confirmation" // double opt-in not yet confirmed
)

// suppressedPrefix starts the reason of a block by a suppression.
const suppressedPrefix = "suppressed:"

// SuppressedReason is the block reason for a suppression:
// "suppressed:" followed by the suppression's reason, e.g.
// "suppressed:hard_bounce".
func SuppressedReason(r SuppressionReason) Reason {
	return Reason(suppressedPrefix + string(r))
}

// Suppression returns the suppression reason of a SuppressedReason and
// true, or "" and false for every other reason.
func (r Reason) Suppression() (SuppressionReason, bool) {
	s, ok := strings.CutPrefix(string(r), suppressedPrefix)
	if !ok {
		return "", false
	}
	return SuppressionReason(s), true
}

// Decision is the fate of one recipient of one message: relay it (Allow)
// or not, and why.
type Decision struct {
	Allow  bool
	Reason Reason
}

// String returns "allow <reason>" or "block <reason>", e.g.
// "block suppressed:complaint".
func (d Decision) String() string {
	if d.Reason == "" {
		return d.Verb()
	}
	return d.Verb() + " " + string(d.Reason)
}

// Verb is "allow" or "block", as receipts and metrics name decisions.
func (d Decision) Verb() string {
	if d.Allow {
		return "allow"
	}
	return "block"
}

// suppressionPrecedence orders the suppression reasons for naming one when
// an address has several: the most final first. Erasure and a complaint
// say most about the person's wishes; a hard bounce about the mailbox;
// unsubscribed_all and manual are the least specific.
var suppressionPrecedence = []SuppressionReason{
	SuppressErased,
	SuppressComplaint,
	SuppressHardBounce,
	SuppressUnsubscribedAll,
	SuppressManual,
}

// Which suppressions block the categories other than marketing.
var (
	blocksTransactional = []SuppressionReason{SuppressErased, SuppressComplaint, SuppressHardBounce}
	blocksLegal         = []SuppressionReason{SuppressHardBounce}
)

// Decide decides whether one recipient may get one message of purpose p
// by the rules below. st is the recipient's standing for p (its consent record, nil
// when there is none, and its suppressions); isRole says whether its
// address is a role address (RoleAddresses.Is); now is the time of the
// decision, against which expiry is judged. Decide is a pure function: it
// does no I/O, keeps no state and changes none of its arguments. It knows
// nothing of policy.mode: in monitor mode the caller records the decision
// and relays anyway.
//
// Marketing (and, failing closed, a category Decide does not know), in
// this order; the first step that applies decides:
//
//  1. Any suppression blocks, whatever the record says: suppressed:<reason>,
//     naming the first the address has in the order erased, complaint,
//     hard_bounce, unsubscribed_all, manual (a reason this version does not
//     know still blocks, and is named when no known one is present).
//  2. A withdrawn record blocks: withdrawn. It beats a role address and a
//     basis of legitimate interests, for a withdrawal under that basis is
//     an objection (GDPR Art. 21(2)–(3)).
//  3. A granted record that has not expired (Consent.Active: ExpiresAt zero
//     or after now) allows: consent.
//  4. Every other record, or none, leaves two allowances, tried in order:
//     a purpose basis of legitimate_interests allows (legitimate_interests),
//     since no objection is recorded; else a role address allows
//     (role_address) when the purpose's role_addresses rule is allow or
//     unset. Failing both, the block reason names what the record lacks:
//     expired for a granted record past ExpiresAt or one with status
//     expired; pending_confirmation for a pending one; no_consent when
//     there is no record. A record with a status Decide does not know
//     allows nothing (not even step 4's allowances) and blocks as
//     no_consent: fail closed.
//
// The purpose's basis is what counts, not the basis stored in the record.
// A role_addresses rule other than allow and "" counts as require_consent.
//
// Transactional: allowed (transactional) whatever the record says, unless
// the address is suppressed for erased, complaint or hard_bounce (blocked
// as suppressed:<reason>, in that order); unsubscribed_all and manual do
// not block it.
//
// Legal: allowed (legal) unless suppressed for hard_bounce (blocked as
// suppressed:hard_bounce). No other suppression blocks it,
// not even erased: a legal obligation (such as a breach notice, GDPR
// Art. 34) may still require the mail, and only an undeliverable mailbox
// stops it.
func Decide(p Purpose, st Standing, isRole bool, now time.Time) Decision {
	switch p.Category {
	case CategoryTransactional:
		if r, ok := firstSuppression(st.Suppressions, blocksTransactional); ok {
			return block(SuppressedReason(r))
		}
		return allow(ReasonTransactional)
	case CategoryLegal:
		if r, ok := firstSuppression(st.Suppressions, blocksLegal); ok {
			return block(SuppressedReason(r))
		}
		return allow(ReasonLegal)
	}
	return decideMarketing(p, st, isRole, now)
}

// decideMarketing is Decide's marketing branch, steps 1 to 4.
func decideMarketing(p Purpose, st Standing, isRole bool, now time.Time) Decision {
	// Step 1.
	if len(st.Suppressions) > 0 {
		r, ok := firstSuppression(st.Suppressions, suppressionPrecedence)
		if !ok {
			r = st.Suppressions[0]
		}
		return block(SuppressedReason(r))
	}

	// Steps 2 and 3, and the block reason should step 4 allow nothing.
	var otherwise Reason
	switch c := st.Consent; {
	case c == nil:
		otherwise = ReasonNoConsent
	case c.Status == StatusWithdrawn:
		return block(ReasonWithdrawn)
	case c.Active(now):
		return allow(ReasonConsent)
	case c.Status == StatusGranted, c.Status == StatusExpired:
		otherwise = ReasonExpired
	case c.Status == StatusPending:
		otherwise = ReasonPendingConfirmation
	default:
		return block(ReasonNoConsent)
	}

	// Step 4.
	switch {
	case p.Basis == BasisLegitimateInterests:
		return allow(ReasonLegitimateInterests)
	case isRole && (p.RoleAddresses == RoleAllow || p.RoleAddresses == ""):
		return allow(ReasonRoleAddress)
	}
	return block(otherwise)
}

// firstSuppression returns the first reason of order that have contains.
func firstSuppression(have, order []SuppressionReason) (SuppressionReason, bool) {
	for _, r := range order {
		if slices.Contains(have, r) {
			return r, true
		}
	}
	return "", false
}

func allow(r Reason) Decision { return Decision{Allow: true, Reason: r} }
func block(r Reason) Decision { return Decision{Allow: false, Reason: r} }
