package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"optinproxy/optin"
)

func runConsent(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want grant, withdraw or show")
	}
	switch args[0] {
	case "grant", "withdraw":
		return runConsentChange(e, args[0], args[1:])
	case "show":
		return runConsentShow(e, args[1:])
	}
	return usagef("unknown subcommand %q: want grant, withdraw or show", args[0])
}

// evidenceFlags collects --evidence key=value pairs.
type evidenceFlags map[string]string

func (f evidenceFlags) String() string { return "" }
func (f evidenceFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	f[k] = v
	return nil
}

func runConsentChange(e *env, verb string, args []string) error {
	fs := flag.NewFlagSet("consent "+verb, flag.ContinueOnError)
	cf := addClientFlags(fs, e, "write")
	source := fs.String("source", "", "where the change comes from (form, crm, import, ...; default api)")
	basis := fs.String("basis", "", "lawful basis (default: the purpose's)")
	ip := fs.String("ip", "", "evidence: the subject's IP address")
	ua := fs.String("user-agent", "", "evidence: the subject's browser")
	text := fs.String("text", "", "evidence: the text the subject agreed to")
	policy := fs.String("policy-version", "", "evidence: privacy-policy version (default: the current one)")
	extra := evidenceFlags{}
	fs.Var(extra, "evidence", "evidence key=value (repeatable)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want EMAIL PURPOSE")
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	ev := map[string]string{}
	for k, v := range extra {
		ev[k] = v
	}
	for k, v := range map[string]string{"ip": *ip, "user_agent": *ua, "text": *text, "policy_version": *policy} {
		if v != "" {
			ev[k] = v
		}
	}
	body := map[string]any{}
	if *source != "" {
		body["source"] = *source
	}
	if *basis != "" {
		body["basis"] = *basis
	}
	if len(ev) > 0 {
		body["evidence"] = ev
	}
	method := "PUT"
	if verb == "withdraw" {
		method = "DELETE"
	}
	var ans struct {
		Email   string        `json:"email"`
		Applied bool          `json:"applied"`
		Consent optin.Consent `json:"consent"`
	}
	if err := c.json(method, subjectPath(pos[0])+"/consents/"+url.PathEscape(pos[1]), body, &ans); err != nil {
		return err
	}
	if !ans.Applied {
		fmt.Fprintf(e.stdout, "%s %s: unchanged, already %s (since %s)\n", ans.Email, ans.Consent.Purpose, ans.Consent.Status, ans.Consent.UpdatedAt.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(e.stdout, "%s %s: %s (basis %s, source %s, event %s)\n", ans.Email, ans.Consent.Purpose, ans.Consent.Status, ans.Consent.Basis, ans.Consent.Source, ans.Consent.EventID)
	return nil
}

func runConsentShow(e *env, args []string) error {
	fs := flag.NewFlagSet("consent show", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "read")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	c, pos, err := cf.parseConnect(fs, args, 1, "want EMAIL")
	if err != nil {
		return err
	}
	raw, err := c.do("GET", subjectPath(pos[0]), "", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := e.stdout.Write(raw)
		return err
	}
	var v struct {
		Email        string          `json:"email"`
		Erased       bool            `json:"erased"`
		Consents     []optin.Consent `json:"consents"`
		Suppressions []struct {
			Reason    string    `json:"reason"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"suppressions"`
		Events []shownEvent `json:"events"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	heading := v.Email
	if v.Erased {
		heading += " (erased: its history is kept, but can no longer be read)"
	}
	printSubject(e.stdout, heading, v.Consents, v.Events)
	for _, s := range v.Suppressions {
		fmt.Fprintf(e.stdout, "suppressed: %s since %s\n", s.Reason, s.CreatedAt.Format(time.RFC3339))
	}
	return nil
}

// shownEvent is an event of the API's answer as show prints it. Its
// subject is a plain string: an erased subject's events carry "", which
// optin.Address would refuse.
type shownEvent struct {
	Time    time.Time       `json:"time"`
	Type    optin.EventType `json:"type"`
	Purpose string          `json:"purpose"`
	Actor   string          `json:"actor"`
	Details json.RawMessage `json:"details"`
	Hash    string          `json:"hash"`
	Erased  bool            `json:"erased"`
}

func printSubject(w io.Writer, heading string, consents []optin.Consent, events []shownEvent) {
	fmt.Fprintf(w, "%s\n\n", heading)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PURPOSE\tSTATUS\tBASIS\tSOURCE\tGRANTED\tUPDATED\tEXPIRES\tEVIDENCE")
	for _, c := range consents {
		ev := ""
		if c.Evidence != nil {
			b, _ := json.Marshal(c.Evidence)
			ev = string(b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Purpose, c.Status, c.Basis, c.Source,
			day(c.GrantedAt), day(c.UpdatedAt), day(c.ExpiresAt), ev)
	}
	tw.Flush()
	if len(events) == 0 {
		return
	}
	fmt.Fprintf(w, "\nhistory:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tPURPOSE\tACTOR\tHASH\tDETAIL")
	for _, ev := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.12s\t%s\n", ev.Time.Format(time.RFC3339), ev.Type, ev.Purpose, ev.Actor, ev.Hash, detail(ev))
	}
	tw.Flush()
}

// detail sums up a message receipt: the decision, its reason, the
// message, and the consent event it rested on. An erased subject's events
// can no longer be read.
func detail(ev shownEvent) string {
	if ev.Erased {
		return "(erased)"
	}
	if ev.Type != optin.EventMessageRelayed && ev.Type != optin.EventMessageBlocked {
		return ""
	}
	var d optin.ReceiptDetails
	if json.Unmarshal(ev.Details, &d) != nil {
		return ""
	}
	out := d.Decision + " " + string(d.Reason)
	if d.Mode != "" {
		out += " (" + d.Mode + ")"
	}
	if d.MessageID != "" {
		out += " " + d.MessageID
	}
	if d.ConsentEvent != "" {
		out += " by " + d.ConsentEvent
	}
	return out
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func runVerify(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "read")
	c, _, err := cf.parseConnect(fs, args, 0, "takes no arguments")
	if err != nil {
		return err
	}
	var rep optin.VerifyReport
	if err := c.json("GET", "/api/v1/verify", nil, &rep); err != nil {
		return err
	}
	return printVerify(e.stdout, "verify", rep)
}
