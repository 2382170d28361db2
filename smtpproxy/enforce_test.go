package smtpproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/smtpproxy"
)

// purposes of the enforcement tests.
var testPurposes = optin.Purposes{
	"newsletter":    {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * 24 * time.Hour, Unsubscribe: true, RoleAddresses: optin.RoleAllow},
	"promotions":    {Name: "promotions", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, RoleAddresses: optin.RoleRequireConsent},
	"transactional": {Name: "transactional", Basis: optin.BasisContract, Category: optin.CategoryTransactional},
	"breach-notice": {Name: "breach-notice", Basis: optin.BasisLegalObligation, Category: optin.CategoryLegal},
}

// ledgerStore is a store under test with what the tests need of it.
type ledgerStore struct {
	name   string
	store  optin.Store
	ledger *optin.Ledger
	// redis is the server behind a Redis store, nil for the file store.
	redis *redistest.Server
	// reopen opens another handle on the same data: a restarted proxy,
	// or (Redis) another instance.
	reopen func(t *testing.T) optin.Store
}

func newLedger(t *testing.T, s optin.Store) *optin.Ledger {
	t.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s, Purposes: testPurposes, PolicyVersion: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func openRedis(t *testing.T, srv *redistest.Server) optin.Store { return teststore.Redis(t, srv) }

// eachStore runs f on the embedded store and on a real Redis.
func eachStore(t *testing.T, f func(t *testing.T, ls *ledgerStore)) {
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "optinproxy.db")
		open := func(t *testing.T) optin.Store { return teststore.File(t, path) }
		s := open(t)
		f(t, &ledgerStore{name: "file", store: s, ledger: newLedger(t, s), reopen: open})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		s := openRedis(t, srv)
		f(t, &ledgerStore{name: "redis", store: s, ledger: newLedger(t, s), redis: srv,
			reopen: func(t *testing.T) optin.Store { return openRedis(t, srv) }})
	})
}

// enforcing starts a proxy that decides from store.
func enforcing(t *testing.T, up *recorder, store optin.Store, edit func(o *smtpproxy.Options)) *proxy {
	t.Helper()
	if up == nil {
		up = newRecorder(t)
	}
	return startProxyTo(t, up, func(o *smtpproxy.Options) {
		o.Store = store
		o.Purposes = testPurposes
		o.DefaultPurpose = "newsletter"
		if edit != nil {
			edit(o)
		}
	})
}

