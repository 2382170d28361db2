package webhooks

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"optinproxy/optin"
)

// errNoAddress marks a contact without an email address (an SMS-only
// contact): nothing to record, and not a fault.
var errNoAddress = errors.New("webhooks: member without an email address")

// change maps one member to its ledger change; ok is false for a status
// that records nothing. Errors say what is wrong without the address.
func (s *syncer) change(m AudienceMember) (ch optin.Change, kind int, ok bool, err error) {
	if strings.TrimSpace(m.EmailAddress) == "" {
		return ch, 0, false, errNoAddress
	}
	a, err := optin.ParseAddress(m.EmailAddress)
	if err != nil {
		return ch, 0, false, err // its text never repeats the address
	}
	l := s.opts.Ledger
	switch m.Status {
	case MemberSubscribed:
		ev, at, err := grantEvidence(m)
		if err != nil {
			return ch, 0, false, err
		}
		ch, err = l.GrantChange(a, s.opts.Purpose, s.consentChange(at, ev))
		return ch, kindGrant, err == nil, err
	case MemberUnsubscribed:
		at, err := memberTime("last_changed", m.LastChanged)
		if err != nil {
			return ch, 0, false, err
		}
		ch, err = l.WithdrawChange(a, s.opts.Purpose, s.consentChange(at, memberEvidence(m)))
		return ch, kindWithdraw, err == nil, err
	case MemberCleaned:
		ch, err := l.SuppressChange(a, optin.SuppressHardBounce, ActorMailchimpSync)
		return ch, kindSuppress, err == nil, err
	case MemberPending, MemberTransactional, MemberArchived:
		// Pending has not confirmed; the others never subscribed or were
		// put aside: none of them says anything about consent.
		return ch, 0, false, nil
	}
	return ch, 0, false, fmt.Errorf("unknown member status %q", apiClip(m.Status, 40))
}

// consentChange is a change as imported: the ledger then adds no time and
// no policy version that Mailchimp did not give.
func (s *syncer) consentChange(at time.Time, ev optin.Evidence) optin.ConsentChange {
	return optin.ConsentChange{Source: optin.SourceMailchimp, Actor: ActorMailchimpSync, At: at, Evidence: ev, Import: s.source}
}

// grantEvidence is Mailchimp's proof of the opt-in: when and from where
// it was confirmed (also the grant time), when and from where the member
// signed up, and its answers to the marketing permissions.
func grantEvidence(m AudienceMember) (optin.Evidence, time.Time, error) {
	at, err := memberTime("timestamp_opt", m.TimestampOpt)
	if err != nil {
		return optin.Evidence{}, time.Time{}, err
	}
	ev := memberEvidence(m)
	ev.Time = at
	ev.IP = m.IPOpt
	if m.TimestampSignup != "" {
		ev.Extra["timestamp_signup"] = m.TimestampSignup
	}
	if m.IPSignup != "" {
		ev.Extra["ip_signup"] = m.IPSignup
	}
	for _, p := range m.MarketingPermissions {
		if p.ID == "" {
			continue
		}
		state := "disabled"
		if p.Enabled {
			state = "enabled"
		}
		ev.Extra["permission:"+p.ID] = state
		if p.Text != "" {
			ev.Extra["permission:"+p.ID+":text"] = p.Text
		}
	}
	return ev, at, nil
}

// memberEvidence names the member the change came from.
func memberEvidence(m AudienceMember) optin.Evidence {
	ev := optin.Evidence{Extra: map[string]string{}}
	if m.ID != "" {
		ev.Extra["mailchimp_id"] = m.ID
	}
	return ev
}

// memberTime reads one of Mailchimp's ISO 8601 times; "" is unknown (the
// zero time).
func memberTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an ISO 8601 time", field, apiClip(v, 40))
	}
	return t, nil
}
