package smtpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"optinproxy/optin"
)

// Delivery status notifications for blocked recipients (with
// smtp.blocked_dsn): a multipart/report (rfc/6522:3) of a note for people,
// the machine-readable status (rfc/3464:2) and the original header, cut
// to dsnHeaderCap. The body of the original is never echoed.

// dsnHeaderCap bounds the original header a DSN carries: enough for every
// header a CRM writes, and a DSN stays small whatever the client sent.
const dsnHeaderCap = 16 << 10

// errDSNInput marks a dsnInput that cannot become a DSN: nothing was
// blocked, or a field that goes into a header is empty or holds a control
// character.
var errDSNInput = errors.New("smtpproxy: bad DSN input")

// dsnStatus is the enhanced status of every blocked recipient: delivery not
// authorized, message refused (rfc/3463:3.8 X.7.1).
const dsnStatus = "5.7.1"

// dsnRecipient is one blocked recipient for a DSN.
type dsnRecipient struct {
	Address string // as the client wrote it in RCPT TO (may be non-ASCII: SMTPUTF8)
	Reason  string // the decision reason code, e.g. "no_consent", "withdrawn", "suppressed:hard_bounce"
}

// dsnInput is what buildDSN reports on.
type dsnInput struct {
	Hostname  string           // reporting MTA (the proxy's hostname)
	QueueID   string           // the proxy's id for the message
	Arrival   time.Time        // when the message arrived; zero leaves out Arrival-Date
	Now       time.Time        // Date of the DSN
	Sender    string           // envelope sender (MAIL FROM), the DSN's recipient; never "" (callers skip the null sender)
	MessageID string           // the original Message-ID (with angle brackets) or ""
	Purpose   string           // the message's purpose name
	Header    textproto.Header // the original message's header, for the third part
	Blocked   []dsnRecipient
}