func (ls *ledgerStore) grant(t *testing.T, addr, purpose string) optin.Result {
	t.Helper()
	r, err := ls.ledger.Grant(context.Background(), mustAddr(t, addr), purpose, optin.ConsentChange{Source: "form", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (ls *ledgerStore) withdraw(t *testing.T, addr, purpose string) {
	t.Helper()
	if _, err := ls.ledger.Withdraw(context.Background(), mustAddr(t, addr), purpose, optin.ConsentChange{Source: "unsubscribe", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

func mustAddr(t *testing.T, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// receipts returns the message receipts in addr's history, oldest first.
func (ls *ledgerStore) receipts(t *testing.T, addr string) []receipt {
	t.Helper()
	page, err := ls.store.Events(context.Background(), optin.EventQuery{Subject: mustAddr(t, addr), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []receipt
	for _, e := range page.Events {
		if e.Type != optin.EventMessageRelayed && e.Type != optin.EventMessageBlocked {
			continue
		}
		r := receipt{Event: e}
		if err := json.Unmarshal(e.Details, &r.d); err != nil {
			t.Fatalf("receipt details %s: %v", e.Details, err)
		}
		out = append(out, r)
	}
	return out
}

type receipt struct {
	optin.Event
	d optin.ReceiptDetails
}

func msgWith(id, purpose string) string {
	h := "From: CRM <crm@shop.example>\r\nSubject: Spring sale\r\nMessage-ID: <" + id + "@shop.example>\r\n"
	if purpose != "" {
		h += "X-Optin-Purpose: " + purpose + "\r\n"
	}
	return h + "\r\nHello,\r\nthe body.\r\n"
}

func TestMixedRecipients(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		granted := ls.grant(t, "jan@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, nil)
		rcpts := []string{"jan@example.com", "piet@example.com", "info@bakkerij.example"}
		text, err := send(p.dial(t), "crm@shop.example", rcpts, msgWith("mixed", "newsletter"))
		if err != nil {
			t.Fatal(err)
		}
		// The reply names whom it blocked, and why.
		if !contains(text, "relayed 2, blocked 1 (<piet@example.com>: no_consent)") {
			t.Errorf("reply %q, want relayed 2, blocked 1 (<piet@example.com>: no_consent)", text)
		}
		got := p.up.deliveries()
		if len(got) != 1 || !slices.Equal(got[0].to, []string{"jan@example.com", "info@bakkerij.example"}) {
			t.Fatalf("upstream got %+v, want one copy for jan and info", got)
		}
		if contains(string(got[0].data), "X-Optin-Purpose") {
			t.Error("the X-Optin-Purpose header reached the upstream")
		}
		jan := ls.receipts(t, "jan@example.com")
		if len(jan) != 1 || jan[0].Type != optin.EventMessageRelayed || jan[0].d.Reason != optin.ReasonConsent ||
			jan[0].d.ConsentEvent != granted.Event.ID || jan[0].d.MessageID != "<mixed@shop.example>" || jan[0].Purpose != "newsletter" || jan[0].Actor != "smtp" {
			t.Errorf("jan's receipts %+v, want one message.relayed for consent naming %s", jan, granted.Event.ID)
		}
		piet := ls.receipts(t, "piet@example.com")
		if len(piet) != 1 || piet[0].Type != optin.EventMessageBlocked || piet[0].d.Reason != optin.ReasonNoConsent || piet[0].d.Decision != "block" {
			t.Errorf("piet's receipts %+v, want one message.blocked no_consent", piet)
		}
		info := ls.receipts(t, "info@bakkerij.example")
		if len(info) != 1 || info[0].Type != optin.EventMessageRelayed || info[0].d.Reason != optin.ReasonRoleAddress {
			t.Errorf("info's receipts %+v, want one message.relayed role_address", info)
		}
		if v := p.metric(t, "optinproxy_decisions_total", map[string]string{"purpose": "newsletter", "decision": "block", "reason": "no_consent"}); v != 1 {
			t.Errorf("no_consent decisions %v, want 1", v)
		}
		if v := p.metric(t, "optinproxy_decisions_total", map[string]string{"decision": "allow", "reason": "role_address"}); v != 1 {
			t.Errorf("role_address decisions %v, want 1", v)
		}
	})
}

func TestAllBlocked(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "klaas@example.com", "newsletter")
		ls.withdraw(t, "klaas@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, nil)
		// promotions requires consent of role addresses too.
		_, err := send(p.dial(t), "crm@shop.example", []string{"piet@example.com", "klaas@example.com", "info@bakkerij.example"}, msgWith("blocked", "promotions"))
		se := wantCode(t, err, 550)
		if se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("enhanced code %v", se.EnhancedCode)
		}
		for _, want := range []string{"<piet@example.com>: no_consent", "<klaas@example.com>: no_consent", "<info@bakkerij.example>: no_consent"} {
			if !contains(se.Message, want) {
				t.Errorf("reply %q lacks %q", se.Message, want)
			}
		}
		if n := len(p.up.deliveries()); n != 0 {
			t.Errorf("%d copies relayed, want none", n)
		}
		if r := ls.receipts(t, "klaas@example.com"); len(r) != 1 || r[0].Type != optin.EventMessageBlocked {
			t.Errorf("klaas's receipts %+v", r)
		}
		// The same for the newsletter he withdrew from.
		_, err = send(p.dial(t), "crm@shop.example", []string{"klaas@example.com"}, msgWith("blocked2", "newsletter"))
		if se := wantCode(t, err, 550); !contains(se.Message, "<klaas@example.com>: withdrawn") {
			t.Errorf("reply %q, want withdrawn", se.Message)
		}
	})
}

func TestTransactionalAndLegal(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		p := enforcing(t, nil, ls.store, nil)
		text, err := send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, msgWith("order", "transactional"))
		if err != nil || !contains(text, "relayed 1, blocked 0") {
			t.Fatalf("transactional to an unconsented address: %q %v", text, err)
		}
		if r := ls.receipts(t, "piet@example.com"); len(r) != 1 || r[0].d.Reason != optin.ReasonTransactional || r[0].Purpose != "transactional" {
			t.Errorf("receipts %+v", r)
		}
		ctx := context.Background()
		if _, err := ls.ledger.Suppress(ctx, mustAddr(t, "piet@example.com"), optin.SuppressComplaint, "test"); err != nil {
			t.Fatal(err)
		}
		_, err = send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, msgWith("order2", "transactional"))
		if se := wantCode(t, err, 550); !contains(se.Message, "suppressed:complaint") {
			t.Errorf("reply %q", se.Message)
		}
		// A legal notice still goes to a complaining address.
		if _, err := send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, msgWith("breach", "breach-notice")); err != nil {
			t.Errorf("legal notice: %v", err)
		}
	})
}

func TestPurposeErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.Users = []smtpproxy.User{{Name: "crm", PasswordHash: hash(t, "pw"), Purposes: []string{"newsletter", "transactional"}}}
		})
		c := p.dial(t)
		_, err := send(c, "crm@shop.example", []string{"piet@example.com"}, msgWith("u1", "nonsense"))
		if se := wantCode(t, err, 550); se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || !contains(se.Message, `Unknown purpose "nonsense"; the purposes are: breach-notice, newsletter, promotions, transactional`) {
			t.Errorf("unknown purpose: %v %q", se.EnhancedCode, se.Message)
		}
		// The header's name is matched exactly; a capitalized one is told
		// that names are lower case.
		c.Reset()
		_, err = send(c, "crm@shop.example", []string{"piet@example.com"}, msgWith("u1b", "Newsletter"))
		if se := wantCode(t, err, 550); !contains(se.Message, `Unknown purpose "Newsletter" (purpose names are lower case: "newsletter"); the purposes are: breach-notice, newsletter, promotions, transactional`) {
			t.Errorf("capitalized purpose: %q", se.Message)
		}
		c.Reset()
		_, err = send(c, "crm@shop.example", []string{"piet@example.com"}, msgWith("u2", "newsletter\r\nX-Optin-Purpose: transactional"))
		if se := wantCode(t, err, 550); !contains(se.Message, "Conflicting") {
			t.Errorf("two purposes: %q", se.Message)
		}
		c.Reset()
		if err := c.Auth(sasl.NewPlainClient("", "crm", "pw")); err != nil {
			t.Fatal(err)
		}
		_, err = send(c, "crm@shop.example", []string{"piet@example.com"}, msgWith("u3", "breach-notice"))
		if se := wantCode(t, err, 550); !contains(se.Message, `Purpose "breach-notice" is not allowed for this user`) {
			t.Errorf("not allowed: %q", se.Message)
		}
		// A user limited to some purposes is told only of those.
		c.Reset()
		_, err = send(c, "crm@shop.example", []string{"piet@example.com"}, msgWith("u4", "promo"))
		if se := wantCode(t, err, 550); !contains(se.Message, `Unknown purpose "promo"; the purposes are: newsletter, transactional`) {
			t.Errorf("unknown purpose for a limited user: %q", se.Message)
		}
		if n := len(p.up.deliveries()); n != 0 {
			t.Errorf("%d copies relayed", n)
		}
	})
}

func TestDefaultPurposes(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.Users = []smtpproxy.User{{Name: "shop", PasswordHash: hash(t, "pw"), DefaultPurpose: "transactional"}}
		})
		// Trusted network, no header: the policy default (newsletter) blocks.
		_, err := send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, msgWith("d1", ""))
		if se := wantCode(t, err, 550); !contains(se.Message, "newsletter") {
			t.Errorf("policy default: %q", se.Message)
		}
		// The user's default (transactional) allows.
		c := p.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "shop", "pw")); err != nil {
			t.Fatal(err)
		}
		if _, err := send(c, "crm@shop.example", []string{"piet@example.com"}, msgWith("d2", "")); err != nil {
			t.Errorf("user default: %v", err)
		}
		if r := ls.receipts(t, "piet@example.com"); len(r) != 2 || r[1].Actor != "smtp:shop" || r[1].Purpose != "transactional" {
			t.Errorf("receipts %+v", r)
		}
	})
}

