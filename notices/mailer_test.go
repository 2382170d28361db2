package notices

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/html"

	"optinproxy/upstream"
)

// testLink has an ampersand, so that the HTML part's escaping shows.
const testLink = "https://optin.example/confirm/AbC-dEf_123?x=1&lang=nl"

var amsterdam = func() *time.Location {
	l, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		panic(err)
	}
	return l
}()

// sent is the time the tests' mailer says it is.
var sent = time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)

func newMailer(t *testing.T, up Upstream, lang string) *Mailer {
	t.Helper()
	m, err := New(Options{Upstream: up, From: "privacy@shop.example", ReplyTo: "dpo@shop.example", Hostname: "relay.shop.example",
		Language: lang, Location: amsterdam, Now: func() time.Time { return sent }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestConfirmationMail reads a confirmation back in each language, as a
// mail client would: the header, a text part that reads on its own and
// an HTML part, both holding the link and the purpose and nothing else
// of the subject's.
func TestConfirmationMail(t *testing.T) {
	for _, tt := range []struct {
		lang    string
		subject string
		text    []string
		button  string
	}{
		{"nl", "Bevestig uw aanmelding: Onze nieuwsbrief – café", []string{
			"Dit e-mailadres is aangemeld voor:", "    Onze nieuwsbrief – café",
			"Doet u niets, dan gebeurt er niets: u wordt niet aangemeld. De link werkt tot 9 december 2026 om 14:00 (CET).",
			"Deze e-mail is automatisch verstuurd door privacy@shop.example."}, "Aanmelding bevestigen"},
		{"en", "Please confirm your subscription: Onze nieuwsbrief – café", []string{
			"This email address was signed up for:", "    Onze nieuwsbrief – café",
			"If you do nothing, nothing happens: you will not be signed up. The link works until 9 December 2026 at 14:00 (CET).",
			"This email was sent automatically by privacy@shop.example."}, "Confirm subscription"},
	} {
		t.Run(tt.lang, func(t *testing.T) {
			s := startSink(t)
			m := newMailer(t, s.upstream(t), "nl")
			expires := time.Date(2026, 12, 9, 13, 0, 0, 0, time.UTC)
			if err := m.SendConfirmation(context.Background(), mustAddress(t, "Jan@Example.com"), "Onze nieuwsbrief – café", testLink, expires, tt.lang); err != nil {
				t.Fatal(err)
			}
			got := s.messages()
			if len(got) != 1 {
				t.Fatalf("%d messages, want 1", len(got))
			}
			msg := got[0]
			if msg.from != "privacy@shop.example" || len(msg.to) != 1 || msg.to[0] != "jan@example.com" || msg.utf8 {
				t.Errorf("envelope from %q to %q (SMTPUTF8 %v)", msg.from, msg.to, msg.utf8)
			}
			checkRaw(t, msg.data)
			p := parse(t, msg.data)
			checkHeader(t, p, tt.subject, tt.lang)
			text := p.parts["text/plain"]
			for _, want := range tt.text {
				if !strings.Contains(text, want+"\r\n") {
					t.Errorf("text part lacks the line %q:\n%s", want, text)
				}
			}
			if l := linkIn(t, text, "https://"); l != testLink {
				t.Errorf("text part's link %q, want %q", l, testLink)
			}
			checkHTML(t, p.parts["text/html"], tt.lang, tt.button, "Onze nieuwsbrief – café")
			for _, part := range []string{text, p.parts["text/html"]} {
				if strings.Contains(strings.ToLower(part), "jan@example.com") {
					t.Errorf("a part names the recipient:\n%s", part)
				}
			}
		})
	}
}

// TestPortalLinkMail: the portal's link, in each language, with the time
// it stops working and no purpose.
func TestPortalLinkMail(t *testing.T) {
	for lang, want := range map[string][]string{
		"nl": {"Uw link naar uw gegevens", "Doet u niets, dan gebeurt er niets. De link werkt tot 3 december 2026 om 14:00 (CET); daarna kunt u een nieuwe vragen.", "Naar uw gegevens"},
		"en": {"Your link to your data", "If you do nothing, nothing happens. The link works until 3 December 2026 at 14:00 (CET); after that you can ask for a new one.", "Go to your data"},
	} {
		t.Run(lang, func(t *testing.T) {
			s := startSink(t)
			m := newMailer(t, s.upstream(t), "nl")
			link := "https://optin.example/p/Portal_Token-1"
			if err := m.SendPortalLink(context.Background(), mustAddress(t, "jan@example.com"), link, sent.Add(24*time.Hour), lang); err != nil {
				t.Fatal(err)
			}
			got := s.messages()
			if len(got) != 1 {
				t.Fatalf("%d messages, want 1", len(got))
			}
			checkRaw(t, got[0].data)
			p := parse(t, got[0].data)
			checkHeader(t, p, want[0], lang)
			if !strings.Contains(p.parts["text/plain"], want[1]+"\r\n") {
				t.Errorf("text part lacks %q:\n%s", want[1], p.parts["text/plain"])
			}
			if l := linkIn(t, p.parts["text/plain"], "https://"); l != link {
				t.Errorf("link %q", l)
			}
			checkHTML(t, p.parts["text/html"], lang, want[2], "")
		})
	}
}

// checkRaw: every line ends in CRLF and fits SMTP's limit, so that the
// upstream takes the notice as it is.
func checkRaw(t *testing.T, raw []byte) {
	t.Helper()
	for i, line := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.Contains(line[:len(line)-2], []byte("\r")) {
			t.Errorf("line %d does not end in CRLF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes", i+1, len(line))
		}
	}
}

func checkHeader(t *testing.T, p parsed, subject, lang string) {
	t.Helper()
	h := p.header
	for key, want := range map[string]string{"From": "privacy@shop.example", "Reply-To": "dpo@shop.example", "To": "jan@example.com"} {
		l, err := h.AddressList(key)
		if err != nil || len(l) != 1 || l[0].Address != want {
			t.Errorf("%s: %v %v, want %s", key, l, err, want)
		}
	}
	if s, err := h.Subject(); err != nil || s != subject {
		t.Errorf("Subject %q %v, want %q", s, err, subject)
	}
	if d, err := h.Date(); err != nil || !d.Equal(sent) {
		t.Errorf("Date %v %v, want %v", d, err, sent)
	}
	if id, err := h.MessageID(); err != nil || !strings.HasSuffix(id, "@relay.shop.example") {
		t.Errorf("Message-ID %q %v", id, err)
	}
	if v := h.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted %q", v)
	}
	if v := h.Get("Content-Language"); v != lang {
		t.Errorf("Content-Language %q, want %q", v, lang)
	}
	if typ, _, err := h.ContentType(); typ != "multipart/alternative" || err != nil {
		t.Errorf("Content-Type %q %v", typ, err)
	}
	if len(p.parts) != 2 {
		t.Errorf("parts %v, want text/plain and text/html", p.parts)
	}
	for typ := range p.parts {
		if p.params[typ]["charset"] != "utf-8" || p.cte[typ] != "quoted-printable" {
			t.Errorf("%s: charset %q, transfer encoding %q", typ, p.params[typ]["charset"], p.cte[typ])
		}
	}
}

// checkHTML parses the HTML part: its language, one link (the button,
// to the link), the link's text, the purpose, and nothing loaded from
// elsewhere.
func checkHTML(t *testing.T, doc, lang, button, purpose string) {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var hrefs, labels []string
	var text strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "html":
				if attr(n, "lang") != lang {
					t.Errorf("html lang %q, want %q", attr(n, "lang"), lang)
				}
			case "a":
				hrefs = append(hrefs, attr(n, "href"))
				if n.FirstChild != nil {
					labels = append(labels, n.FirstChild.Data)
				}
			case "img", "script", "link", "iframe", "object":
				t.Errorf("HTML part holds <%s>", n.Data)
			}
			for _, a := range n.Attr {
				if a.Key == "src" {
					t.Errorf("HTML part loads %q", a.Val)
				}
			}
		}
		if n.Type == html.TextNode {
			text.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	if len(hrefs) != 1 || !strings.HasPrefix(hrefs[0], "https://optin.example/") || labels[0] != button {
		t.Errorf("links %q labelled %q, want one to the notice's link labelled %q", hrefs, labels, button)
	}
	if !strings.Contains(text.String(), hrefs[0]) {
		t.Errorf("the HTML part does not show the link as text:\n%s", doc)
	}
	if purpose != "" && !strings.Contains(text.String(), purpose) {
		t.Errorf("the HTML part lacks the purpose %q", purpose)
	}
	if strings.Contains(doc, "&lang=") {
		t.Errorf("an ampersand of the link is not escaped in the HTML:\n%s", doc)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// An address with a non-ASCII local part goes with SMTPUTF8 (RFC 6531);
// one with only a non-ASCII domain goes in ASCII.
func TestInternationalAddresses(t *testing.T) {
	s := startSink(t)
	m := newMailer(t, s.upstream(t), "en")
	ctx := context.Background()
	for _, addr := range []string{"jós@exämple.org", "jan@exämple.org"} {
		if err := m.SendPortalLink(ctx, mustAddress(t, addr), "https://optin.example/p/x", sent.Add(time.Hour), ""); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
	}
	got := s.messages()
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	if !got[0].utf8 || got[0].to[0] != "jós@exämple.org" {
		t.Errorf("non-ASCII local part: to %q, SMTPUTF8 %v", got[0].to, got[0].utf8)
	}
	if got[1].utf8 || got[1].to[0] != "jan@xn--exmple-cua.org" {
		t.Errorf("non-ASCII domain: to %q, SMTPUTF8 %v", got[1].to, got[1].utf8)
	}
	second := parse(t, got[1].data)
	if to := second.header.Get("To"); to != "<jan@xn--exmple-cua.org>" {
		t.Errorf("To %q", to)
	}
	// The empty language and an unknown one take the mailer's.
	first := parse(t, got[0].data)
	if s, _ := first.header.Subject(); s != "Your link to your data" {
		t.Errorf("default language: %q", s)
	}
}

// The upstream's answers become errors a caller can sort: refused for
// good, try again, or maybe sent; none repeats the address.
func TestSendErrors(t *testing.T) {
	s := startSink(t)
	m := newMailer(t, s.upstream(t), "nl")
	jan := mustAddress(t, "jan@example.com")
	send := func() error {
		return m.SendConfirmation(context.Background(), jan, "Nieuwsbrief", testLink, sent.Add(time.Hour), "nl")
	}
	s.setRefuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<jan@example.com>: no such user"})
	err := send()
	if !errors.Is(err, ErrRefused) || Retryable(err) || !strings.Contains(err.Error(), "550 5.1.1") || strings.Contains(err.Error(), "jan@") {
		t.Errorf("550: %v (retryable %v)", err, Retryable(err))
	}
	s.setRefuse(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later, jan@example.com"})
	err = send()
	if !errors.Is(err, ErrDeferred) || !Retryable(err) || strings.Contains(err.Error(), "jan@") {
		t.Errorf("451: %v (retryable %v)", err, Retryable(err))
	}
	if len(s.messages()) != 0 {
		t.Errorf("refused mail arrived")
	}

	// Nothing listening: try again later.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	up, err := upstream.New(upstream.Options{URL: "smtp://" + dead, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if err := newMailer(t, up, "nl").SendConfirmation(context.Background(), jan, "x", testLink, sent, ""); !errors.Is(err, ErrDeferred) || !Retryable(err) {
		t.Errorf("dead upstream: %v", err)
	}
	if Retryable(nil) || Retryable(ErrMaybeSent) {
		t.Error("Retryable of nil or a notice that may have gone")
	}
}

func TestNewValidates(t *testing.T) {
	up := startSink(t).upstream(t)
	for _, tt := range []struct {
		name string
		o    Options
	}{
		{"no upstream", Options{From: "a@b.example", Hostname: "h"}},
		{"no from", Options{Upstream: up, Hostname: "h"}},
		{"a name in from", Options{Upstream: up, From: "Shop <a@b.example>", Hostname: "h"}},
		{"bad reply-to", Options{Upstream: up, From: "a@b.example", ReplyTo: "nobody", Hostname: "h"}},
		{"no hostname", Options{Upstream: up, From: "a@b.example"}},
		{"unknown language", Options{Upstream: up, From: "a@b.example", Hostname: "h", Language: "de"}},
	} {
		if _, err := New(tt.o); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	m, err := New(Options{Upstream: up, From: "a@b.example", Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SendPortalLink(context.Background(), mustAddress(t, "jan@example.com"), "", sent, ""); err == nil {
		t.Error("a notice without a link was sent")
	}
	if m.lang != Dutch {
		t.Errorf("default language %q", m.lang)
	}
}
