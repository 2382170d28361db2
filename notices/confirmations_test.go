package notices

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/unsubscribe"
	"optinproxy/webhooks"
)

var doiPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true,
		DoubleOptIn: true, Description: "Onze maandelijkse nieuwsbrief"},
	"offers": {Name: "offers", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true, DoubleOptIn: true},
}

const expiry = 7 * 24 * time.Hour

var stores = []struct {
	name string
	open func(t *testing.T) optin.Store
}{
	{"file", func(t *testing.T) optin.Store { return teststore.File(t, filepath.Join(t.TempDir(), "optin.db")) }},
	{"redis", func(t *testing.T) optin.Store { return teststore.Redis(t, redistest.Start(t)) }},
}

// rig is the target on a real store, mailing through the relay's SMTP
// upstream into a sink, run by real Dispatchers.
type rig struct {
	t      *testing.T
	st     optin.Store
	ledger *optin.Ledger
	sink   *sink
	tokens *unsubscribe.Tokens
	now    func() time.Time
}

func newRig(t *testing.T, st optin.Store) *rig {
	t.Helper()
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: st, Purposes: doiPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := unsubscribe.NewTokens([]byte("a test secret of more than sixteen bytes"))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, st: st, ledger: ledger, sink: startSink(t), tokens: tokens, now: time.Now}
}