// buildDSN returns the DSN message, ready to hand to the upstream with the
// null reverse path (MAIL FROM:<>) and in.Sender as its one recipient. It
// is pure apart from the random Message-ID and boundary, and safe to call
// concurrently.
//
// The result has CRLF line endings and no line over 998 octets. It is
// 7-bit unless the sender's or a blocked recipient's local part, or the
// original header, holds non-ASCII; then it carries UTF-8 header data
// (rfc/6532, rfc/6533) and must go with SMTPUTF8, which callers see with
// hasNonASCII on the result.
//
// Hostname must be ASCII (A-labels); Hostname, QueueID, Sender and the
// addresses must be free of control characters; there must be a blocked
// recipient. Otherwise the error wraps errDSNInput. Reasons and the
// purpose are free text: their control characters become spaces. A
// MessageID that is not one plain <id> is left out of In-Reply-To and
// References.
func buildDSN(in dsnInput) ([]byte, error) {
	if err := checkDSNInput(in); err != nil {
		return nil, err
	}
	msgID := plainMsgID(in.MessageID)

	// The multipart/report header, in the order written. A boundary of our
	// own keeps go-message from moving Content-Type to the top.
	to, _ := wireAddress(in.Sender)
	top := []headerField{
		{"From", "Mail Delivery System <MAILER-DAEMON@" + in.Hostname + ">"},
		{"To", "<" + to + ">"},
		{"Subject", "Undelivered Mail: recipients blocked by consent policy"},
		{"Date", in.Now.Format(time.RFC1123Z)},
		{"Message-ID", "<" + newID() + "@" + in.Hostname + ">"},
	}
	if msgID != "" {
		top = append(top, headerField{"In-Reply-To", msgID}, headerField{"References", msgID})
	}
	top = append(top,
		headerField{"Auto-Submitted", "auto-replied"}, // rfc/3834:5
		headerField{"MIME-Version", "1.0"},
		headerField{"Content-Type", mime.FormatMediaType("multipart/report", map[string]string{
			"report-type": "delivery-status", // rfc/6522:3
			"boundary":    "=_dsn_" + newID() + newID(),
		})},
	)

	h, err := orderedHeader(top...)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := gomessage.CreateWriter(&buf, gomessage.Header{Header: h})
	if err != nil {
		return nil, err
	}

	orig, err := headerBytes(in.Header)
	if err != nil {
		return nil, err
	}
	orig, cut := capHeader(orig, dsnHeaderCap)

	text := dsnText(in, msgID, cut)
	textEnc := "7bit"
	if hasNonASCII(text) || longestLine([]byte(text)) > 998 {
		textEnc = "quoted-printable"
	}
	if err := writePart(w, "text/plain; charset=utf-8", textEnc, []byte(text)); err != nil {
		return nil, err
	}

	status, global, err := dsnStatusFields(in)
	if err != nil {
		return nil, err
	}
	statusType, statusEnc := "message/delivery-status", "7bit"
	if global {
		statusType, statusEnc = "message/global-delivery-status", "8bit" // rfc/6533:6.2
	}
	if err := writePart(w, statusType, statusEnc, status); err != nil {
		return nil, err
	}

	if len(orig) > 0 { // the third part is optional (rfc/6522:3)
		origType, origEnc := headersPartType(orig)
		if err := writePart(w, origType, origEnc, orig); err != nil {
			return nil, err
		}
	}

	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkDSNInput refuses what would go into a header unchecked.
func checkDSNInput(in dsnInput) error {
	if len(in.Blocked) == 0 {
		return fmt.Errorf("%w: no blocked recipient", errDSNInput)
	}
	if in.Hostname == "" || strings.ContainsAny(in.Hostname, " <>@") || hasControl(in.Hostname) || hasNonASCII(in.Hostname) {
		return fmt.Errorf("%w: hostname", errDSNInput)
	}
	if hasControl(in.QueueID) {
		return fmt.Errorf("%w: queue id", errDSNInput)
	}
	if in.Sender == "" || hasControl(in.Sender) {
		return fmt.Errorf("%w: sender", errDSNInput)
	}
	for i, r := range in.Blocked {
		if r.Address == "" || hasControl(r.Address) {
			return fmt.Errorf("%w: blocked recipient %d", errDSNInput, i)
		}
	}
	return nil
}

// dsnText is the first part: what happened, in plain words. cut says the
// original header was cut to dsnHeaderCap.
func dsnText(in dsnInput, msgID string, cut bool) string {
	var b strings.Builder
	line := func(s string) { b.WriteString(s + "\r\n") }

	line("This is the mail system at " + in.Hostname + ".")
	line("")
	line("Your message was accepted, but it was not sent to the recipients below,")
	if p := freeText(in.Purpose); p != "" {
		line(`because the consent policy for the purpose "` + p + `" does not allow`)
		line("mail to them:")
	} else {
		line("because the consent policy does not allow mail to them:")
	}
	line("")
	for _, r := range in.Blocked {
		line("  " + r.Address + ": " + reasonPhrase(freeText(r.Reason)))
	}
	line("")
	line("The message was relayed to its other recipients as usual. Nothing is to")
	line("be retried: write to the recipients above again only once they have")
	line("given their consent.")
	if cut {
		line("")
		line(fmt.Sprintf("The header of your message was cut to its first %d KiB: only the", dsnHeaderCap>>10))
		line("fields that fit whole are attached.")
	}
	if msgID != "" || in.QueueID != "" {
		line("")
	}
	if msgID != "" {
		line("Message-ID: " + msgID)
	}
	if in.QueueID != "" {
		line("Queue ID: " + in.QueueID)
	}
	return b.String()
}

// dsnStatusFields is the second part (rfc/3464:2.1): the per-message
// fields, then a block of per-recipient fields for each blocked recipient,
// each block after an empty line. global is set when an address needs the
// utf-8 address type and so message/global-delivery-status (rfc/6533:3,
// rfc/6533:6.2). A recipient whose local part is ASCII keeps the rfc822
// type, with its domain in A-labels.
func dsnStatusFields(in dsnInput) (fields []byte, global bool, err error) {
	msg := []headerField{{"Reporting-MTA", "dns; " + in.Hostname}} // rfc/3464:2.2.2
	if !in.Arrival.IsZero() {
		msg = append(msg, headerField{"Arrival-Date", in.Arrival.Format(time.RFC1123Z)}) // rfc/3464:2.2.5
	}
	var buf bytes.Buffer
	if err := writeFields(&buf, msg...); err != nil {
		return nil, false, err
	}
	for _, r := range in.Blocked {
		addr, needsUTF8 := wireAddress(r.Address)
		final := "rfc822; " + addr // rfc/3464:2.3.2
		if needsUTF8 {
			final = "utf-8; " + r.Address // rfc/6533:3 utf-8-address
			global = true
		}
		code := statusText(freeText(r.Reason))
		diag := "smtp; 550 " + dsnStatus + " Consent policy: " + statusText(reasonPhrase(code)) // rfc/3464:2.3.6
		buf.WriteString("\r\n")
		if err := writeFields(&buf,
			headerField{"Final-Recipient", final},
			headerField{"Action", "failed"}, // rfc/3464:2.3.3
			headerField{"Status", dsnStatus},
			headerField{"Diagnostic-Code", diag},
		); err != nil {
			return nil, false, err
		}
	}
	return buf.Bytes(), global, nil
}

// reasonPhrase explains a decision reason code in plain words, followed by
// the code itself. An unknown code is shown as it is.
func reasonPhrase(code string) string {
	var why string
	switch r := optin.Reason(code); r {
	case optin.ReasonNoConsent:
		why = "no consent for this purpose is on record"
	case optin.ReasonWithdrawn:
		why = "the recipient withdrew consent or objected"
	case optin.ReasonExpired:
		why = "the recipient's consent has expired"
	case optin.ReasonPendingConfirmation:
		why = "the recipient has not yet confirmed the subscription"
	default:
		s, ok := r.Suppression()
		switch {
		case !ok:
			why = "recipient blocked"
		case s == optin.SuppressHardBounce:
			why = "the address is suppressed: earlier mail to it bounced"
		case s == optin.SuppressComplaint:
			why = "the address is suppressed: the recipient reported earlier mail as spam"
		case s == optin.SuppressUnsubscribedAll:
			why = "the address is suppressed: the recipient unsubscribed from all mail"
		case s == optin.SuppressErased:
			why = "the address is suppressed: the recipient's data was erased on request"
		case s == optin.SuppressManual:
			why = "the address is suppressed by the operator"
		default:
			why = "the address is suppressed"
		}
	}
	if code == "" {
		return why
	}
	return why + " (" + code + ")"
}

// headerBytes is h as written, fields only, with CRLF line endings.
func headerBytes(h textproto.Header) ([]byte, error) {
	var buf bytes.Buffer
	if err := textproto.WriteHeader(&buf, h); err != nil {
		return nil, err
	}
	// Received fields are written as they came, perhaps with bare LFs.
	b := bytes.ReplaceAll(buf.Bytes(), []byte("\r\n"), []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\n")) // the empty line ending the header
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")), nil
}

// capHeader cuts h, a header as headerBytes writes it, after its last
// whole field within max octets (a field with its continuation lines),
// and reports whether anything was cut.
func capHeader(h []byte, max int) ([]byte, bool) {
	if len(h) <= max {
		return h, false
	}
	end, pos := 0, 0
	for l := range bytes.Lines(h) {
		if pos > max {
			break
		}
		if l[0] != ' ' && l[0] != '\t' { // a field starts: the one before ended
			end = pos
		}
		pos += len(l)
	}
	return h[:end], true
}

// headersPartType chooses the type of the third part: text/rfc822-headers
// (rfc/6522:4), message/global-headers when the header holds UTF-8
// (rfc/6533:6.3), and base64 when the header cannot go as it is: a line
// over 998 octets, a stray CR or NUL, or 8-bit data that is not UTF-8.
func headersPartType(h []byte) (mediaType, encoding string) {
	ascii := !hasNonASCII(string(h))
	safe := longestLine(h) <= 998 && !bytes.ContainsAny(h, "\x00") &&
		!bytes.Contains(bytes.ReplaceAll(h, []byte("\r\n"), nil), []byte("\r"))
	switch {
	case safe && ascii:
		return "text/rfc822-headers", "7bit"
	case safe && utf8.Valid(h):
		return "message/global-headers", "8bit"
	case utf8.Valid(h):
		return "text/rfc822-headers; charset=utf-8", "base64"
	default:
		return "text/rfc822-headers", "base64"
	}
}

// writePart adds a part to w with the given Content-Type and
// Content-Transfer-Encoding; go-message applies the encoding.
func writePart(w *gomessage.Writer, contentType, encoding string, body []byte) error {
	h, err := orderedHeader(
		headerField{"Content-Type", contentType},
		headerField{"Content-Transfer-Encoding", encoding},
	)
	if err != nil {
		return err
	}
	pw, err := w.CreatePart(gomessage.Header{Header: h})
	if err != nil {
		return err
	}
	if _, err := pw.Write(body); err != nil {
		return err
	}
	return pw.Close()
}

type headerField struct{ key, value string }

// formatField is one header field as written: folded by go-message, which
// refuses CR and LF in the value, but with the key spelled as given
// (MIME-Version, Reporting-MTA) rather than in Go's canonical case.
func formatField(f headerField) ([]byte, error) {
	var h textproto.Header
	h.Add(f.key, f.value)
	var buf bytes.Buffer
	if err := textproto.WriteHeader(&buf, h); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\r\n")) // the empty line ending the header
	copy(b, f.key)                                     // the canonical key differs only in case
	return b, nil
}

// writeFields writes the fields in order, without an empty line after.
func writeFields(buf *bytes.Buffer, fields ...headerField) error {
	for _, f := range fields {
		b, err := formatField(f)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return nil
}

// orderedHeader builds a header whose fields are written in the order
// given; textproto.Header.Add and AddRaw put each new field on top.
func orderedHeader(fields ...headerField) (textproto.Header, error) {
	var h textproto.Header
	for i := len(fields) - 1; i >= 0; i-- {
		b, err := formatField(fields[i])
		if err != nil {
			return textproto.Header{}, err
		}
		h.AddRaw(b)
	}
	return h, nil
}

// plainMsgID returns id when it is one <id> of printable ASCII, else "":
// the original Message-ID comes from the client.
func plainMsgID(id string) string {
	id = strings.TrimSpace(id)
	if len(id) < 3 || id[0] != '<' || id[len(id)-1] != '>' ||
		strings.ContainsAny(id[1:len(id)-1], "<> ") || hasControl(id) || hasNonASCII(id) {
		return ""
	}
	return id
}

// freeText makes s safe for one header or text line: control characters,
// CR and LF among them, become spaces.
func freeText(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s))
}

// statusText makes s printable ASCII for message/delivery-status.
func statusText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

// longestLine is the length of b's longest line, without its CRLF.
func longestLine(b []byte) int {
	n := 0
	for l := range bytes.Lines(b) {
		n = max(n, len(bytes.TrimSuffix(l, []byte("\r\n"))))
	}
	return n
}

func hasControl(s string) bool { return strings.IndexFunc(s, isControl) >= 0 }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
