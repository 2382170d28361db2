package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

// runErase is `optinproxy erase EMAIL [--at TIME] [--cancel]`: erase a
// subject now, schedule its erasure, or cancel a scheduled one, through
// the admin API (a token with the erase scope).
func runErase(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "erase")
	at := fs.String("at", "", "erase at this time (RFC 3339, or YYYY-MM-DD for midnight UTC) instead of now; cancellable until then")
	cancel := fs.Bool("cancel", false, "cancel the scheduled erasure")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want EMAIL")
	}
	if *cancel && *at != "" {
		return usagef("--cancel takes no --at")
	}
	body := map[string]any{}
	if *at != "" {
		t, err := parseEraseTime(*at)
		if err != nil {
			return usagef("--at %q: want an RFC 3339 time such as 2026-07-01T09:00:00Z, or a date", *at)
		}
		// The API erases at once for a time gone by; from the command
		// line that is more likely a mistyped date, and cannot be undone.
		if t.Before(time.Now()) {
			return usagef("--at %s is in the past; to erase now, leave --at out", t.UTC().Format(time.RFC3339))
		}
		body["at"] = t
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	var ans struct {
		Email   string     `json:"email"`
		Status  string     `json:"status"`
		At      *time.Time `json:"at"`
		Applied bool       `json:"applied"`
	}
	method := "POST"
	if *cancel {
		method, body = "DELETE", nil
	}
	var send any
	if len(body) > 0 {
		send = body
	}
	if err := c.json(method, subjectPath(pos[0])+"/erasure", send, &ans); err != nil {
		return err
	}
	switch {
	case ans.Status == "scheduled" && ans.At != nil:
		fmt.Fprintf(e.stdout, "%s: erasure scheduled for %s (cancel with: optinproxy erase %s --cancel)\n", ans.Email, ans.At.UTC().Format(time.RFC3339), ans.Email)
	case ans.Status == "erased" && !ans.Applied:
		fmt.Fprintf(e.stdout, "%s: erased already\n", ans.Email)
	default:
		fmt.Fprintf(e.stdout, "%s: %s\n", ans.Email, ans.Status)
	}
	return nil
}

// parseEraseTime reads --at: RFC 3339, or a date (midnight UTC).
func parseEraseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02", s)
}