func TestWithdrawnThenSent(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, nil)
		if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("w1", "newsletter")); err != nil {
			t.Fatal(err)
		}
		ls.withdraw(t, "jan@example.com", "newsletter")
		_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("w2", "newsletter"))
		if se := wantCode(t, err, 550); !contains(se.Message, "withdrawn") {
			t.Errorf("reply %q", se.Message)
		}
		if n := len(p.up.deliveries()); n != 1 {
			t.Errorf("%d copies, want 1 (before the withdrawal)", n)
		}
		r := ls.receipts(t, "jan@example.com")
		if len(r) != 2 || r[0].Type != optin.EventMessageRelayed || r[1].Type != optin.EventMessageBlocked || r[1].d.ConsentEvent == "" {
			t.Errorf("receipts %+v, want relayed then blocked naming the withdrawal", r)
		}
	})
}

func TestMonitorMode(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) { o.Monitor = true })
		text, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com", "piet@example.com"}, msgWith("mon", "newsletter"))
		if err != nil {
			t.Fatal(err)
		}
		if !contains(text, "relayed 2, blocked 0") || !contains(text, "monitor mode: 1 would have been blocked") {
			t.Errorf("reply %q", text)
		}
		if got := p.up.received(); got["piet@example.com"] != 1 || got["jan@example.com"] != 1 {
			t.Errorf("copies %v, want both", got)
		}
		r := ls.receipts(t, "piet@example.com")
		if len(r) != 1 || r[0].Type != optin.EventMessageRelayed || r[0].d.Decision != "block" || r[0].d.Reason != optin.ReasonNoConsent || r[0].d.Mode != "monitor" {
			t.Errorf("piet's receipts %+v, want relayed with the block decision in monitor mode", r)
		}
		if v := p.metric(t, "optinproxy_decisions_total", map[string]string{"decision": "block", "reason": "no_consent"}); v != 1 {
			t.Errorf("monitor decisions counted %v, want 1", v)
		}
	})
}

func TestRcptTimeRefusal(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.Users = []smtpproxy.User{{Name: "mailer", PasswordHash: hash(t, "pw"), Purposes: []string{"newsletter"}}}
		})
		c := p.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "mailer", "pw")); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("crm@shop.example", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("jan@example.com", nil); err != nil {
			t.Fatalf("granted recipient refused at RCPT: %v", err)
		}
		err := c.Rcpt("piet@example.com", nil)
		if se := wantCode(t, err, 550); se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || !contains(se.Message, "no_consent") {
			t.Errorf("RCPT refusal %v %q", se.EnhancedCode, se.Message)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(msgWith("rcpt", "")))
		resp, err := w.CloseWithResponse()
		if err != nil || !contains(resp.StatusText, "relayed 1, blocked 0") {
			t.Fatalf("DATA: %v %v", resp, err)
		}
		r := ls.receipts(t, "piet@example.com")
		if len(r) != 1 || r[0].Type != optin.EventMessageBlocked || r[0].d.Stage != "rcpt" || r[0].d.MessageID != "<rcpt@shop.example>" || r[0].Actor != "smtp:mailer" {
			t.Errorf("piet's receipts %+v, want one blocked at rcpt with the message id", r)
		}
		// A transaction refused whole at RCPT still leaves its receipt.
		if err := c.Mail("crm@shop.example", nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, c.Rcpt("kees@example.com", nil), 550)
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
		if r := ls.receipts(t, "kees@example.com"); len(r) != 1 || r[0].d.MessageID != "" || r[0].d.Stage != "rcpt" {
			t.Errorf("kees's receipts %+v", r)
		}
		// Each recipient counted once: jan allowed (at DATA), piet and
		// kees blocked (at RCPT).
		if v := p.metric(t, "optinproxy_decisions_total", map[string]string{"decision": "allow"}); v != 1 {
			t.Errorf("allow decisions %v, want 1", v)
		}
		if v := p.metric(t, "optinproxy_decisions_total", map[string]string{"decision": "block", "reason": "no_consent"}); v != 2 {
			t.Errorf("block decisions %v, want 2", v)
		}
	})
}

