package optin_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

var movePurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * 24 * time.Hour, Unsubscribe: true},
	"offers":     {Name: "offers", Basis: optin.BasisLegitimateInterests, Category: optin.CategoryMarketing, Unsubscribe: true},
	"orders":     {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional},
}

func moveLedger(t *testing.T) *optin.Ledger {
	t.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: teststore.File(t, filepath.Join(t.TempDir(), "ledger.db")),
		Purposes: movePurposes, PolicyVersion: "v3"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func addr(t *testing.T, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// eventsOf returns every event of a's main chain, oldest first.
func eventsOf(t *testing.T, s optin.Store, a optin.Address) []optin.Event {
	t.Helper()
	page, err := s.Events(context.Background(), optin.EventQuery{Subject: a, Limit: optin.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

func consentOf(t *testing.T, v *optin.SubjectView, purpose string) *optin.Consent {
	t.Helper()
	for i := range v.Consents {
		if v.Consents[i].Purpose == purpose {
			return &v.Consents[i]
		}
	}
	return nil
}

func TestMove(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	from, to := addr(t, "Old@Example.com"), addr(t, "new@example.org")

	tests := []struct {
		name string
		// setup records what the two addresses hold before the move.
		setup func(t *testing.T, l *optin.Ledger)
		want  optin.MoveResult
		// check looks at both subjects after the move.
		check func(t *testing.T, old, neu *optin.SubjectView)
	}{
		{
			// Consents and suppressions go over; the old address keeps
			// nothing it could be mailed by.
			name: "consents and suppressions",
			setup: func(t *testing.T, l *optin.Ledger) {
				mustGrant(t, l, from, "newsletter", optin.ConsentChange{At: t0, Source: "form",
					Evidence: optin.Evidence{IP: "192.0.2.1", Extra: map[string]string{"form": "footer"}}})
				mustGrant(t, l, from, "orders", optin.ConsentChange{At: t0})
				if _, err := l.Withdraw(ctx, from, "offers", optin.ConsentChange{At: t0}); err != nil {
					t.Fatal(err)
				}
				for _, r := range []optin.SuppressionReason{optin.SuppressComplaint, optin.SuppressHardBounce} {
					if _, err := l.Suppress(ctx, from, r, "test"); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: optin.MoveResult{Moved: true, Consents: 3, Suppressions: 1, Withdrawn: 2},
			check: func(t *testing.T, old, neu *optin.SubjectView) {
				c := consentOf(t, neu, "newsletter")
				if c == nil || c.Status != optin.StatusGranted || c.Source != "form" || !c.GrantedAt.Equal(t0) ||
					!c.ExpiresAt.Equal(t0.Add(730*24*time.Hour)) || c.Basis != optin.BasisConsent {
					t.Errorf("newsletter on the new address = %+v", c)
				}
				orig := consentOf(t, old, "newsletter")
				if c != nil && (c.Evidence == nil || c.Evidence.IP != "192.0.2.1" || c.Evidence.Extra["form"] != "footer" ||
					c.Evidence.Extra["moved_from"] == "" || c.Evidence.PolicyVersion != "v3") {
					t.Errorf("evidence on the new address = %+v", c.Evidence)
				}
				if c := consentOf(t, neu, "offers"); c == nil || c.Status != optin.StatusWithdrawn {
					t.Errorf("offers on the new address = %+v, want the withdrawal", c)
				}
				if orig == nil || orig.Status != optin.StatusWithdrawn || orig.Source != optin.SourceMoved {
					t.Errorf("newsletter on the old address = %+v, want withdrawn by the move", orig)
				}
				if o := consentOf(t, old, "orders"); o == nil || o.Status != optin.StatusWithdrawn {
					t.Errorf("orders on the old address = %+v", o)
				}
				if len(neu.Suppressions) != 1 || neu.Suppressions[0].Reason != optin.SuppressComplaint {
					t.Errorf("suppressions on the new address = %+v, want complaint only (a bounce is the old mailbox's)", neu.Suppressions)
				}
				if len(old.Suppressions) != 2 {
					t.Errorf("suppressions on the old address = %+v, want both kept", old.Suppressions)
				}
			},
		},
		{
			// The new address's own, newer record stands.
			name: "newer record on the new address",
			setup: func(t *testing.T, l *optin.Ledger) {
				mustGrant(t, l, from, "newsletter", optin.ConsentChange{At: t0})
				if _, err := l.Withdraw(ctx, to, "newsletter", optin.ConsentChange{At: t0.Add(time.Minute)}); err != nil {
					t.Fatal(err)
				}
			},
			want: optin.MoveResult{Moved: true, Withdrawn: 1},
			check: func(t *testing.T, old, neu *optin.SubjectView) {
				if c := consentOf(t, neu, "newsletter"); c == nil || c.Status != optin.StatusWithdrawn {
					t.Errorf("newsletter on the new address = %+v, want its own withdrawal", c)
				}
			},
		},
		{
			// Nothing stored about the old address: nothing to move.
			name:  "unknown old address",
			setup: func(t *testing.T, l *optin.Ledger) {},
			want:  optin.MoveResult{},
			check: func(t *testing.T, old, neu *optin.SubjectView) {
				if old != nil || neu != nil {
					t.Errorf("something was recorded: %+v %+v", old, neu)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := moveLedger(t)
			tt.setup(t, l)
			got, err := l.Move(ctx, from, to, "webhook:test", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Move = %+v, want %+v", got, tt.want)
			}
			tt.check(t, view(t, l.Store(), from), view(t, l.Store(), to))
			if !tt.want.Moved {
				return
			}
			checkMoveEvents(t, l.Store(), from, to)

			// A repeat finds the move done and records nothing.
			before := len(eventsOf(t, l.Store(), from)) + len(eventsOf(t, l.Store(), to))
			again, err := l.Move(ctx, from, to, "webhook:test", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			after := len(eventsOf(t, l.Store(), from)) + len(eventsOf(t, l.Store(), to))
			if again.Moved || after != before {
				t.Errorf("second Move = %+v with %d new events, want nothing", again, after-before)
			}
		})
	}
}

// checkMoveEvents checks the subject.updated event on each side.
func checkMoveEvents(t *testing.T, s optin.Store, from, to optin.Address) {
	t.Helper()
	for _, side := range []struct {
		a          optin.Address
		key, value string
	}{{from, "new_email", to.String()}, {to, "old_email", from.String()}} {
		n := 0
		for _, e := range eventsOf(t, s, side.a) {
			if e.Type != optin.EventSubjectUpdated {
				continue
			}
			n++
			var d map[string]string
			if err := json.Unmarshal(e.Details, &d); err != nil || d[side.key] != side.value || e.Actor != "webhook:test" {
				t.Errorf("subject.updated on %s: details %s, actor %q", side.a.Hash(), e.Details, e.Actor)
			}
		}
		if n != 1 {
			t.Errorf("%d subject.updated events on %s, want 1", n, side.a.Hash())
		}
	}
}

func TestMoveRefuses(t *testing.T) {
	l := moveLedger(t)
	a := addr(t, "a@example.com")
	for _, tt := range []struct{ from, to optin.Address }{{a, a}, {optin.Address{}, a}, {a, optin.Address{}}} {
		if _, err := l.Move(context.Background(), tt.from, tt.to, "test", time.Time{}); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("Move(%q, %q) = %v, want ErrBadInput", tt.from, tt.to, err)
		}
	}
}

func mustGrant(t *testing.T, l *optin.Ledger, a optin.Address, purpose string, cc optin.ConsentChange) {
	t.Helper()
	if _, err := l.Grant(context.Background(), a, purpose, cc); err != nil {
		t.Fatal(err)
	}
}

// view is the subject's current state, nil when nothing is stored.
func view(t *testing.T, s optin.Store, a optin.Address) *optin.SubjectView {
	t.Helper()
	v, err := s.Subject(context.Background(), a, 0)
	if errors.Is(err, optin.ErrNotFound) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return v
}
