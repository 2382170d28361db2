package smtpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// dsnOriginal is a message as a CRM sends it; its body must never show up
// in a DSN.
const dsnOriginal = "From: CRM <news@crm.example>\r\n" +
	"To: alice@example.com, bob@example.com\r\n" +
	"Subject: Our spring offers\r\n" +
	"Message-ID: <spring-1@crm.example>\r\n" +
	"X-Optin-Purpose: newsletter\r\n" +
	"\r\n" +
	"SECRET-BODY-MARKER: dear customer, this text stays private.\r\n"

func dsnTestInput(t *testing.T, original string, blocked ...dsnRecipient) dsnInput {
	t.Helper()
	msg, err := parseMessage([]byte(original))
	if err != nil {
		t.Fatal(err)
	}
	return dsnInput{
		Hostname:  "proxy.example.net",
		QueueID:   "q7abc",
		Arrival:   time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
		Now:       time.Date(2026, 3, 1, 9, 30, 2, 0, time.UTC),
		Sender:    "bounces@crm.example",
		MessageID: msg.id,
		Purpose:   "newsletter",
		Header:    msg.header,
		Blocked:   blocked,
	}
}

// dsnPart is one part of a parsed DSN, its transfer encoding undone.
type dsnPart struct {
	mediaType string
	params    map[string]string
	header    gomessage.Header
	body      []byte
}

// parseDSN reads raw with go-message and returns the top-level header and
// the parts of the multipart/report.
func parseDSN(t *testing.T, raw []byte) (gomessage.Header, []dsnPart) {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reading DSN: %v\n%s", err, raw)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("DSN is not multipart:\n%s", raw)
	}
	var parts []dsnPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading part %d: %v", len(parts)+1, err)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("reading part %d body: %v", len(parts)+1, err)
		}
		mt, params, err := p.Header.ContentType()
		if err != nil {
			t.Fatalf("part %d Content-Type: %v", len(parts)+1, err)
		}
		parts = append(parts, dsnPart{mediaType: mt, params: params, header: p.Header, body: body})
	}
	return e.Header, parts
}

// statusBlocks splits a delivery-status body into its header blocks: the
// per-message fields first, then one block per recipient.
func statusBlocks(t *testing.T, body []byte) []textproto.Header {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	var blocks []textproto.Header
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return blocks
		}
		h, err := textproto.ReadHeader(br)
		if err != nil && err != io.EOF {
			t.Fatalf("block %d: %v\n%s", len(blocks)+1, err, body)
		}
		blocks = append(blocks, h)
	}
}

func buildDSNOK(t *testing.T, in dsnInput) []byte {
	t.Helper()
	raw, err := buildDSN(in)
	if err != nil {
		t.Fatal(err)
	}
	checkDSNLines(t, raw)
	return raw
}

// checkDSNLines asserts CRLF line endings and lines of at most 998 octets.
func checkDSNLines(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Error("DSN does not end with CRLF")
	}
	for i, l := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if !bytes.HasSuffix(l, []byte("\r\n")) || bytes.Count(l, []byte("\r")) != 1 {
			t.Errorf("line %d is not ended by one CRLF: %q", i+1, l)
		}
		if n := len(l) - 2; n > 998 {
			t.Errorf("line %d has %d octets", i+1, n)
		}
	}
}

func TestBuildDSNStructure(t *testing.T) {
	in := dsnTestInput(t, dsnOriginal,
		dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
	raw := buildDSNOK(t, in)
	top, parts := parseDSN(t, raw)

	mt, params, err := top.ContentType()
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Errorf("Content-Type = %q %v (%v), want multipart/report; report-type=delivery-status", mt, params, err)
	}
	for _, c := range []struct{ key, want string }{
		{"From", "Mail Delivery System <MAILER-DAEMON@proxy.example.net>"},
		{"To", "<bounces@crm.example>"},
		{"Auto-Submitted", "auto-replied"},
		{"Mime-Version", "1.0"},
		{"In-Reply-To", "<spring-1@crm.example>"},
		{"References", "<spring-1@crm.example>"},
		{"Date", "Sun, 01 Mar 2026 09:30:02 +0000"},
	} {
		if got := top.Get(c.key); got != c.want {
			t.Errorf("%s = %q, want %q", c.key, got, c.want)
		}
	}
	if to, err := mail.ParseAddress(top.Get("To")); err != nil || to.Address != in.Sender {
		t.Errorf("To = %q does not parse to the sender: %v", top.Get("To"), err)
	}
	if id := top.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@proxy.example.net>") ||
		id == in.MessageID {
		t.Errorf("Message-Id = %q, want a fresh <...@proxy.example.net>", id)
	}
	if top.Get("Subject") == "" {
		t.Error("no Subject")
	}

	want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if len(parts) != len(want) {
		t.Fatalf("%d parts, want %d", len(parts), len(want))
	}
	for i, w := range want {
		if parts[i].mediaType != w {
			t.Errorf("part %d is %s, want %s", i+1, parts[i].mediaType, w)
		}
	}
	if cs := parts[0].params["charset"]; !strings.EqualFold(cs, "utf-8") {
		t.Errorf("text part charset = %q, want utf-8", cs)
	}
	if bytes.Contains(raw, []byte("\n\t")) || bytes.Contains(raw, []byte("\x00")) {
		t.Error("unexpected tab folding or NUL in DSN")
	}
}