func TestBlockedDSN(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.BlockedDSN = true
			o.Users = []smtpproxy.User{{Name: "crm", PasswordHash: hash(t, "pw"), FromDomains: []string{"shop.example"}}}
		})
		c := p.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "crm", "pw")); err != nil {
			t.Fatal(err)
		}
		if _, err := send(c, "bounces@shop.example", []string{"jan@example.com", "piet@example.com"}, msgWith("dsn", "newsletter")); err != nil {
			t.Fatal(err)
		}
		got := p.up.deliveries()
		if len(got) != 2 {
			t.Fatalf("%d upstream transactions, want the message and a DSN", len(got))
		}
		dsn := got[1]
		if dsn.from != "" || !slices.Equal(dsn.to, []string{"bounces@shop.example"}) {
			t.Errorf("DSN envelope %q -> %v, want <> -> the sender", dsn.from, dsn.to)
		}
		body := string(dsn.data)
		for _, want := range []string{"multipart/report", "report-type=delivery-status", "Final-Recipient: rfc822; piet@example.com", "Status: 5.7.1", "no_consent", "<dsn@shop.example>"} {
			if !contains(body, want) {
				t.Errorf("DSN lacks %q", want)
			}
		}
		if contains(body, "jan@example.com") && contains(body, "Final-Recipient: rfc822; jan@example.com") {
			t.Error("DSN names the relayed recipient as failed")
		}
		if contains(body, "the body.") {
			t.Error("DSN holds the message body")
		}
	})
}

func TestPersonalizedCopies(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		ls.grant(t, "marie@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.Personalize = tagCopy
		})
		text, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com", "marie@example.com", "piet@example.com"}, msgWith("pers", "newsletter"))
		if err != nil || !contains(text, "relayed 2, blocked 1") {
			t.Fatalf("%q %v", text, err)
		}
		got := p.up.deliveries()
		if len(got) != 2 {
			t.Fatalf("%d copies, want one per allowed recipient", len(got))
		}
		for _, d := range got {
			if len(d.to) != 1 || !contains(string(d.data), "X-Test-For: "+d.to[0]) {
				t.Errorf("copy for %v is not its own:\n%s", d.to, d.data)
			}
		}
		// Transactional mail injects nothing: one transaction.
		if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com", "marie@example.com"}, msgWith("tx", "transactional")); err != nil {
			t.Fatal(err)
		}
		if got := p.up.deliveries(); len(got) != 3 || len(got[2].to) != 2 {
			t.Errorf("transactional: %d transactions", len(got))
		}
	})
}

func TestStoreDownFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	s := openRedis(t, srv)
	ls := &ledgerStore{store: s, ledger: newLedger(t, s)}
	ls.grant(t, "jan@example.com", "newsletter")
	p := enforcing(t, nil, s, func(o *smtpproxy.Options) {
		o.Users = []smtpproxy.User{{Name: "mailer", PasswordHash: hash(t, "pw"), Purposes: []string{"newsletter"}}}
	})
	if _, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("up", "newsletter")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("down", "newsletter"))
	if se := wantCode(t, err, 451); se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Errorf("store down: %v %q", se.EnhancedCode, se.Message)
	}
	// At RCPT too, for a user with one purpose.
	c := p.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", "mailer", "pw")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("crm@shop.example", nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt("jan@example.com", nil), 451)
	if n := len(p.up.deliveries()); n != 1 {
		t.Errorf("%d copies, want only the one before Redis went down", n)
	}
	srv.Restart()
	c.Reset()
	var lastErr error
	for range 50 {
		// Grant again: the test server may have lost the data.
		if _, lastErr = ls.ledger.Grant(context.Background(), mustAddr(t, "jan@example.com"), "newsletter", optin.ConsentChange{Source: "form"}); lastErr != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if _, lastErr = send(p.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("back", "newsletter")); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Errorf("after Redis came back: %v", lastErr)
	}
}

