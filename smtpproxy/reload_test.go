package smtpproxy_test

import (
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"

	"optinproxy/optin"
	"optinproxy/smtpproxy"
)

// withoutPurpose is testPurposes less one.
func withoutPurpose(name string) optin.Purposes {
	ps := maps.Clone(testPurposes)
	delete(ps, name)
	return ps
}

// A transaction under way when the rules change finishes under the rules
// of its MAIL FROM: its purpose, removed meanwhile, still relays. The
// session's next MAIL FROM finds its user removed and is refused; a new
// connection cannot log in as that user, and the user the reload added
// can, while the removed purpose now gets the unknown-purpose reply.
func TestReloadKeepsTransactionRulesAndChangesTheNext(t *testing.T) {
	p := startAuthProxy(t, nil)
	c := p.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("crm@shop.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("jan@example.com", nil); err != nil {
		t.Fatal(err)
	}
	err := p.srv.Reload(smtpproxy.Rules{
		Users:          []smtpproxy.User{{Name: "sales", PasswordHash: hash(t, "n3w")}},
		Purposes:       withoutPurpose("transactional"),
		DefaultPurpose: "breach-notice",
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(msgWith("before-reload", "transactional")))
	if err := w.Close(); err != nil {
		t.Fatalf("the transaction begun before the reload: %v", err)
	}
	if n := len(p.up.deliveries()); n != 1 {
		t.Fatalf("upstream got %d messages, want the one begun before the reload", n)
	}
	se := wantCode(t, c.Mail("crm@shop.example", nil), 530)
	if !strings.Contains(se.Message, "no longer configured") {
		t.Errorf("MAIL of a removed user: %q", se.Message)
	}

	wantCode(t, p.dial(t).Auth(sasl.NewPlainClient("", "crm", "s3cret")), 535)
	c2 := p.dial(t)
	if err := c2.Auth(sasl.NewPlainClient("", "sales", "n3w")); err != nil {
		t.Fatalf("the user the reload added: %v", err)
	}
	_, err = send(c2, "sales@shop.example", []string{"jan@example.com"}, msgWith("after-reload", "transactional"))
	se = wantCode(t, err, 550)
	if !strings.Contains(se.Message, `Unknown purpose "transactional"`) {
		t.Errorf("removed purpose: %q", se.Message)
	}
	if _, err := send(c2, "sales@shop.example", []string{"jan@example.com"}, msgWith("default", "")); err != nil {
		t.Errorf("the new default purpose (breach-notice): %v", err)
	}
}

// Rules New would refuse are refused by Reload too, and the rules in force
// stay: the user can still log in and send.
func TestReloadRefusesBadRulesAndKeepsTheOld(t *testing.T) {
	p := startAuthProxy(t, nil)
	for name, r := range map[string]smtpproxy.Rules{
		"unknown default purpose": {Purposes: testPurposes, DefaultPurpose: "promo"},
		"user's unknown purpose":  {Purposes: testPurposes, Users: []smtpproxy.User{{Name: "crm", PasswordHash: hash(t, "x"), Purposes: []string{"promo"}}}},
		"not a bcrypt hash":       {Purposes: testPurposes, Users: []smtpproxy.User{{Name: "crm", PasswordHash: "plain"}}},
		"user listed twice":       {Purposes: testPurposes, Users: []smtpproxy.User{{Name: "a", PasswordHash: hash(t, "x")}, {Name: "a", PasswordHash: hash(t, "x")}}},
	} {
		if err := p.srv.Reload(r); err == nil {
			t.Errorf("%s: Reload accepted it", name)
		}
	}
	c := p.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
		t.Errorf("after refused reloads: %v", err)
	}
}

// A role address the reload adds is let through without consent on a
// purpose that allows role addresses; before it, it was blocked.
func TestReloadRoleAddresses(t *testing.T) {
	p := startProxy(t, nil)
	send1 := func(id string) error {
		_, err := send(p.dial(t), "crm@shop.example", []string{"webteam@bakkerij.example"}, msgWith(id, "newsletter"))
		return err
	}
	wantCode(t, send1("roles-before"), 550)
	roles, err := optin.NewRoleAddresses([]string{"webteam"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Reload(smtpproxy.Rules{Purposes: testPurposes, DefaultPurpose: "transactional", Roles: roles}); err != nil {
		t.Fatal(err)
	}
	if err := send1("roles-after"); err != nil {
		t.Errorf("a role address added by the reload: %v", err)
	}
}

// Reloads while messages go through: run with -race, which finds a rule
// read that is not the one atomic load.
func TestReloadWhileRelaying(t *testing.T) {
	// The same hash the proxy started with: a new hash of the same password
	// counts as a changed password and would end the sessions with 421.
	users := []smtpproxy.User{{Name: "crm", PasswordHash: hash(t, "s3cret")}}
	p := startAuthProxy(t, func(o *smtpproxy.Options) { o.Users = users })
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				c := p.dial(t)
				if err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
					t.Error(err)
					return
				}
				if _, err := send(c, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
					t.Error(err)
				}
				c.Quit()
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			ps := testPurposes
			if i%2 == 1 {
				ps = withoutPurpose("promotions")
			}
			if err := p.srv.Reload(smtpproxy.Rules{Users: users, Purposes: ps, DefaultPurpose: "transactional"}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if n := len(p.up.deliveries()); n != 20 {
		t.Errorf("upstream got %d messages, want 20", n)
	}
}

// A password changed by a reload (it leaked) ends the sessions logged in
// with the old one at their next MAIL FROM, with a 421 that has the
// client log in again rather than bounce; the old password no longer
// logs in, the new one does. A change to anything else of the user keeps
// the session.
func TestReloadChangedPasswordEndsSession(t *testing.T) {
	p := startAuthProxy(t, nil)
	old := p.dial(t)
	if err := old.Auth(sasl.NewPlainClient("", "crm", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if _, err := send(old, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
		t.Fatal(err)
	}
	newHash := hash(t, "n3w-secret")
	rules := func(domains ...string) smtpproxy.Rules {
		return smtpproxy.Rules{Users: []smtpproxy.User{{Name: "crm", PasswordHash: newHash, FromDomains: domains}}, Purposes: testPurposes, DefaultPurpose: "transactional"}
	}
	if err := p.srv.Reload(rules()); err != nil {
		t.Fatal(err)
	}
	_, err := send(old, "crm@shop.example", []string{"jan@example.com"}, fresh())
	if se := wantCode(t, err, 421); !strings.Contains(se.Message, "password changed") {
		t.Errorf("the old password's session after the change: %v", se)
	}
	if err := old.Noop(); err == nil {
		t.Error("the old password's session is still open")
	}
	if err := p.dial(t).Auth(sasl.NewPlainClient("", "crm", "s3cret")); err == nil {
		t.Error("the old password still logs in")
	}
	fresh1 := p.dial(t)
	if err := fresh1.Auth(sasl.NewPlainClient("", "crm", "n3w-secret")); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if _, err := send(fresh1, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
		t.Errorf("a session of the new password: %v", err)
	}
	// The new password's session survives a reload that changes the
	// user's domains only.
	if err := p.srv.Reload(rules("shop.example")); err != nil {
		t.Fatal(err)
	}
	if _, err := send(fresh1, "crm@shop.example", []string{"jan@example.com"}, fresh()); err != nil {
		t.Errorf("a session across a reload that kept its password: %v", err)
	}
	if n := len(p.up.deliveries()); n != 3 {
		t.Errorf("upstream got %d messages, want 3", n)
	}
}
