package smtpproxy_test

import (
	"slices"
	"testing"

	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// TestRelayedAddressIsDecided: what goes upstream is the mailbox that was
// decided. A look-alike of a role address whose Unicode lowercase is the
// role address (İnfo@, with U+0130) is decided as itself, not let through
// as info@; a local part with a character that normalization would turn
// into ASCII (the Kelvin sign, K) is refused at RCPT; and each relayed
// address parses to the subject whose receipt allowed it.
func TestRelayedAddressIsDecided(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		p := enforcing(t, nil, ls.store, nil)
		c := p.dial(t)
		if err := c.Mail("crm@shop.example", &smtp.MailOptions{UTF8: true}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, c.Rcpt("\u212Aantoor@example.com", nil), 501)
		for _, rcpt := range []string{"\u0130nfo@example.com", "info@example.com"} {
			if err := c.Rcpt(rcpt, nil); err != nil {
				t.Fatalf("RCPT %s: %v", rcpt, err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(msgWith("lookalike", "newsletter")))
		resp, err := w.CloseWithResponse()
		if err != nil || !contains(resp.StatusText, "relayed 1, blocked 1") {
			t.Fatalf("DATA: %v %v, want relayed 1, blocked 1", resp, err)
		}
		got := p.up.deliveries()
		if len(got) != 1 || !slices.Equal(got[0].to, []string{"info@example.com"}) {
			t.Fatalf("upstream got %+v, want info@ alone", got)
		}
		if r := ls.receipts(t, "\u0130nfo@example.com"); len(r) != 1 || r[0].d.Reason != optin.ReasonNoConsent {
			t.Errorf("receipts of \u0130nfo@: %+v, want one no_consent", r)
		}
		if r := ls.receipts(t, "info@example.com"); len(r) != 1 || r[0].d.Reason != optin.ReasonRoleAddress {
			t.Errorf("receipts of info@: %+v, want one role_address", r)
		}

		// With consent on record for İnfo@ itself, it is relayed as
		// written, and that is the subject the consent was given for.
		granted := ls.grant(t, "\u0130nfo@example.com", "newsletter")
		if _, err := send(p.dial(t), "crm@shop.example", []string{"\u0130NFO@example.com"}, msgWith("consented", "newsletter")); err != nil {
			t.Fatal(err)
		}
		got = p.up.deliveries()
		if len(got) != 2 || !slices.Equal(got[1].to, []string{"\u0130NFO@example.com"}) {
			t.Fatalf("upstream got %+v, want \u0130NFO@ as written", got)
		}
		if a := mustAddr(t, got[1].to[0]); a != mustAddr(t, "\u0130nfo@example.com") || a == mustAddr(t, "info@example.com") {
			t.Errorf("relayed %q is subject %q", got[1].to[0], a)
		}
		r := ls.receipts(t, "\u0130nfo@example.com")
		if len(r) != 2 || r[1].d.Reason != optin.ReasonConsent || r[1].d.ConsentEvent != granted.Event.ID {
			t.Errorf("receipts of \u0130nfo@: %+v, want the second relayed on consent %s", r, granted.Event.ID)
		}
	})
}