// TestPartialFailureAcrossRestart: the CRM's retry of a partly relayed
// message delivers the failed copy and no copy twice, from the same
// proxy, from a restarted one, and (Redis) from another instance.
func TestPartialFailureAcrossRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		for _, rcpt := range []string{"a@example.com", "c@example.com", "d@example.com"} {
			ls.grant(t, rcpt, "newsletter")
		}
		up := newRecorder(t)
		up.set(func(r *recorder) {
			r.failRcpt["c@example.com"] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		})
		first := enforcing(t, up, ls.store, nil)
		rcpts := []string{"a@example.com", "c@example.com", "d@example.com", "piet@example.com"}
		msg := msgWith("partial", "newsletter")
		_, err := send(first.dial(t), "crm@shop.example", rcpts, msg)
		if se := wantCode(t, err, 451); !contains(se.Message, "Relayed to 2 of 3") {
			t.Errorf("partial reply %q", se.Message)
		}
		up.set(func(r *recorder) { r.failRcpt = map[string]*smtp.SMTPError{} })

		// The proxy restarts (a new store handle on the same data).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		first.srv.Shutdown(ctx)
		if ls.redis == nil {
			ls.store.Close()
		}
		second := enforcing(t, up, ls.reopen(t), nil)
		text, err := send(second.dial(t), "crm@shop.example", rcpts, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !contains(text, "relayed 1, blocked 1 (<piet@example.com>: no_consent) (2 relayed earlier)") {
			t.Errorf("retry reply %q", text)
		}
		want := map[string]int{"a@example.com": 1, "c@example.com": 1, "d@example.com": 1}
		if got := up.received(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("copies per recipient %v, want %v", got, want)
		}
		if ls.redis == nil {
			return
		}
		// Another instance on the same Redis finds every copy done.
		third := enforcing(t, up, ls.reopen(t), nil)
		text, err = send(third.dial(t), "crm@shop.example", rcpts, msg)
		if err != nil || !contains(text, "already relayed to all 3 allowed recipients; blocked 1 (<piet@example.com>: no_consent)") {
			t.Errorf("third try on another instance: %q %v", text, err)
		}
		if got := up.received(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after the third try: %v", got)
		}
	})
}

// TestTwoInstances: a withdrawal through one instance's store binds the
// next message on the other.
func TestTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	storeA, storeB := openRedis(t, srv), openRedis(t, srv)
	up := newRecorder(t)
	a := enforcing(t, up, storeA, nil)
	b := enforcing(t, up, storeB, nil)
	newLedger(t, storeA).Grant(context.Background(), mustAddr(t, "jan@example.com"), "newsletter", optin.ConsentChange{Source: "form"})
	if _, err := send(b.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("i1", "newsletter")); err != nil {
		t.Fatalf("instance B before the withdrawal: %v", err)
	}
	newLedger(t, storeA).Withdraw(context.Background(), mustAddr(t, "jan@example.com"), "newsletter", optin.ConsentChange{Source: "unsubscribe"})
	_, err := send(b.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("i2", "newsletter"))
	if se := wantCode(t, err, 550); !contains(se.Message, "withdrawn") {
		t.Errorf("instance B after A's withdrawal: %q", se.Message)
	}
	_, err = send(a.dial(t), "crm@shop.example", []string{"jan@example.com"}, msgWith("i3", "newsletter"))
	wantCode(t, err, 550)
	// Both instances' receipts are in the one history, in one chain.
	ls := &ledgerStore{store: storeB}
	if r := ls.receipts(t, "jan@example.com"); len(r) != 3 {
		t.Errorf("%d receipts, want 3", len(r))
	}
	rep, err := storeB.Verify(context.Background())
	if err != nil || len(rep.Broken) != 0 {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

// TestInternationalRecipients: a consent recorded for the Unicode form
// of an address binds mail to its punycode form in any case, and an
// SMTPUTF8 local part is decided like any other.
func TestInternationalRecipients(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@bücher.example", "newsletter")
		ls.grant(t, "jürgen@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, nil)
		c := p.dial(t)
		if err := c.Mail("crm@shop.example", &smtp.MailOptions{UTF8: true}); err != nil {
			t.Fatal(err)
		}
		for _, rcpt := range []string{"JAN@xn--bcher-kva.example", "jürgen@example.com", "jörg@example.com"} {
			if err := c.Rcpt(rcpt, nil); err != nil {
				t.Fatalf("RCPT %s: %v", rcpt, err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(msgWith("idn", "newsletter")))
		resp, err := w.CloseWithResponse()
		if err != nil || !contains(resp.StatusText, "relayed 2, blocked 1") {
			t.Fatalf("DATA: %v %v", resp, err)
		}
		got := p.up.deliveries()
		if len(got) != 1 || !slices.Equal(got[0].to, []string{"JAN@xn--bcher-kva.example", "jürgen@example.com"}) {
			t.Errorf("upstream got %+v", got)
		}
		if r := ls.receipts(t, "jan@bücher.example"); len(r) != 1 || r[0].d.Reason != optin.ReasonConsent {
			t.Errorf("receipts of jan@bücher.example: %+v", r)
		}
		if r := ls.receipts(t, "jörg@example.com"); len(r) != 1 || r[0].d.Reason != optin.ReasonNoConsent {
			t.Errorf("receipts of jörg@example.com: %+v", r)
		}
	})
}

// failingWrites is a real store whose writes fail from the moment fail
// is set, as when Redis goes away between a lookup and the receipts.
type failingWrites struct {
	optin.Store
	fail atomic.Bool
}

func (f *failingWrites) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	if f.fail.Load() {
		return nil, fmt.Errorf("injected: %w", optin.ErrUnavailable)
	}
	return f.Store.Apply(ctx, changes)
}

// TestReceiptWriteFails: when the receipts cannot be stored, a message
// that went out is still answered 250 (a 4xx would make the CRM send it
// twice) and the loss is counted; a message that went nowhere gets
// 451 4.3.0, so that its retry records the decisions.
func TestReceiptWriteFails(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		store := &failingWrites{Store: ls.store}
		store.fail.Store(true)
		p := enforcing(t, nil, store, nil)
		text, err := send(p.dial(t), "crm@shop.example", []string{"jan@example.com", "piet@example.com"}, msgWith("rf1", "newsletter"))
		if err != nil || !contains(text, "relayed 1, blocked 1") {
			t.Errorf("delivered message: %q %v", text, err)
		}
		if v := p.metric(t, "optinproxy_receipt_errors_total", nil); v != 2 {
			t.Errorf("receipt errors %v, want 2", v)
		}
		_, err = send(p.dial(t), "crm@shop.example", []string{"piet@example.com"}, msgWith("rf2", "newsletter"))
		if se := wantCode(t, err, 451); se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
			t.Errorf("blocked message: %v", se)
		}
		if n := len(p.up.deliveries()); n != 1 {
			t.Errorf("%d copies, want 1", n)
		}
	})
}