func TestBuildDSNDeliveryStatus(t *testing.T) {
	blocked := []dsnRecipient{
		{Address: "bob@example.com", Reason: "no_consent"},
		{Address: "carol@example.com", Reason: "withdrawn"},
		{Address: "dave@example.com", Reason: "suppressed:hard_bounce"},
	}
	in := dsnTestInput(t, dsnOriginal, blocked...)
	_, parts := parseDSN(t, buildDSNOK(t, in))
	blocks := statusBlocks(t, parts[1].body)
	if len(blocks) != 1+len(blocked) {
		t.Fatalf("%d blocks, want %d:\n%s", len(blocks), 1+len(blocked), parts[1].body)
	}
	if got := blocks[0].Get("Reporting-Mta"); got != "dns; proxy.example.net" {
		t.Errorf("Reporting-MTA = %q", got)
	}
	arr, err := mail.ParseDate(blocks[0].Get("Arrival-Date"))
	if err != nil || !arr.Equal(in.Arrival) {
		t.Errorf("Arrival-Date = %q (%v), want %v", blocks[0].Get("Arrival-Date"), err, in.Arrival)
	}
	if blocks[0].Has("Final-Recipient") {
		t.Error("per-message block holds a recipient")
	}
	for i, r := range blocked {
		b := blocks[i+1]
		if got := b.Get("Final-Recipient"); got != "rfc822; "+r.Address {
			t.Errorf("recipient %d Final-Recipient = %q", i, got)
		}
		if got := b.Get("Action"); got != "failed" {
			t.Errorf("recipient %d Action = %q", i, got)
		}
		if got := b.Get("Status"); got != "5.7.1" {
			t.Errorf("recipient %d Status = %q", i, got)
		}
		diag := b.Get("Diagnostic-Code")
		if !strings.HasPrefix(diag, "smtp; 550 5.7.1 ") || !strings.Contains(diag, "("+r.Reason+")") {
			t.Errorf("recipient %d Diagnostic-Code = %q, want smtp; 550 5.7.1 ... (%s)", i, diag, r.Reason)
		}
	}
	if !strings.Contains(blocks[3].Get("Diagnostic-Code"), "bounced") {
		t.Errorf("hard bounce not explained: %q", blocks[3].Get("Diagnostic-Code"))
	}
}

func TestBuildDSNText(t *testing.T) {
	in := dsnTestInput(t, dsnOriginal,
		dsnRecipient{Address: "bob@example.com", Reason: "pending_confirmation"},
		dsnRecipient{Address: "eve@example.com", Reason: "made_up_code"})
	_, parts := parseDSN(t, buildDSNOK(t, in))
	text := string(parts[0].body)
	for _, want := range []string{
		"bob@example.com: the recipient has not yet confirmed the subscription (pending_confirmation)",
		"eve@example.com: recipient blocked (made_up_code)",
		`the purpose "newsletter"`,
		"relayed to its other recipients",
		"<spring-1@crm.example>",
		"q7abc",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
}

func TestBuildDSNHeadersNotBody(t *testing.T) {
	in := dsnTestInput(t, dsnOriginal, dsnRecipient{Address: "bob@example.com", Reason: "expired"})
	raw := buildDSNOK(t, in)
	if bytes.Contains(raw, []byte("SECRET-BODY-MARKER")) {
		t.Fatal("the DSN echoes the original body")
	}
	_, parts := parseDSN(t, raw)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(parts[2].body)))
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if got := h.Get("Subject"); got != "Our spring offers" {
		t.Errorf("headers part Subject = %q", got)
	}
	if got := h.Get("Message-Id"); got != "<spring-1@crm.example>" {
		t.Errorf("headers part Message-ID = %q", got)
	}
}

