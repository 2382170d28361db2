package webhooks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// The fuzz targets of the inbound parsers: everything a sender of a
// webhook controls. Their seeds are the samples in testdata/ and the
// corpus in testdata/fuzz/<target>/.

// addSamples adds the contents of the testdata files matching glob as
// seeds, each through add.
func addSamples(f *testing.F, glob string, add func(b []byte)) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(names) == 0 {
		f.Fatalf("no samples match %s: %v", glob, err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(bytes.TrimSpace(b))
	}
}

// fuzzReceiver is a receiver over a real embedded store, with the test
// purposes and every sender configured, for the parsers that consult it.
func fuzzReceiver(f *testing.F) *Receiver {
	f.Helper()
	ledger, err := optin.NewLedger(optin.LedgerOptions{
		Store: teststore.File(f, filepath.Join(f.TempDir(), "ledger.db")), Purposes: testPurposes, PolicyVersion: "v1"})
	if err != nil {
		f.Fatal(err)
	}
	rc, err := NewReceiver(ReceiverOptions{
		Ledger:    ledger,
		Mailchimp: MailchimpOptions{Secret: "s3cr3t", Lists: map[string]string{testList: "newsletter"}},
		Mandrill:  MandrillOptions{Key: testMandrillKey, URL: "https://proxy.example/webhooks/mandrill"},
		CRM:       CRMOptions{Secret: testCRMSecret},
	})
	if err != nil {
		f.Fatal(err)
	}
	return rc
}

// fieldOf returns the field a *fieldError names; it fails t when err is
// another kind of error or names no field.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var fe *fieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *fieldError", err, err)
	}
	if fe.field == "" || fe.problem == "" {
		t.Fatalf("field error %q names no field or no problem", fe.Error())
	}
	return fe.field
}

