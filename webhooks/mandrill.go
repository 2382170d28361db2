package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"optinproxy/optin"
)

// maxMandrillEvents is the most events Mandrill puts in one POST.
const maxMandrillEvents = 1000

// mandrillEvent is one element of mandrill_events. Sync events (type
// whitelist or blacklist) have no msg and are not applied.
type mandrillEvent struct {
	Event string       `json:"event"`
	Type  string       `json:"type"` // set on sync events only
	ID    string       `json:"_id"`
	TS    int64        `json:"ts"`
	Msg   *mandrillMsg `json:"msg"`
}

type mandrillMsg struct {
	Email    string         `json:"email"`
	Sender   string         `json:"sender"`
	Metadata map[string]any `json:"metadata"`
	// Mandrill's message-event documentation gives a reject event no
	// reason; when a payload carries one (reject_reason, as the messages
	// API names it, or a reject object as sync events have), it is used.
	RejectReason string `json:"reject_reason"`
	Reject       *struct {
		Reason string `json:"reason"`
	} `json:"reject"`
}

// MandrillSignature is the X-Mandrill-Signature of a POST of form to the
// webhook registered at rawURL with key: base64 of HMAC-SHA1 over the URL
// followed by each field's name and value, fields sorted by name.
func MandrillSignature(key, rawURL string, form url.Values) string {
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write([]byte(rawURL))
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range form[name] {
			mac.Write([]byte(name))
			mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// serveMandrill answers Mandrill's HEAD check and applies a POSTed batch:
// each event once (by its id), the batch acknowledged when every event is
// recorded. One event that cannot be read (no address, a bad one) is
// skipped and counted invalid rather than failing its 999 neighbours;
// a batch that cannot be read at all is a 400.
func (rc *Receiver) serveMandrill(w http.ResponseWriter, r *http.Request) {
	if rc.mandrill.Key == "" {
		writeError(w, http.StatusNotFound, "not_found", "no Mandrill webhook is configured")
		return
	}
	switch r.Method {
	case http.MethodHead:
		ok(w) // Mandrill checks the URL with a HEAD when the webhook is added
		return
	case http.MethodPost:
	default:
		notAllowed(w, "HEAD, POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		rc.fail(w, r, "mandrill", badField("Content-Type", "want application/x-www-form-urlencoded"))
		return
	}
	body, err := readBody(w, r, rc.maxBatch)
	if err != nil {
		rc.fail(w, r, "mandrill", err)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		rc.fail(w, r, "mandrill", badField("body", "not form-encoded"))
		return
	}
	want := MandrillSignature(rc.mandrill.Key, rc.mandrill.URL, form)
	if !hmac.Equal([]byte(r.Header.Get("X-Mandrill-Signature")), []byte(want)) {
		rc.count("mandrill", outcomeRejected)
		unauthorized(w, "missing or wrong X-Mandrill-Signature")
		return
	}
	events, err := parseMandrill(form)
	if err != nil {
		rc.fail(w, r, "mandrill", err)
		return
	}
	for i, ev := range events {
		if err := rc.applyMandrillEvent(r.Context(), i, ev); err != nil {
			rc.fail(w, r, "mandrill", err)
			return
		}
	}
	ok(w)
}

func parseMandrill(form url.Values) ([]mandrillEvent, error) {
	raw := form.Get("mandrill_events")
	if raw == "" {
		return nil, badField("mandrill_events", "required")
	}
	var events []mandrillEvent
	if err := json.Unmarshal([]byte(raw), &events); err != nil {
		return nil, badField("mandrill_events", "not a JSON array of events: %v", err)
	}
	if len(events) > maxMandrillEvents {
		return nil, badField("mandrill_events", "%d events, at most %d", len(events), maxMandrillEvents)
	}
	return events, nil
}

// applyMandrillEvent records one event of a batch (its index i is for the
// log); it returns only errors that should fail the batch (the store's).
func (rc *Receiver) applyMandrillEvent(ctx context.Context, i int, ev mandrillEvent) error {
	kind := mandrillKind(ev)
	if kind == "" {
		rc.count("mandrill", outcomeIgnored)
		return nil
	}
	a, err := optin.ParseAddress(ev.Msg.Email)
	if err != nil || ev.ID == "" {
		rc.count("mandrill", outcomeInvalid)
		rc.log.Warn("mandrill event skipped: no _id or no valid msg.email", "index", i, "event", ev.Event)
		return nil
	}
	// Mandrill's _id is the message's id, which all events about one
	// message share (send, open, spam, ...): the event's name and time
	// make it the id of this delivery.
	key := dedupKey("mandrill", ev.ID+":"+ev.Event+":"+strconv.FormatInt(ev.TS, 10))
	var changed bool
	applied, err := rc.once(ctx, key, func() (err error) {
		changed, err = rc.applyMandrill(ctx, kind, a, ev)
		return err
	})
	switch {
	case err != nil:
		return err
	case !applied:
		rc.count("mandrill", outcomeDuplicate)
	default:
		rc.count("mandrill", outcomeOf(changed))
		if ev.Event == "spam" {
			rc.complaint.record(senderDomain(ev.Msg.Sender))
		}
	}
	return nil
}

// What a Mandrill event does to the ledger.
const (
	mandrillHardBounce = "hard_bounce"
	mandrillComplaint  = "complaint"
	mandrillUnsub      = "unsub"
)

// mandrillKind maps an event to what it records, "" for nothing:
// hard_bounce is a hard_bounce suppression, spam a complaint, unsub a
// withdrawal. A reject (Mandrill did not send because the address is on
// its denylist) is mapped by the denylist reason when the payload has one:
// hard-bounce and invalid as a hard bounce, spam as a complaint, unsub as
// an unsubscribe. Without a reason, or with soft-bounce (an entry that
// expires by itself), custom (an entry added by hand or by this proxy's own
// denylist sync: recording it would echo it back) or a sender-side reason,
// it records nothing. Sync events (whitelist, blacklist) record nothing.
func mandrillKind(ev mandrillEvent) string {
	if ev.Msg == nil || ev.Type != "" {
		return ""
	}
	switch ev.Event {
	case "hard_bounce":
		return mandrillHardBounce
	case "spam":
		return mandrillComplaint
	case "unsub":
		return mandrillUnsub
	case "reject":
		reason := ev.Msg.RejectReason
		if reason == "" && ev.Msg.Reject != nil {
			reason = ev.Msg.Reject.Reason
		}
		switch reason {
		case "hard-bounce", "invalid":
			return mandrillHardBounce
		case "spam":
			return mandrillComplaint
		case "unsub":
			return mandrillUnsub
		}
	}
	return ""
}

// applyMandrill records one event of kind for a.
func (rc *Receiver) applyMandrill(ctx context.Context, kind string, a optin.Address, ev mandrillEvent) (bool, error) {
	switch kind {
	case mandrillHardBounce:
		res, err := rc.ledger.Suppress(ctx, a, optin.SuppressHardBounce, ActorMandrill)
		return res.Applied, err
	case mandrillComplaint:
		res, err := rc.ledger.Suppress(ctx, a, optin.SuppressComplaint, ActorMandrill)
		return res.Applied, err
	}
	// unsub: the purpose the sender put in the message's metadata, when
	// this proxy knows it; else every marketing purpose.
	if p, _ := ev.Msg.Metadata["purpose"].(string); p != "" {
		if _, known := rc.ledger.Purposes()[p]; known {
			res, err := rc.ledger.Withdraw(ctx, a, p, optin.ConsentChange{Source: SourceMandrill, Actor: ActorMandrill,
				At: mandrillTime(ev.TS, rc.now()), Evidence: optin.Evidence{Extra: extra("mandrill_id", ev.ID)}})
			return res.Applied, err
		}
	}
	res, err := rc.ledger.Suppress(ctx, a, optin.SuppressUnsubscribedAll, ActorMandrill)
	return res.Applied, err
}

// mandrillTime is the time of an event: ts, but never after now (the
// ledger refuses changes from the future), and now when ts is missing.
func mandrillTime(ts int64, now time.Time) time.Time {
	if ts <= 0 {
		return now
	}
	if t := time.Unix(ts, 0).UTC(); t.Before(now) {
		return t
	}
	return now
}

// senderDomain is the domain of a From address, "" when it has none.
func senderDomain(sender string) string {
	a, err := optin.ParseAddress(sender)
	if err != nil {
		return ""
	}
	return a.Domain()
}