func TestBuildDSNSMTPUTF8(t *testing.T) {
	const utf8Rcpt = "björn@exämple.de"
	in := dsnTestInput(t, dsnOriginal,
		dsnRecipient{Address: "bob@example.com", Reason: "no_consent"},
		dsnRecipient{Address: utf8Rcpt, Reason: "withdrawn"})
	raw := buildDSNOK(t, in)
	_, parts := parseDSN(t, raw)
	if parts[1].mediaType != "message/global-delivery-status" {
		t.Errorf("status part is %s, want message/global-delivery-status", parts[1].mediaType)
	}
	if enc := parts[1].header.Get("Content-Transfer-Encoding"); enc != "8bit" {
		t.Errorf("global status part encoding = %q, want 8bit", enc)
	}
	blocks := statusBlocks(t, parts[1].body)
	if len(blocks) != 3 {
		t.Fatalf("%d blocks, want 3", len(blocks))
	}
	if got := blocks[1].Get("Final-Recipient"); got != "rfc822; bob@example.com" {
		t.Errorf("ASCII recipient Final-Recipient = %q", got)
	}
	if got := blocks[2].Get("Final-Recipient"); got != "utf-8; "+utf8Rcpt {
		t.Errorf("SMTPUTF8 recipient Final-Recipient = %q", got)
	}
	if !strings.Contains(string(parts[0].body), utf8Rcpt) {
		t.Errorf("text part lacks %q:\n%s", utf8Rcpt, parts[0].body)
	}
	if !hasNonASCII(string(raw)) {
		t.Error("a DSN that needs SMTPUTF8 is all ASCII")
	}
}

// A Unicode domain alone keeps the plain DSN: the address goes in A-labels.
func TestBuildDSNUnicodeDomain(t *testing.T) {
	in := dsnTestInput(t, dsnOriginal, dsnRecipient{Address: "bob@bücher.example", Reason: "no_consent"})
	in.Sender = "bounces@bücher.example"
	raw := buildDSNOK(t, in)
	top, parts := parseDSN(t, raw)
	if got := top.Get("To"); got != "<bounces@xn--bcher-kva.example>" {
		t.Errorf("To = %q, want the sender with its domain in A-labels", got)
	}
	if parts[1].mediaType != "message/delivery-status" {
		t.Errorf("status part is %s, want message/delivery-status", parts[1].mediaType)
	}
	blocks := statusBlocks(t, parts[1].body)
	if got := blocks[1].Get("Final-Recipient"); got != "rfc822; bob@xn--bcher-kva.example" {
		t.Errorf("Final-Recipient = %q", got)
	}
	if !strings.Contains(string(parts[0].body), "bob@bücher.example") {
		t.Errorf("text part lacks the address as written:\n%s", parts[0].body)
	}
	if hasNonASCII(string(raw)) {
		t.Error("DSN has 8-bit data though nothing needs SMTPUTF8")
	}
}

func TestBuildDSNGlobalHeaders(t *testing.T) {
	orig := strings.Replace(dsnOriginal, "Our spring offers", "Frühlingsangebote für Sie", 1)
	in := dsnTestInput(t, orig, dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
	_, parts := parseDSN(t, buildDSNOK(t, in))
	if parts[1].mediaType != "message/delivery-status" {
		t.Errorf("status part is %s, want message/delivery-status", parts[1].mediaType)
	}
	if parts[2].mediaType != "message/global-headers" {
		t.Errorf("headers part is %s, want message/global-headers", parts[2].mediaType)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(parts[2].body)))
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if got := h.Get("Subject"); got != "Frühlingsangebote für Sie" {
		t.Errorf("headers part Subject = %q", got)
	}
}

// A received header with bare LFs or a line over 998 octets still yields a
// DSN of CRLF lines within the limit.
func TestBuildDSNOddOriginalHeader(t *testing.T) {
	for _, c := range []struct {
		name, original, wantType, wantEnc string
	}{
		{"bare LF", strings.ReplaceAll(dsnOriginal, "\r\n", "\n"), "text/rfc822-headers", "7bit"},
		{"long line", "X-Long: " + strings.Repeat("a", 1200) + "\r\n" + dsnOriginal, "text/rfc822-headers", "base64"},
		{"latin-1", "X-Latin: caf\xe9\r\n" + dsnOriginal, "text/rfc822-headers", "base64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := dsnTestInput(t, c.original, dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
			raw := buildDSNOK(t, in)
			_, parts := parseDSN(t, raw)
			if len(parts) != 3 {
				t.Fatalf("%d parts, want 3", len(parts))
			}
			p := parts[2]
			if p.mediaType != c.wantType || p.header.Get("Content-Transfer-Encoding") != c.wantEnc {
				t.Errorf("headers part is %s %s, want %s %s", p.mediaType,
					p.header.Get("Content-Transfer-Encoding"), c.wantType, c.wantEnc)
			}
			if !bytes.Contains(p.body, []byte("Subject: Our spring offers")) {
				t.Errorf("headers part lacks the Subject:\n%s", p.body)
			}
			if bytes.Contains(raw, []byte("SECRET-BODY-MARKER")) {
				t.Error("the DSN echoes the original body")
			}
		})
	}
}