// target is a Confirmations as cmd builds it, links and all.
func (r *rig) target() *Confirmations {
	r.t.Helper()
	c, err := NewConfirmations(ConfirmationsOptions{
		Mailer:   newMailer(r.t, r.sink.upstream(r.t), "nl"),
		Store:    r.st,
		Purposes: doiPurposes,
		Link: func(a optin.Address, purpose string, pending time.Time) string {
			return "https://optin.example/confirm/" + r.tokens.IssueKind(unsubscribe.KindConfirm, unsubscribe.Claim{Subject: a, Purpose: purpose, Issued: pending})
		},
		Expiry: expiry,
		Now:    r.now,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// run starts a Dispatcher with the target on st until stop or the end
// of the test, and waits until it holds the outbox: what is recorded
// from then on reaches it.
func (r *rig) run(st optin.Store) (stop func()) {
	r.t.Helper()
	d, err := webhooks.NewDispatcher(webhooks.DispatcherOptions{
		Store: st, Targets: []webhooks.Target{r.target()},
		Poll: 10 * time.Millisecond, LeaseTTL: 300 * time.Millisecond, Reload: 50 * time.Millisecond,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond },
	})
	if err != nil {
		r.t.Fatal(err)
	}
	go d.Run(context.Background())
	r.t.Cleanup(func() { d.Close() })
	waitFor(r.t, "the target's cursor", func() bool {
		_, err := st.OutboxCursor(context.Background(), TargetName)
		if err != nil && !errors.Is(err, optin.ErrNotFound) {
			r.t.Fatal(err)
		}
		return err == nil
	})
	return func() { d.Close() }
}

// grant records a grant through the ledger: pending for these purposes
// unless the source is the confirmation.
func (r *rig) grant(addr, purpose string, cc optin.ConsentChange) optin.Event {
	r.t.Helper()
	res, err := r.ledger.Grant(context.Background(), mustAddress(r.t, addr), purpose, cc)
	if err != nil || !res.Applied {
		r.t.Fatalf("grant %s %s: %v (applied %v)", addr, purpose, err, res.Applied)
	}
	return res.Event
}

func (r *rig) records(status optin.DeliveryStatus) []optin.OutboxDelivery {
	r.t.Helper()
	page, err := r.st.Deliveries(context.Background(), optin.DeliveryQuery{Target: TargetName, Status: status, Limit: optin.MaxPageSize})
	if err != nil {
		r.t.Fatal(err)
	}
	return page.Deliveries
}

// waitFor polls cond, bounded.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// byRecipient indexes the sink's messages by their one recipient.
func byRecipient(t *testing.T, got []received) map[string]parsed {
	t.Helper()
	out := map[string]parsed{}
	for _, m := range got {
		if len(m.to) != 1 {
			t.Fatalf("a message to %q", m.to)
		}
		if _, dup := out[m.to[0]]; dup {
			t.Errorf("%s got two confirmations", m.to[0])
		}
		out[m.to[0]] = parse(t, m.data)
	}
	return out
}

// TestConfirmationsMailWhatIsStillPending: the pending records made
// while no instance ran the target are taken when one starts again.
// Each that is still pending gets one mail with a working link; those
// confirmed, withdrawn, made pending again, imported or suppressed by
// then get none, and their deliveries are retired all the same.
func TestConfirmationsMailWhatIsStillPending(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind.name, func(t *testing.T) {
			r := newRig(t, kind.open(t))
			r.run(r.st)() // the target's place in the outbox, then stopped
			ctx := context.Background()
			form := optin.ConsentChange{Source: optin.SourceForm, Actor: "crm"}

			ann := r.grant("ann@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceForm,
				Evidence: optin.Evidence{IP: "192.0.2.1", Extra: map[string]string{"lang": "en"}}})
			if ann.Type != optin.EventConsentPending {
				t.Fatalf("a form's sign-up recorded %s, want consent.pending", ann.Type)
			}
			r.grant("bob@example.com", "newsletter", form)
			if _, err := r.ledger.Withdraw(ctx, mustAddress(t, "bob@example.com"), "newsletter", form); err != nil {
				t.Fatal(err)
			}
			r.grant("cor@example.com", "newsletter", form)
			cor := r.grant("cor@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceForm, At: time.Now().Add(time.Second)})
			r.grant("dan@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceImport, Status: optin.StatusPending,
				At: time.Now().Add(-time.Hour), Import: &optin.ImportSource{File: "list.csv", Line: 2, At: time.Now()}})
			r.grant("eve@example.com", "newsletter", form)
			r.grant("eve@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceDoubleOptIn, At: time.Now().Add(time.Second)})
			if _, err := r.ledger.Suppress(ctx, mustAddress(t, "fay@example.com"), optin.SuppressHardBounce, "test"); err != nil {
				t.Fatal(err)
			}
			r.grant("fay@example.com", "newsletter", form)
			gus := r.grant("gus@example.com", "offers", form)
			const pendingEvents = 8

			r.run(r.st)
			waitFor(t, "every pending event done", func() bool { return len(r.records(optin.DeliveryRetired)) == pendingEvents })
			if n := len(r.records(optin.DeliveryPending)) + len(r.records(optin.DeliveryDead)); n != 0 {
				t.Errorf("%d deliveries pending or dead", n)
			}
			mails := byRecipient(t, r.sink.messages())
			if got := slices.Sorted(maps.Keys(mails)); fmt.Sprint(got) != "[ann@example.com cor@example.com gus@example.com]" {
				t.Fatalf("mailed %v, want ann, cor (once, for the later request) and gus", got)
			}
			if s := mails["ann@example.com"].subject(); s != "Please confirm your subscription: Onze maandelijkse nieuwsbrief" {
				t.Errorf("ann's subject %q: the sign-up asked for English", s)
			}
			if s := mails["gus@example.com"].subject(); s != "Bevestig uw aanmelding: offers" {
				t.Errorf("gus's subject %q: a purpose without a description is named", s)
			}
			for addr, ev := range map[string]optin.Event{"ann@example.com": ann, "cor@example.com": cor, "gus@example.com": gus} {
				link := linkIn(t, mails[addr].parts["text/plain"], "https://")
				token := strings.TrimPrefix(link, "https://optin.example/confirm/")
				c, err := r.tokens.ParseKind(unsubscribe.KindConfirm, token)
				if err != nil {
					t.Fatalf("%s's link %q: %v", addr, link, err)
				}
				if c.Subject.String() != addr || c.Purpose != ev.Purpose || !c.Issued.Equal(ev.Time.Truncate(time.Second)) {
					t.Errorf("%s's link claims %+v, want the subject, %s and %v", addr, c, ev.Purpose, ev.Time)
				}
				if _, err := r.tokens.Parse(token); err == nil {
					t.Errorf("%s's confirmation link opens as an unsubscribe link", addr)
				}
			}
			// The target records nothing of its own in the ledger.
			for _, addr := range []string{"ann@example.com", "cor@example.com"} {
				v, err := r.st.Subject(ctx, mustAddress(t, addr), 100)
				if err != nil {
					t.Fatal(err)
				}
				if last := v.Events[len(v.Events)-1]; last.Type != optin.EventConsentPending {
					t.Errorf("%s's last event is %s", addr, last.Type)
				}
			}
		})
	}
}

