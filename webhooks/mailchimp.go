package webhooks

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"optinproxy/optin"
)

// mailchimpTime is the layout of fired_at: "2009-03-26 21:35:57", UTC.
const mailchimpTime = "2006-01-02 15:04:05"

// mailchimpEvent is one audience webhook, as read from its form.
type mailchimpEvent struct {
	Type     string
	At       time.Time
	List     string
	Email    optin.Address // subscribe, unsubscribe, profile, cleaned
	OldEmail optin.Address // upemail
	NewEmail optin.Address // upemail
	Form     url.Values
}

// serveMailchimp answers Mailchimp's validation GET (and HEAD), and
// applies a POSTed event. Mailchimp signs nothing: the secret in the path
// is the credential, compared in constant time.
func (rc *Receiver) serveMailchimp(w http.ResponseWriter, r *http.Request) {
	if rc.mailchimp.Secret == "" {
		writeError(w, http.StatusNotFound, "not_found", "no Mailchimp webhook is configured")
		return
	}
	if !secretEqual(r.PathValue("secret"), rc.mailchimp.Secret) {
		rc.count("mailchimp", outcomeRejected)
		unauthorized(w, "wrong secret")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ok(w) // Mailchimp checks the URL with a GET when the webhook is added
		return
	case http.MethodPost:
	default:
		notAllowed(w, "GET, HEAD, POST")
		return
	}
	ev, err := rc.readMailchimp(w, r)
	if err != nil {
		rc.fail(w, r, "mailchimp", err)
		return
	}
	purpose, known := rc.mailchimp.Lists[ev.List]
	switch {
	case ev.Type == "campaign", ev.Type == "profile", !mailchimpTypes[ev.Type]:
		// profile: a change of merge fields (name, interests) changes no
		// consent, and the ledger keeps no profile, so there is nothing to
		// record; campaign: a campaign was sent; unknown types are
		// Mailchimp's to add. 200, so that Mailchimp does not retry.
		rc.count("mailchimp", outcomeIgnored)
		ok(w)
		return
	case !known:
		// 200 and not 400: Mailchimp retries a failed delivery and then
		// disables the webhook; a list this proxy does not map is a
		// configuration matter, said once per event in the log.
		rc.count("mailchimp", outcomeIgnored)
		rc.log.Warn("mailchimp event for a list no purpose is mapped to; ignored", "list_id", ev.List, "type", ev.Type)
		ok(w)
		return
	}
	var changed bool
	applied, err := rc.once(r.Context(), dedupKey("mailchimp", ev.Form.Encode()), func() (err error) {
		changed, err = rc.applyMailchimp(r.Context(), ev, purpose)
		return err
	})
	if err != nil {
		rc.fail(w, r, "mailchimp", err)
		return
	}
	switch {
	case !applied:
		rc.count("mailchimp", outcomeDuplicate)
	default:
		rc.count("mailchimp", outcomeOf(changed))
	}
	ok(w)
}

var mailchimpTypes = map[string]bool{"subscribe": true, "unsubscribe": true, "profile": true, "upemail": true, "cleaned": true, "campaign": true}

// readMailchimp reads and checks the form of one event.
func (rc *Receiver) readMailchimp(w http.ResponseWriter, r *http.Request) (mailchimpEvent, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return mailchimpEvent{}, badField("Content-Type", "want application/x-www-form-urlencoded")
	}
	body, err := readBody(w, r, rc.maxBody)
	if err != nil {
		return mailchimpEvent{}, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return mailchimpEvent{}, badField("body", "not form-encoded")
	}
	// Values are kept as evidence: a trailing newline (a body posted from
	// a file) is not part of an IP address.
	for _, vs := range form {
		for i := range vs {
			vs[i] = strings.TrimSpace(vs[i])
		}
	}
	ev := mailchimpEvent{Type: form.Get("type"), List: form.Get("data[list_id]"), Form: form}
	if ev.Type == "" {
		return ev, badField("type", "required")
	}
	if !mailchimpTypes[ev.Type] || ev.Type == "campaign" || ev.Type == "profile" {
		return ev, nil // not read further: nothing of it is applied
	}
	fired := form.Get("fired_at")
	if fired == "" {
		return ev, badField("fired_at", "required")
	}
	if ev.At, err = time.ParseInLocation(mailchimpTime, fired, time.UTC); err != nil {
		return ev, badField("fired_at", "want YYYY-MM-DD HH:MM:SS (UTC)")
	}
	if ev.List == "" {
		return ev, badField("data[list_id]", "required")
	}
	if ev.Type == "upemail" {
		if ev.OldEmail, err = formAddress(form, "data[old_email]"); err != nil {
			return ev, err
		}
		ev.NewEmail, err = formAddress(form, "data[new_email]")
		return ev, err
	}
	ev.Email, err = formAddress(form, "data[email]")
	return ev, err
}

// formAddress parses the address in field; the error names the field and
// says what is wrong without repeating the address.
func formAddress(form url.Values, field string) (optin.Address, error) {
	s := form.Get(field)
	if s == "" {
		return optin.Address{}, badField(field, "required")
	}
	a, err := optin.ParseAddress(s)
	if err != nil {
		return optin.Address{}, badField(field, "%v", err)
	}
	return a, nil
}

// applyMailchimp records ev for purpose and reports whether the ledger
// changed anything. subscribe grants (or records pending for a double
// opt-in purpose); unsubscribe withdraws, and an abuse report adds a
// complaint suppression too; cleaned adds a hard_bounce suppression (a
// complaint for abuse); upemail moves the subject.
func (rc *Receiver) applyMailchimp(ctx context.Context, ev mailchimpEvent, purpose string) (bool, error) {
	f := ev.Form
	switch ev.Type {
	case "subscribe":
		res, err := rc.ledger.Grant(ctx, ev.Email, purpose, optin.ConsentChange{
			Source: optin.SourceMailchimp, Actor: ActorMailchimp, At: ev.At,
			Evidence: optin.Evidence{IP: f.Get("data[ip_opt]"), Extra: extra(
				"ip_signup", f.Get("data[ip_signup]"), "mailchimp_id", f.Get("data[id]"), "list_id", ev.List)},
		})
		return res.Applied, err
	case "unsubscribe":
		// action is unsub or delete: either way the member no longer gets
		// the list's mail.
		res, err := rc.ledger.Withdraw(ctx, ev.Email, purpose, optin.ConsentChange{
			Source: optin.SourceMailchimp, Actor: ActorMailchimp, At: ev.At,
			Evidence: optin.Evidence{Extra: extra("list_id", ev.List, "action", f.Get("data[action]"),
				"reason", f.Get("data[reason]"), "campaign_id", f.Get("data[campaign_id]"))},
		})
		if err != nil || f.Get("data[reason]") != "abuse" {
			return res.Applied, err
		}
		sup, err := rc.ledger.Suppress(ctx, ev.Email, optin.SuppressComplaint, ActorMailchimp)
		return res.Applied || sup.Applied, err
	case "cleaned":
		reason := optin.SuppressHardBounce
		if f.Get("data[reason]") == "abuse" {
			reason = optin.SuppressComplaint
		}
		res, err := rc.ledger.Suppress(ctx, ev.Email, reason, ActorMailchimp)
		return res.Applied, err
	case "upemail":
		res, err := rc.ledger.Move(ctx, ev.OldEmail, ev.NewEmail, ActorMailchimp, ev.At)
		return res.Moved, err
	}
	return false, nil
}

// extra makes Evidence.Extra of key/value pairs, leaving out empty values;
// nil when all are empty.
func extra(kv ...string) map[string]string {
	var m map[string]string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}