// TestBlockedReplyStaysShort: the 550 names ten recipients and counts
// the rest.
func TestBlockedReplyStaysShort(t *testing.T) {
	p := enforcing(t, nil, teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")), nil)
	var rcpts []string
	for i := range 12 {
		rcpts = append(rcpts, fmt.Sprintf("p%d@example.com", i))
	}
	_, err := send(p.dial(t), "crm@shop.example", rcpts, msgWith("many", "newsletter"))
	se := wantCode(t, err, 550)
	if !contains(se.Message, "<p9@example.com>: no_consent; and 2 more") || contains(se.Message, "p10@") {
		t.Errorf("reply %q", se.Message)
	}
}

// TestPersonalizedPartialFailure: with a copy per recipient, one copy
// refused makes the reply 451, and the retry sends only that copy.
func TestPersonalizedPartialFailure(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		ls.grant(t, "marie@example.com", "newsletter")
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.Personalize = tagCopy
		})
		p.up.set(func(r *recorder) {
			r.failRcpt["marie@example.com"] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		})
		rcpts := []string{"jan@example.com", "marie@example.com"}
		_, err := send(p.dial(t), "crm@shop.example", rcpts, msgWith("ppf", "newsletter"))
		if se := wantCode(t, err, 451); !contains(se.Message, "Relayed to 1 of 2") {
			t.Errorf("reply %q", se.Message)
		}
		p.up.set(func(r *recorder) { r.failRcpt = map[string]*smtp.SMTPError{} })
		text, err := send(p.dial(t), "crm@shop.example", rcpts, msgWith("ppf", "newsletter"))
		if err != nil || !contains(text, "relayed 1, blocked 0 (1 relayed earlier)") {
			t.Fatalf("retry: %q %v", text, err)
		}
		if got := p.up.received(); got["jan@example.com"] != 1 || got["marie@example.com"] != 1 {
			t.Errorf("copies %v, want one each", got)
		}
	})
}

// tagCopy personalizes a copy by naming its recipient in a header, so
// that a test can tell the copies apart.
func tagCopy(_ optin.Purpose, to optin.Address, _ string, h textproto.Header, body []byte) (io.WriterTo, error) {
	h = h.Copy()
	h.Add("X-Test-For", to.String())
	var b bytes.Buffer
	if err := textproto.WriteHeader(&b, h); err != nil {
		return nil, err
	}
	b.Write(body)
	return copyBytes(b.Bytes()), nil
}

// copyBytes writes the same bytes each time it is written.
type copyBytes []byte

func (c copyBytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(c)
	return int64(n), err
}