func TestBuildDSNInjection(t *testing.T) {
	in := dsnTestInput(t, dsnOriginal,
		dsnRecipient{Address: "bob@example.com", Reason: "no_consent\r\nX-Injected: yes\r\n\r\nFinal-Recipient: rfc822; x@evil.example"})
	in.Purpose = "news\r\nX-Injected: purpose"
	in.MessageID = "<a@b>\r\nX-Injected: id"
	raw := buildDSNOK(t, in)
	top, parts := parseDSN(t, raw)
	if top.Has("X-Injected") || top.Has("In-Reply-To") {
		t.Errorf("top-level header was injected into:\n%s", raw)
	}
	blocks := statusBlocks(t, parts[1].body)
	if len(blocks) != 2 {
		t.Fatalf("%d blocks, want 2:\n%s", len(blocks), parts[1].body)
	}
	for i, b := range blocks {
		if b.Has("X-Injected") || len(b.Values("Final-Recipient")) > 1 {
			t.Errorf("block %d was injected into:\n%s", i, parts[1].body)
		}
	}
	if got := blocks[1].Get("Final-Recipient"); got != "rfc822; bob@example.com" {
		t.Errorf("Final-Recipient = %q", got)
	}
	if bytes.Contains(parts[0].body, []byte("\r\nX-Injected")) {
		t.Errorf("text part holds an injected line:\n%s", parts[0].body)
	}
}

func TestBuildDSNBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*dsnInput)
	}{
		{"no blocked recipient", func(in *dsnInput) { in.Blocked = nil }},
		{"CRLF in address", func(in *dsnInput) { in.Blocked[0].Address = "bob@example.com\r\nBcc: x@evil.example" }},
		{"empty address", func(in *dsnInput) { in.Blocked[0].Address = "" }},
		{"CRLF in sender", func(in *dsnInput) { in.Sender = "a@crm.example\r\nBcc: x@evil.example" }},
		{"empty sender", func(in *dsnInput) { in.Sender = "" }},
		{"empty hostname", func(in *dsnInput) { in.Hostname = "" }},
		{"LF in hostname", func(in *dsnInput) { in.Hostname = "proxy\nBcc: x" }},
		{"Unicode hostname", func(in *dsnInput) { in.Hostname = "prøxy.example" }},
		{"CR in queue id", func(in *dsnInput) { in.QueueID = "q\r1" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := dsnTestInput(t, dsnOriginal, dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
			c.edit(&in)
			raw, err := buildDSN(in)
			if !errors.Is(err, errDSNInput) {
				t.Errorf("err = %v, want errDSNInput; DSN:\n%s", err, raw)
			}
		})
	}
}