// FuzzVerifyStandard: any headers and body are refused with ErrBadSignature
// or ErrStale, or accepted only with a signature of exactly this id,
// timestamp and body; what SignStandard signs verifies, and changing the
// body, the id or the timestamp alone makes it fail.
func FuzzVerifyStandard(f *testing.F) {
	const unix = 1700000000
	sig, err := SignStandard(testCRMSecret, "msg_1", time.Unix(unix, 0), []byte(`{"type":"consent.granted"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("msg_1", strconv.Itoa(unix), sig, []byte(`{"type":"consent.granted"}`))
	f.Add("msg_1", strconv.Itoa(unix), "v1,AAAA v2,xyz "+sig, []byte(`{"type":"consent.granted"}`))
	f.Add("a.1", "5", "v1,", []byte("2.x"))
	f.Add("", "", "", []byte(nil))
	f.Add("msg", "-9223372036854775808", "v1,====", []byte("{}"))
	f.Add("msg", "+0001700000000", "v1a,b v1,c,d", []byte("{}"))
	addSamples(f, "mailchimp/subscribe.txt", func(b []byte) { f.Add("msg_2", "1", "v1,x", b) })
	key, err := ParseSecret(testCRMSecret)
	if err != nil {
		f.Fatal(err)
	}
	const tolerance = 5 * time.Minute
	f.Fuzz(func(t *testing.T, id, tsText, sigs string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, tsText)
		h.Set(HeaderSignature, sigs)
		ts, tsErr := strconv.ParseInt(tsText, 10, 64)
		now := time.Unix(ts, 0)

		// Whatever came in: refused with a sentinel, or signed right.
		switch err := VerifyStandard(testCRMSecret, h, body, now, tolerance); {
		case err == nil:
			good := "v1," + base64.StdEncoding.EncodeToString(standardMAC(key, id, ts, body))
			if !slices.Contains(strings.Fields(sigs), good) {
				t.Fatalf("accepted id %q ts %q sigs %q without a matching signature", id, tsText, sigs)
			}
		case !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale):
			t.Fatalf("error %v wraps neither ErrBadSignature nor ErrStale", err)
		}
		if id == "" || tsErr != nil {
			return
		}

		// Signed by SignStandard, with any other entries before it.
		sig, err := SignStandard(testCRMSecret, id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		var extra []string
		for i, e := range strings.Fields(sigs) {
			if i < maxSignatures-1 {
				extra = append(extra, e)
			}
		}
		h.Set(HeaderSignature, strings.Join(append(extra, sig), " "))
		if err := VerifyStandard(testCRMSecret, h, body, now, tolerance); err != nil {
			t.Fatalf("signed id %q ts %q: %v", id, tsText, err)
		}
		h.Set(HeaderSignature, sig)

		// One field changed: refused.
		refused := func(what string, h http.Header, body []byte, now time.Time) {
			t.Helper()
			if err := VerifyStandard(testCRMSecret, h, body, now, tolerance); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%s changed: %v, want ErrBadSignature", what, err)
			}
		}
		refused("body", h, append(bytes.Clone(body), 'x'), now)
		if len(body) > 0 {
			flipped := bytes.Clone(body)
			flipped[len(flipped)/2] ^= 1
			refused("body", h, flipped, now)
		}
		other := h.Clone()
		other.Set(HeaderID, id+"x")
		refused("id", other, body, now)
		if ts < 1<<40 && ts > -1<<40 { // so that now stays within tolerance without overflow
			other = h.Clone()
			other.Set(HeaderTimestamp, strconv.FormatInt(ts+1, 10))
			refused("timestamp", other, body, now)
			if err := VerifyStandard(testCRMSecret, h, body, now.Add(tolerance+time.Second), tolerance); !errors.Is(err, ErrStale) {
				t.Fatalf("verified too late: %v, want ErrStale", err)
			}
		}
	})
}

// FuzzParseCRM: a CRM event body of any bytes is refused with a
// *fieldError naming a field, or accepted as one JSON object with every
// field its type needs, parsed.
func FuzzParseCRM(f *testing.F) {
	for _, s := range []string{
		`{"type":"consent.granted","email":"Ann@Example.com","purpose":"newsletter","evidence":{"ip":"192.0.2.7","form":"signup"}}`,
		`{"type":"consent.withdrawn","email":"ann@example.com","purpose":"offers","basis":"consent","occurred_at":"2025-01-02T03:04:05.5+01:00"}`,
		`{"type":"subject.updated","email":"ann@example.com","new_email":"ann@example.org"}`,
		`{"type":"subject.erased","email":"ann@example.com"} trailing`,
		`{"type":"consent.granted","email":"ann@example.com","purpose":"newsletter","basis":"telepathy"}`,
		`{"type":"consent.granted","email":"ann@example.com","purpose":"newsletter","evidence":{"time":"yesterday"}}`,
		`{"type":"consent.granted","email":"ann@example.com","purpose":"newsletter","evidence":[1]}`,
		`{"type":"consent.granted","email":"ann@","purpose":"nope"}`,
		`{"type":1}`, `null`, `[]`, ``, `{"type":"x"}`,
	} {
		f.Add([]byte(s), "1700000000")
	}
	rc := fuzzReceiver(f)
	kinds := map[optin.EventType]bool{optin.EventConsentGranted: true, optin.EventConsentWithdrawn: true,
		optin.EventSubjectUpdated: true, optin.EventSubjectErased: true}
	fields := map[string]bool{"body": true, "type": true, "email": true, "new_email": true, "purpose": true,
		"basis": true, "evidence": true, "occurred_at": true}
	f.Fuzz(func(t *testing.T, body []byte, ts string) {
		ch, err := rc.parseCRM(body, ts)
		if err != nil {
			if field := fieldOf(t, err); !fields[field] {
				t.Fatalf("error %q names %q, no field of a CRM event", err, field)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
		}
		if !kinds[ch.Type] {
			t.Fatalf("accepted type %q", ch.Type)
		}
		if ch.Subject.IsZero() {
			t.Fatal("accepted without an email")
		}
		if again, err := optin.ParseAddress(ch.Subject.String()); err != nil || again != ch.Subject {
			t.Fatalf("email %q does not parse back: %v", ch.Subject, err)
		}
		if (ch.Type == optin.EventSubjectUpdated) == ch.NewEmail.IsZero() {
			t.Fatalf("%s with new_email %q", ch.Type, ch.NewEmail)
		}
		if ch.Type == optin.EventConsentGranted || ch.Type == optin.EventConsentWithdrawn {
			if _, ok := testPurposes[ch.Purpose]; !ok {
				t.Fatalf("%s of purpose %q, which is not configured", ch.Type, ch.Purpose)
			}
			if ch.Basis != "" && !ch.Basis.Valid() {
				t.Fatalf("accepted basis %q", ch.Basis)
			}
		}
	})
}

// FuzzReadMailchimp: a Mailchimp POST of any content type and body is
// refused with a *fieldError, or read; an event that is applied has its
// time, its list and the addresses its type needs.
func FuzzReadMailchimp(f *testing.F) {
	addSamples(f, "mailchimp/*.txt", func(b []byte) { f.Add(formType, b) })
	f.Add(formType+"; charset=utf-8", []byte("type=subscribe&fired_at=2009-03-26+21:35:57.999&data[list_id]=x&data[email]=a@b.example"))
	f.Add(formType, []byte("type=upemail&fired_at=0000-01-01+00:00:00&data[list_id]=x&data[old_email]=a@b.example&data[new_email]=%zz"))
	f.Add(formType, []byte("type=unsubscribe&fired_at=2009-02-29+24:00:00"))
	f.Add(formType, []byte("type=campaign;type=subscribe"))
	f.Add("text/plain", []byte("type=subscribe"))
	f.Add("", []byte(nil))
	rc := fuzzReceiver(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/mailchimp/s3cr3t", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		ev, err := rc.readMailchimp(httptest.NewRecorder(), r)
		if err != nil {
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				fieldOf(t, err)
			}
			return
		}
		if ev.Type == "" || ev.Form == nil {
			t.Fatalf("read without a type or a form: %+v", ev)
		}
		if !mailchimpTypes[ev.Type] || ev.Type == "campaign" || ev.Type == "profile" {
			return
		}
		if ev.At.Location() != time.UTC {
			t.Fatalf("fired_at %q read as %v", ev.Form.Get("fired_at"), ev.At)
		}
		if back, err := time.ParseInLocation(mailchimpTime, ev.At.Format(mailchimpTime), time.UTC); err != nil || !back.Equal(ev.At.Truncate(time.Second)) {
			t.Fatalf("fired_at %q read as %v, which does not format back: %v", ev.Form.Get("fired_at"), ev.At, err)
		}
		if ev.List == "" {
			t.Fatal("read without data[list_id]")
		}
		if ev.Type == "upemail" {
			if ev.OldEmail.IsZero() || ev.NewEmail.IsZero() || !ev.Email.IsZero() {
				t.Fatalf("upemail read as %q -> %q (email %q)", ev.OldEmail, ev.NewEmail, ev.Email)
			}
		} else if ev.Email.IsZero() || !ev.OldEmail.IsZero() || !ev.NewEmail.IsZero() {
			t.Fatalf("%s read with email %q, old %q, new %q", ev.Type, ev.Email, ev.OldEmail, ev.NewEmail)
		}
	})
}

// FuzzMandrillSignature: the signature of a form does not depend on the
// order its fields came in, is the same on every call (a map's order is
// not), and is base64 of an HMAC-SHA1.
func FuzzMandrillSignature(f *testing.F) {
	addSamples(f, "mandrill/batch.json", func(b []byte) {
		f.Add(testMandrillKey, "https://proxy.example/webhooks/mandrill", "mandrill_events="+url.QueryEscape(string(b)))
	})
	f.Add("k", "u", "b=1&a=2&b=0&c")
	f.Add("", "", "")
	f.Add("k", "u", "a=%zz&b=1;c=2&&=&a=")
	f.Fuzz(func(t *testing.T, key, rawURL, body string) {
		form, _ := url.ParseQuery(body) // what parses of a bad body is signed as well
		sig := MandrillSignature(key, rawURL, form)
		if raw, err := base64.StdEncoding.DecodeString(sig); err != nil || len(raw) != 20 {
			t.Fatalf("signature %q is not base64 of 20 bytes: %v", sig, err)
		}
		for range 3 {
			if again := MandrillSignature(key, rawURL, form); again != sig {
				t.Fatalf("signature changed from %q to %q", sig, again)
			}
		}
		// The same fields, names in reverse order of first appearance:
		// another body, the same form.
		var names []string
		for name := range form {
			names = append(names, name)
		}
		slices.Sort(names)
		slices.Reverse(names)
		var reversed strings.Builder
		for _, name := range names {
			for _, v := range form[name] {
				reversed.WriteString(url.QueryEscape(name) + "=" + url.QueryEscape(v) + "&")
			}
		}
		again, err := url.ParseQuery(reversed.String())
		if err != nil {
			t.Fatalf("re-encoded form does not parse: %v", err)
		}
		if got := MandrillSignature(key, rawURL, again); got != sig {
			t.Fatalf("signature of %q is %q; of the same form reordered, %q", body, sig, got)
		}
	})
}

// FuzzParseMandrill: mandrill_events of any bytes is refused with a
// *fieldError naming it, or read into at most maxMandrillEvents events,
// each of which maps to what it records without a panic.
func FuzzParseMandrill(f *testing.F) {
	addSamples(f, "mandrill/batch.json", func(b []byte) { f.Add(b) })
	for _, s := range []string{
		`[]`, `null`, `{}`, `[null]`, `[{"event":"reject","msg":null}]`,
		`[{"event":"reject","_id":"x","ts":-1,"msg":{"email":"a@b.example","reject":null,"reject_reason":"spam"}}]`,
		`[{"event":"reject","msg":{"reject":{"reason":"hard-bounce"}}}]`,
		`[{"type":"blacklist","action":"add","reject":{"email":"a@b.example"}}]`,
		`[{"event":"unsub","ts":9223372036854775807,"msg":{"email":"a@b.example","metadata":{"purpose":7}}}]`,
		`[{"event":"spam","msg":{"email":"a@b.example","sender":"@"}}]`,
	} {
		f.Add([]byte(s))
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, raw []byte) {
		events, err := parseMandrill(url.Values{"mandrill_events": {string(raw)}})
		if err != nil {
			if field := fieldOf(t, err); field != "mandrill_events" {
				t.Fatalf("error %q names %q", err, field)
			}
			return
		}
		if len(events) > maxMandrillEvents {
			t.Fatalf("%d events read", len(events))
		}
		for _, ev := range events {
			kind := mandrillKind(ev)
			if kind != "" && ev.Msg == nil {
				t.Fatalf("event %+v without msg records %s", ev, kind)
			}
			if at := mandrillTime(ev.TS, now); at.After(now) {
				t.Fatalf("ts %d is after now as %v", ev.TS, at)
			}
			if ev.Msg != nil {
				senderDomain(ev.Msg.Sender)
			}
		}
	})
}
