package redisstore

import (
	"fmt"
	"testing"
	"time"

	"optinproxy/optin"
)

// testKeys is the ledger key of the tests' stores, shared, so that
// several stores on one server agree.
var testKeys = optin.StaticKeys(optin.NewKeyring(time.Now()))

var testPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * 24 * time.Hour, Unsubscribe: true},
	"orders":     {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional},
}

// ledger builds changes for s; its clock is the real one.
func ledger(t testing.TB, s optin.Store) *optin.Ledger {
	t.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: testPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func addr(t testing.TB, format string, args ...any) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(fmt.Sprintf(format, args...))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// grant builds a newsletter grant for a, at a time that grows with i.
func grant(t testing.TB, l *optin.Ledger, a optin.Address, i int) optin.Change {
	t.Helper()
	ch, err := l.GrantChange(a, "newsletter", optin.ConsentChange{
		Source: optin.SourceForm, At: time.Now().Add(-time.Hour).Add(time.Duration(i) * time.Microsecond),
		Evidence: optin.Evidence{IP: "192.0.2.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// receipt is a message receipt, as the relay writes one.
func receipt(a optin.Address) optin.Change {
	return optin.Receipt{Subject: a, Purpose: "newsletter", Actor: "smtp:test", Time: time.Now(), Relayed: true,
		Decision: optin.Decision{Allow: true, Reason: optin.ReasonConsent}, Details: optin.ReceiptDetails{MessageID: "<r@test>"}}.Change()
}

func suppress(a optin.Address, r optin.SuppressionReason) optin.Change {
	return optin.Change{Subject: a, AddSuppression: r, Event: optin.Event{Type: optin.EventSuppressionAdded, Subject: a, Actor: "test"}}
}

func unsuppress(a optin.Address, r optin.SuppressionReason) optin.Change {
	return optin.Change{Subject: a, RemoveSuppression: r, Event: optin.Event{Type: optin.EventSuppressionRemoved, Subject: a, Actor: "test"}}
}