// Without a usable original Message-ID the DSN references nothing.
func TestBuildDSNNoMessageID(t *testing.T) {
	for _, id := range []string{"", "no-brackets@x", "<a@b> <c@d>", "<Ünïcode@x>"} {
		in := dsnTestInput(t, dsnOriginal, dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
		in.MessageID = id
		top, _ := parseDSN(t, buildDSNOK(t, in))
		if top.Has("In-Reply-To") || top.Has("References") {
			t.Errorf("MessageID %q: In-Reply-To %q, References %q", id, top.Get("In-Reply-To"), top.Get("References"))
		}
	}
}

func TestDSNReasonPhrase(t *testing.T) {
	for _, c := range []struct{ code, want string }{
		{"no_consent", "no consent for this purpose is on record (no_consent)"},
		{"withdrawn", "the recipient withdrew consent or objected (withdrawn)"},
		{"expired", "the recipient's consent has expired (expired)"},
		{"pending_confirmation", "the recipient has not yet confirmed the subscription (pending_confirmation)"},
		{"suppressed:hard_bounce", "the address is suppressed: earlier mail to it bounced (suppressed:hard_bounce)"},
		{"suppressed:complaint", "the address is suppressed: the recipient reported earlier mail as spam (suppressed:complaint)"},
		{"suppressed:unsubscribed_all", "the address is suppressed: the recipient unsubscribed from all mail (suppressed:unsubscribed_all)"},
		{"suppressed:erased", "the address is suppressed: the recipient's data was erased on request (suppressed:erased)"},
		{"suppressed:manual", "the address is suppressed by the operator (suppressed:manual)"},
		// A suppression reason from a newer store: still a suppression.
		{"suppressed:new_kind", "the address is suppressed (suppressed:new_kind)"},
		// An unknown code is shown as it is.
		{"quota", "recipient blocked (quota)"},
		// No code at all.
		{"", "recipient blocked"},
	} {
		if got := reasonPhrase(c.code); got != c.want {
			t.Errorf("reasonPhrase(%q) = %q, want %q", c.code, got, c.want)
		}
	}
}

// A header over 16 KiB goes into the DSN only up to the last whole field
// that fits, and the text says that it was cut; a header within the cap
// goes whole, and the text says nothing of cutting.
func TestBuildDSNHeaderCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: Our spring offers\r\nMessage-ID: <spring-1@crm.example>\r\n")
	for i := 0; b.Len() < 20<<10; i++ {
		// Folded fields: a cut must not fall between a field's lines.
		fmt.Fprintf(&b, "X-Filler-%03d: %s\r\n\t%s\r\n", i, strings.Repeat("a", 100), strings.Repeat("b", 100))
	}
	in := dsnTestInput(t, b.String()+"\r\nSECRET-BODY-MARKER\r\n", dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
	raw := buildDSNOK(t, in)
	_, parts := parseDSN(t, raw)
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	hdr := parts[2].body
	if len(hdr) > dsnHeaderCap || len(hdr) < dsnHeaderCap-250 {
		t.Errorf("headers part of %d octets, want the whole fields that fit in %d", len(hdr), dsnHeaderCap)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if h.Get("Subject") != "Our spring offers" {
		t.Error("the cut header lost its first fields")
	}
	fields := h.Fields()
	var last string
	for fields.Next() {
		last = fields.Value()
	}
	if !strings.HasSuffix(last, strings.Repeat("b", 100)) {
		t.Errorf("the last field kept is not whole: %q", last)
	}
	if text := string(parts[0].body); !strings.Contains(text, "header") || !strings.Contains(text, "cut") {
		t.Errorf("the text does not say the header was cut:\n%s", text)
	}
	if bytes.Contains(raw, []byte("SECRET-BODY-MARKER")) {
		t.Error("the DSN echoes the original body")
	}

	_, parts = parseDSN(t, buildDSNOK(t, dsnTestInput(t, dsnOriginal, dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})))
	if strings.Contains(string(parts[0].body), "cut") {
		t.Errorf("a short header is said to be cut:\n%s", parts[0].body)
	}
}

// A first field alone over the cap leaves no header to attach: the DSN
// has no third part, and says why.
func TestBuildDSNHeaderFirstFieldTooLong(t *testing.T) {
	huge := "X-Huge: " + strings.Repeat(strings.Repeat("h", 99)+"\r\n ", 170) + "end\r\n"
	in := dsnTestInput(t, huge+dsnOriginal, dsnRecipient{Address: "bob@example.com", Reason: "no_consent"})
	raw := buildDSNOK(t, in)
	_, parts := parseDSN(t, raw)
	if len(parts) != 2 {
		t.Fatalf("%d parts, want the text and the status only", len(parts))
	}
	if !strings.Contains(string(parts[0].body), "cut") {
		t.Errorf("the text does not say the header was left out:\n%s", parts[0].body)
	}
	if bytes.Contains(raw, []byte("hhhhhhhhhh")) {
		t.Error("the DSN holds part of the oversized field")
	}
}

// capHeader cuts only at field boundaries, never inside a folded field.
func TestCapHeader(t *testing.T) {
	h := []byte("A: 1\r\nB: 2\r\n 2b\r\nC: 3\r\n")
	for _, c := range []struct {
		max  int
		want string
		cut  bool
	}{
		{len(h), string(h), false},
		{100, string(h), false},
		{len(h) - 1, "A: 1\r\nB: 2\r\n 2b\r\n", true},
		{17, "A: 1\r\nB: 2\r\n 2b\r\n", true},
		{16, "A: 1\r\n", true},
		{6, "A: 1\r\n", true},
		{5, "", true},
		{0, "", true},
	} {
		got, cut := capHeader(h, c.max)
		if string(got) != c.want || cut != c.cut {
			t.Errorf("capHeader(%d) = %q, %v; want %q, %v", c.max, got, cut, c.want, c.cut)
		}
	}
}