// An upstream that defers is tried again until it takes the mail; one
// that refuses for good leaves the delivery dead, for an operator to
// replay, with the reply's codes and no address.
func TestConfirmationsRetryAndRefusal(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind.name, func(t *testing.T) {
			r := newRig(t, kind.open(t))
			r.run(r.st)
			r.sink.setRefuse(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "busy"})
			r.grant("ann@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceForm})
			waitFor(t, "a deferred attempt", func() bool {
				p := r.records(optin.DeliveryPending)
				return len(p) == 1 && p[0].Attempts >= 2 && p[0].LastError == "notices: upstream failed, try again later: 451 4.3.0"
			})
			r.sink.setRefuse(nil)
			waitFor(t, "the mail after the upstream is back", func() bool { return len(r.sink.messages()) == 1 })
			waitFor(t, "the delivery retired", func() bool { return len(r.records(optin.DeliveryRetired)) == 1 })

			r.sink.setRefuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<bob@example.com> unknown"})
			tries := r.sink.rcpts()
			r.grant("bob@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceForm})
			waitFor(t, "a dead delivery", func() bool { return len(r.records(optin.DeliveryDead)) == 1 })
			dead := r.records(optin.DeliveryDead)[0]
			if dead.Attempts != 1 || dead.LastError != "notices: refused by the upstream: 550 5.1.1" {
				t.Errorf("dead delivery %+v", dead)
			}
			if n := r.sink.rcpts() - tries; n != 1 {
				t.Errorf("a refused confirmation was tried %d times", n)
			}
			if len(r.sink.messages()) != 1 {
				t.Errorf("%d messages", len(r.sink.messages()))
			}
		})
	}
}

// A pending event whose link would have expired by its turn (the target
// was down for longer than pending_expiry) gets no mail.
func TestConfirmationsSkipExpired(t *testing.T) {
	r := newRig(t, stores[0].open(t))
	r.now = func() time.Time { return time.Now().Add(expiry) }
	r.run(r.st)
	r.grant("ann@example.com", "newsletter", optin.ConsentChange{Source: optin.SourceForm})
	waitFor(t, "the delivery retired", func() bool { return len(r.records(optin.DeliveryRetired)) == 1 })
	if n := len(r.sink.messages()); n != 0 {
		t.Errorf("%d mails for an expired request", n)
	}
}

// TestConfirmationsOnceAcrossInstances: two proxies on one Redis run the
// target; each pending event is mailed once, also when the instance that
// held the target stops and the other takes over.
func TestConfirmationsOnceAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	st1, st2 := teststore.Redis(t, srv), teststore.Redis(t, srv)
	r := newRig(t, st1)
	stop1 := r.run(st1)
	r.run(st2)
	const n = 10
	for i := range n {
		r.grant(fmt.Sprintf("u%d@example.com", i), "newsletter", optin.ConsentChange{Source: optin.SourceForm})
		if i == n/2 {
			stop1()
		}
	}
	waitFor(t, "every mail", func() bool { return len(r.sink.messages()) >= n })
	waitFor(t, "every delivery retired", func() bool { return len(r.records(optin.DeliveryRetired)) == n })
	mails := byRecipient(t, r.sink.messages())
	if len(mails) != n || len(r.sink.messages()) != n {
		t.Errorf("%d mails to %d addresses, want %d once each", len(r.sink.messages()), len(mails), n)
	}
}

func TestNewConfirmationsValidates(t *testing.T) {
	r := newRig(t, stores[0].open(t))
	good := ConfirmationsOptions{Mailer: newMailer(t, r.sink.upstream(t), "nl"), Store: r.st, Purposes: doiPurposes,
		Link: func(optin.Address, string, time.Time) string { return "x" }, Expiry: time.Hour}
	for name, broken := range map[string]func(o *ConfirmationsOptions){
		"no mailer": func(o *ConfirmationsOptions) { o.Mailer = nil },
		"no store":  func(o *ConfirmationsOptions) { o.Store = nil },
		"no link":   func(o *ConfirmationsOptions) { o.Link = nil },
		"no expiry": func(o *ConfirmationsOptions) { o.Expiry = 0 },
	} {
		o := good
		broken(&o)
		if _, err := NewConfirmations(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	c, err := NewConfirmations(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "confirmations" || !c.Wants(optin.Event{Type: optin.EventConsentPending}) || c.Wants(optin.Event{Type: optin.EventConsentGranted}) {
		t.Errorf("name %q or the events it wants", c.Name())
	}
}
