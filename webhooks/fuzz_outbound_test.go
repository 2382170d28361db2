package webhooks

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"optinproxy/optin"
)

// The fuzz targets of what the outbound side reads from receivers and the
// APIs (Retry-After, error texts) or from the outbox commands (delivery
// ids), and of the payload it builds from ledger events.

// FuzzParseRetryAfter: any Retry-After value at any time is a wait
// between 0 and maxRetryAfter, or none; delay seconds are read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Unix()
	for _, v := range []string{"", "0", "120", " 7 ", "-1", "+5", "999999999999", "9223372036854775807",
		"99999999999999999999", "1.5", "Thu, 02 Jan 2025 03:05:00 GMT", "Thursday, 02-Jan-25 03:05:00 GMT",
		"Thu Jan  2 03:05:00 2025", "Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"} {
		f.Add(v, now)
	}
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(-1<<62))
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		d, ok := parseRetryAfter(v, time.Unix(nowUnix, 0))
		if d < 0 || d > maxRetryAfter || !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, %v", v, d, ok)
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && n <= uint64(maxRetryAfter/time.Second) {
			if !ok || d != time.Duration(n)*time.Second {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %ds", v, d, ok, n)
			}
		}
	})
}

// FuzzDeliveryID: a delivery id of a valid target name and any event id
// parses back to them; whatever ParseID accepts is the DeliveryID of what
// it returns.
func FuzzDeliveryID(f *testing.F) {
	f.Add("crm", optin.NewEventID(time.Unix(1700000000, 0)))
	f.Add("mailchimp-audience", "01hz.x")
	f.Add("a.b", "c")
	f.Add("", "x")
	f.Add(strings.Repeat("a", 41), "x")
	f.Add("Crm", "x")
	f.Fuzz(func(t *testing.T, target, eventID string) {
		id := DeliveryID(target, eventID)
		gotTarget, gotEvent, err := ParseID(id)
		if validTargetName(target) && eventID != "" {
			if err != nil || gotTarget != target || gotEvent != eventID {
				t.Fatalf("ParseID(%q) = %q, %q, %v", id, gotTarget, gotEvent, err)
			}
		}
		for _, s := range []string{id, target, eventID} {
			tg, ev, err := ParseID(s)
			if err != nil {
				if !errors.Is(err, ErrBadDeliveryID) || tg != "" || ev != "" {
					t.Fatalf("ParseID(%q) = %q, %q, %v", s, tg, ev, err)
				}
				continue
			}
			if !validTargetName(tg) || ev == "" || DeliveryID(tg, ev) != s {
				t.Fatalf("ParseID(%q) = %q, %q", s, tg, ev)
			}
		}
	})
}

// FuzzNewPayload: the payload of an event with any details never panics
// and marshals; the address goes into email and nowhere else (the
// payload of the same event without a subject differs in email only);
// new_email comes from the details of subject.updated only; an erased
// subject's payload carries neither address nor details.
func FuzzNewPayload(f *testing.F) {
	f.Add("consent.withdrawn", "ana@example.org", "newsletter", []byte(`{"status":"withdrawn","basis":"consent","source":"unsubscribe","evidence":{"ip":"192.0.2.1"}}`), false)
	f.Add("subject.updated", "ana@example.org", "", []byte(`{"new_email":"ana@example.net"}`), false)
	f.Add("suppression.added", "ana@example.org", "", []byte(`{"reason":"hard_bounce","new_email":"x@y.example"}`), false)
	f.Add("subject.updated", "ana@example.org", "", []byte(`{"new_email":"ana@example.net"}`), true)
	f.Add("consent.expiring", "ana@example.org", "newsletter", []byte(`{"purpose":"newsletter","expires_at":"2027-01-31T12:00:00+01:00"}`), false)
	f.Add("consent.expired", "ana@example.org", "newsletter", []byte(`{"status":"expired","expires_at":7,"reason":"retention"}`), false)
	f.Add("consent.granted", "", "", []byte(`{"status":1}`), false)
	f.Add("consent.granted", "Ana@Example.org", "", []byte(`[`), false)
	f.Add("x", "a@b.example", "p", []byte("null"), false)
	f.Fuzz(func(t *testing.T, typ, email, purpose string, details []byte, erased bool) {
		subject, err := optin.ParseAddress(email)
		if err != nil {
			return
		}
		e := optin.Event{ID: "01hz", Time: time.Unix(1700000000, 5).In(time.FixedZone("x", 3600)), Type: optin.EventType(typ),
			Subject: subject, Purpose: purpose, Actor: "admin", Details: details, Erased: erased}
		p := NewPayload(e)
		if p.Time.Location() != time.UTC || !p.Time.Equal(e.Time) {
			t.Fatalf("time %v, want %v in UTC", p.Time, e.Time)
		}
		if erased {
			// Only an erasure's own event may carry the address: its
			// notice's, for the receiver to delete its copy.
			if p.Email != "" && (e.Type != optin.EventSubjectErased || p.Email != subject.String()) ||
				p.NewEmail != "" || p.Status != "" || p.Basis != "" || p.Source != "" || p.Reason != "" {
				t.Fatalf("erased subject's payload carries personal data: %+v", p)
			}
		} else if p.Email != subject.String() {
			t.Fatalf("email %q, want %q", p.Email, subject)
		}
		if p.NewEmail != "" && e.Type != optin.EventSubjectUpdated {
			t.Fatalf("%s carries new_email %q", e.Type, p.NewEmail)
		}
		anon := e
		anon.Subject = optin.Address{}
		q := NewPayload(anon)
		q.Email = p.Email
		if q != p {
			t.Fatalf("the address changed more than email: %+v, without it %+v", p, q)
		}
		b, err := MarshalPayload(e)
		if err != nil {
			t.Fatal(err)
		}
		var back Payload
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("payload %s does not read back: %v", b, err)
		}
		// JSON has no invalid UTF-8: Marshal writes U+FFFD for it. Type
		// and purpose are configured names, valid in practice; the other
		// fields come from JSON already.
		if utf8.ValidString(typ) && utf8.ValidString(purpose) && back != p {
			t.Fatalf("payload %s reads back as %+v, want %+v: %v", b, back, p, err)
		}
	})
}

// dottedAddress finds in a text what an API error may quote of an
// address: a local part, an @ and a dotted domain.
var dottedAddress = regexp.MustCompile(`@([\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+)`)

// FuzzRedactAddresses: an API's error text, clipped and redacted as
// APIError keeps it, holds no "@" followed by a dotted domain of the text,
// and a text without "@" is left as it was.
func FuzzRedactAddresses(f *testing.F) {
	for _, s := range []string{
		"ana@example.org is already a list member. Use PUT to insert or update list members.",
		"ana@example.org looks fake or invalid, please enter a real email address.",
		`Invalid Resource: "Ana Doe" <ana@example.org>, (bob@example.net); carl@[192.0.2.1]`,
		`"ana doe"@example.org was permanently deleted`,
		"ana@exa\u00a0mple.org: ana@ex\u2028ample.org ＠ ana@例え.テスト",
		"Member Exists", "@", "@@a.b", "a@.b@c.d", "\xffa@b.c\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range []int{200, 400, len(s) + 1} {
			out := redactAddresses(apiClip(s, n))
			for _, m := range dottedAddress.FindAllStringSubmatch(out, -1) {
				if strings.Contains(s, m[0]) {
					t.Fatalf("redact(%q) = %q keeps %q", s, out, m[0])
				}
			}
			if !strings.Contains(s, "@") && out != apiClip(s, n) {
				t.Fatalf("redact(%q) = %q, but it has no @", s, out)
			}
		}
	})
}
