package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validation of the consent side: policy, purposes, unsubscribe, admin
// tokens, webhooks and DKIM keys.

func (l *loader) checkPolicy(c *Config) {
	p := &c.Policy
	if !oneOf(p.Mode, modes) {
		l.invalid("policy.mode", mustBeOneOf(p.Mode, modes))
	}
	if p.ReceiptRetention < Duration(24*time.Hour) {
		l.invalid("policy.receipt_retention", "must be at least 1d: receipts are the evidence of what was sent, and why")
	}
	if p.RetentionNotice < 0 {
		l.invalid("policy.retention_notice", "must not be negative (0 records no notice)")
	}
	if p.PendingExpiry < Duration(time.Hour) {
		l.invalid("policy.pending_expiry", "must be at least 1h: the subject needs time to open the confirmation mail")
	}
	if p.PortalLinkTTL < Duration(time.Minute) || p.PortalLinkTTL > Duration(30*24*time.Hour) {
		l.invalid("policy.portal_link_ttl", "must be between 1m and 30d: the link is a credential")
	}
	// Empty is allowed: then mail without X-Optin-Purpose and without a
	// user default purpose is refused.
	if p.DefaultPurpose != "" {
		l.checkPurposeName("policy.default_purpose", p.DefaultPurpose, c.Purposes)
	}
	for _, side := range []struct {
		name  string
		local []string
	}{{"add", p.RoleAddresses.Add}, {"remove", p.RoleAddresses.Remove}} {
		for i, local := range side.local {
			if local == "" || strings.ContainsAny(local, "@ \t") {
				l.invalid(index("policy.role_addresses."+side.name, i), fmt.Sprintf("want a local part such as info, got %q", local))
			}
		}
	}
}

func (l *loader) checkUnsubscribe(u *Unsubscribe) {
	if u.SecretFile == "" {
		l.invalid("unsubscribe.secret_file", "must be set (the file is created when missing)")
	}
	if u.MailtoDomain != "" && !isDomain(u.MailtoDomain) {
		l.invalid("unsubscribe.mailto_domain", fmt.Sprintf("want a domain name, got %q", u.MailtoDomain))
	}
	if !oneOf(u.Language, languages) {
		l.invalid("unsubscribe.language", mustBeOneOf(u.Language, languages))
	}
	for _, lang := range slices.Sorted(maps.Keys(u.Templates)) {
		key := "unsubscribe.templates." + lang
		if !oneOf(lang, languages) {
			l.invalid(key, mustBeOneOf(lang, languages))
		}
		t := u.Templates[lang]
		l.checkFooter(key+".text", t.Text)
		l.checkFooter(key+".html", t.HTML)
	}
}

func (l *loader) checkNotices(n *Notices) {
	for key, v := range map[string]string{"notices.from": n.From, "notices.reply_to": n.ReplyTo} {
		if v == "" {
			continue
		}
		if a, err := mail.ParseAddress(v); err != nil || a.Name != "" || !strings.Contains(a.Address, "@") {
			l.invalid(key, fmt.Sprintf("want a bare address such as privacy@example.com, got %q", v))
		}
	}
}

// NoticeFrom is the sender of the proxy's own mail: notices.from, else
// noreply@ and smtp.hostname.
func (c *Config) NoticeFrom() string {
	if c.Notices.From != "" {
		return c.Notices.From
	}
	return "noreply@" + c.SMTP.Hostname
}

// unsubscribeURL marks the link's place in a footer template.
const unsubscribeURL = "{{unsubscribe_url}}"

// maxFooterLine keeps a footer line, link included, well under the 998
// bytes a mail line may hold.
const maxFooterLine = 800

// checkFooter checks a footer template; empty keeps the built-in one.
func (l *loader) checkFooter(key, text string) {
	if text == "" {
		return
	}
	if !strings.Contains(text, unsubscribeURL) {
		l.invalid(key, "must hold "+unsubscribeURL+", where the link goes")
	}
	for line := range strings.Lines(text) {
		if len(line) > maxFooterLine {
			l.invalid(key, fmt.Sprintf("has a line longer than %d bytes", maxFooterLine))
			return
		}
	}
}

func (l *loader) checkAdmin(tokens []Token) {
	seen := map[string]int{}
	for i, t := range tokens {
		key := index("admin.tokens", i)
		switch j, dup := seen[t.Name]; {
		case t.Name == "":
			l.invalid(key+".name", "must be set")
		case dup:
			l.invalid(key+".name", fmt.Sprintf("%q is already used by admin.tokens[%d]", t.Name, j))
		default:
			seen[t.Name] = i
		}
		switch {
		case t.TokenFile == "" && t.TokenSHA256 == "":
			l.invalid(key, "must set token_file or token_sha256")
		case t.TokenFile != "" && t.TokenSHA256 != "":
			l.invalid(key+".token_sha256", "set only one of token_file and token_sha256")
		case t.TokenSHA256 != "":
			if b, err := hex.DecodeString(t.TokenSHA256); err != nil || len(b) != 32 {
				l.invalid(key+".token_sha256", "want the SHA-256 of the token as 64 hex digits")
			}
		}
		if len(t.Scopes) == 0 {
			l.invalid(key+".scopes", "must list at least one of "+strings.Join(scopes, ", "))
		}
		for j, s := range t.Scopes {
			if !oneOf(s, scopes) {
				l.invalid(index(key+".scopes", j), mustBeOneOf(s, scopes))
			}
		}
	}
}

var selectorRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// checkDKIM checks the entries' form; the key files are read by the
// dkim package, through a Check that cmd gives Load.
func (l *loader) checkDKIM(keys []DKIM) {
	seen := map[[2]string]int{}
	for i, d := range keys {
		key := index("dkim", i)
		pair := [2]string{strings.ToLower(d.Domain), strings.ToLower(d.Selector)}
		if j, dup := seen[pair]; dup && d.Domain != "" && d.Selector != "" {
			l.invalid(key+".selector", fmt.Sprintf("selector %q of %s is already used by dkim[%d]", d.Selector, d.Domain, j))
		} else if !dup {
			seen[pair] = i
		}
		if !isDomain(d.Domain) {
			l.invalid(key+".domain", fmt.Sprintf("want the signing domain, such as example.com, got %q", d.Domain))
		}
		if !selectorRE.MatchString(d.Selector) {
			l.invalid(key+".selector", fmt.Sprintf("want a DNS label such as s1, got %q", d.Selector))
		}
		if d.KeyFile == "" {
			l.invalid(key+".key_file", "must be set")
		}
	}
}
