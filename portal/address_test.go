package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// move posts the address form of link.
func (e *env) move(link, to, again string) (*http.Response, string) {
	e.t.Helper()
	return e.post(link+"/address", url.Values{"csrf": {e.csrf(link)}, "email": {to}, "email_again": {again}})
}

// Correcting the address: typed twice, not to an erased address, moved
// by the ledger with its history, subject.updated on both addresses; the answer is the new
// address's portal under a new link, and the old link stops working.
func TestCorrectAddress(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		link := e.link(e.jan)
		gone := address(t, "gone@example.com")
		if _, err := e.ledger.Erase(context.Background(), gone, optin.ErasureRequest{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		before := len(e.view(e.jan).Events)
		for _, tc := range []struct{ to, again, notice string }{
			{"jan@new.example", "jan@other.example", "De twee adressen zijn niet gelijk"},
			{"jan@new.example", "", "De twee adressen zijn niet gelijk"},
			{"not an address", "not an address", "geen geldig e-mailadres"},
			{"JAN@example.com", "jan@EXAMPLE.com", "Dit is al uw e-mailadres"},
			// An erased address would take nothing of it.
			{"Gone@Example.com", "gone@example.com", "de gegevens van dit adres zijn gewist en het blijft geblokkeerd"},
		} {
			resp, body := e.follow(e.move(link, tc.to, tc.again))
			wantStatus(t, tc.to+"/"+tc.again, resp, body, 200, tc.notice)
		}
		if after := len(e.view(e.jan).Events); after != before {
			t.Fatalf("refused corrections recorded %d events", after-before)
		}
		if v := e.view(gone); len(v.Events) != 1 || len(v.Consents) != 0 {
			t.Errorf("the erased address after the refused move: %d events, %+v", len(v.Events), v.Consents)
		}

		resp, body := e.move(link, "Jan@New.Example", "jan@new.example")
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/p/") || !strings.HasSuffix(loc, "?notice=moved") ||
			strings.HasPrefix(e.url+loc, link) {
			t.Fatalf("move: %d to %q\n%s", resp.StatusCode, loc, body)
		}
		resp, body = e.follow(resp, body)
		wantStatus(t, "the new portal", resp, body, 200, "Dit bewaren wij over jan@new.example", "Uw e-mailadres is gewijzigd",
			`<dd class="state-granted">`, "Adres gewijzigd van jan@example.com")
		if n := e.counted("move"); n != 1 {
			t.Errorf("moves counted: %v", n)
		}

		// The ledger moved the record and kept the history.
		newAddr := address(t, "jan@new.example")
		if c := e.consent(newAddr, "newsletter"); c == nil || c.Status != optin.StatusGranted {
			t.Errorf("new address's record %+v", c)
		}
		if c := e.consent(e.jan, "newsletter"); c == nil || c.Status != optin.StatusWithdrawn || c.Source != optin.SourceMoved {
			t.Errorf("old address's record %+v", c)
		}
		for a, key := range map[optin.Address]string{e.jan: "new_email", newAddr: "old_email"} {
			if !updated(t, e, a, key, "subject") {
				t.Errorf("%s has no subject.updated with %s by the subject", a, key)
			}
		}
		old := e.view(e.jan)
		if len(old.Events) <= before {
			t.Errorf("the old address's history is gone")
		}

		// The old link no longer opens, nor takes a form.
		resp, body = e.get(link)
		wantStatus(t, "old link", resp, body, http.StatusGone, "Deze link werkt niet meer", `href="/p"`)
		resp, body = e.post(link+"/consent", url.Values{"purpose": {"newsletter"}, "action": {"grant"}})
		wantStatus(t, "old link POST", resp, body, http.StatusGone)
		// A link made for the old address after the move (a second
		// later: links keep their time to the second) works: it shows
		// what is left there.
		e.clock.Advance(time.Since(e.clock.Now()) + time.Second)
		resp, body = e.get(e.link(e.jan))
		wantStatus(t, "a new link of the old address", resp, body, 200, "Adres gewijzigd naar jan@new.example")
	})
}

// updated reports whether a's log has a subject.updated event by actor
// whose details have key.
func updated(t *testing.T, e *env, a optin.Address, key, actor string) bool {
	t.Helper()
	page, err := e.ledger.Store().Events(context.Background(), optin.EventQuery{Subject: a, Type: optin.EventSubjectUpdated})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		var d map[string]string
		if json.Unmarshal(ev.Details, &d) == nil && d[key] != "" && ev.Actor == actor {
			return true
		}
	}
	return false
}
