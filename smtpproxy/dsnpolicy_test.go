package smtpproxy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"optinproxy/smtpproxy"
)

// A DSN for blocked recipients goes only to an envelope sender in the
// authenticated user's from_domains: otherwise the DSN would mail whatever
// address a client names, and tell it others' consent state. A client
// trusted by network (no user) and a user without from_domains get none,
// and that is logged once per message, without the address. The DSN
// carries the message's header only, cut to 16 KiB.
func TestDSNOnlyToUserFromDomains(t *testing.T) {
	eachStore(t, func(t *testing.T, ls *ledgerStore) {
		ls.grant(t, "jan@example.com", "newsletter")
		var log *logBuffer
		p := enforcing(t, nil, ls.store, func(o *smtpproxy.Options) {
			o.BlockedDSN = true
			o.Users = []smtpproxy.User{
				{Name: "crm", PasswordHash: hash(t, "pw"), FromDomains: []string{"shop.example"}},
				{Name: "bulk", PasswordHash: hash(t, "pw")},
			}
			log = capture(o)
		})
		rcpts := []string{"jan@example.com", "piet@example.com"}
		login := func(user string) *smtp.Client {
			c := p.dial(t)
			if user != "" {
				if err := c.Auth(sasl.NewPlainClient("", user, "pw")); err != nil {
					t.Fatal(err)
				}
			}
			return c
		}

		// Trusted by network, and a user without from_domains: no DSN.
		for i, user := range []string{"", "bulk"} {
			if _, err := send(login(user), "bounces@victim.example", rcpts, msgWith(fmt.Sprint("nodsn", i), "newsletter")); err != nil {
				t.Fatal(err)
			}
		}
		got := p.up.deliveries()
		if len(got) != 2 || slices.ContainsFunc(got, func(d delivery) bool { return d.from == "" }) {
			t.Fatalf("upstream got %d transactions, want the two messages and no DSN: %v", len(got), envelopes(got))
		}
		text := log.String()
		if n := len(lines(text, "no DSN for blocked recipients: the client has no from_domains to send one to")); n != 2 {
			t.Errorf("%d log lines on the DSN not sent, want one per message:\n%s", n, text)
		}
		if strings.Contains(text, "victim.example") {
			t.Errorf("the log names the envelope sender:\n%s", text)
		}

		// A user with from_domains gets a DSN at its own sender, with the
		// header cut to 16 KiB.
		var filler strings.Builder
		for i := 0; filler.Len() < 20<<10; i++ {
			fmt.Fprintf(&filler, "X-Filler-%03d: %s\r\n", i, strings.Repeat("f", 200))
		}
		msg := strings.Replace(msgWith("dsn", "newsletter"), "\r\n\r\n", "\r\n"+filler.String()+"\r\n", 1)
		if _, err := send(login("crm"), "bounces@shop.example", rcpts, msg); err != nil {
			t.Fatal(err)
		}
		got = p.up.deliveries()
		if len(got) != 4 {
			t.Fatalf("upstream got %d transactions, want the message and its DSN too", len(got))
		}
		dsn := got[3]
		if dsn.from != "" || !slices.Equal(dsn.to, []string{"bounces@shop.example"}) {
			t.Errorf("DSN envelope %q -> %v, want <> -> the sender", dsn.from, dsn.to)
		}
		body := string(dsn.data)
		for _, want := range []string{"Final-Recipient: rfc822; piet@example.com", "X-Filler-000", "header", "cut"} {
			if !contains(body, want) {
				t.Errorf("DSN lacks %q", want)
			}
		}
		if len(dsn.data) > 20<<10 || contains(body, "the body.") {
			t.Errorf("DSN of %d octets: the header is not cut, or the body is in it", len(dsn.data))
		}
	})
}

// envelopes lists the envelope of each delivery, for failure messages.
func envelopes(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("<%s> -> %v", d.from, d.to))
	}
	return out
}
