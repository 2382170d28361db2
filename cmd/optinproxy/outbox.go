package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// deliveryJSON is one delivery as GET /api/v1/outbox/{status} lists it.
type deliveryJSON struct {
	ID        string    `json:"id"`
	Target    string    `json:"target"`
	EventType string    `json:"event_type"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	Created   time.Time `json:"created"`
	NextAt    time.Time `json:"next_at"`
	LastError string    `json:"last_error"`
	DoneAt    time.Time `json:"done_at"`
}

// runOutbox: outbox list [--status dead|pending|retired] [--target T],
// outbox replay ID... or outbox replay --all [--target T].
func runOutbox(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want list or replay")
	}
	verb := args[0]
	fs := flag.NewFlagSet("outbox "+verb, flag.ContinueOnError)
	cf := addClientFlags(fs, e, outboxScope(verb))
	status := fs.String("status", "dead", "list: dead, pending or retired")
	target := fs.String("target", "", "only this target (hook-..., mailchimp-..., mandrill-rejects)")
	all := fs.Bool("all", false, "replay: every dead delivery (of --target, when given)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if len(pos) != 0 {
			return usagef("list takes no arguments")
		}
		if *status != "dead" && *status != "pending" && *status != "retired" {
			return usagef("--status %q: want dead, pending or retired", *status)
		}
	case "replay":
		if *all == (len(pos) > 0) {
			return usagef("want the ids of dead deliveries (see outbox list), or --all")
		}
	default:
		return usagef("unknown subcommand %q: want list or replay", verb)
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	if verb == "replay" {
		ids := pos
		if *all {
			ds, err := listDeliveries(c, "dead", *target)
			if err != nil {
				return err
			}
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
		}
		for _, id := range ids {
			var d deliveryJSON
			if err := c.json("POST", "/api/v1/outbox/dead/"+url.PathEscape(id)+"/replay", nil, &d); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: pending again\n", d.ID)
		}
		if len(ids) == 0 {
			fmt.Fprintln(e.stdout, "no dead deliveries")
		}
		return nil
	}
	ds, err := listDeliveries(c, *status, *target)
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		fmt.Fprintf(e.stdout, "no %s deliveries\n", *status)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tATTEMPTS\tCREATED\tNEXT/DONE\tLAST ERROR")
	for _, d := range ds {
		when := d.NextAt
		if *status != "pending" {
			when = d.DoneAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventType, d.Attempts, stamp(d.Created), stamp(when), d.LastError)
	}
	return tw.Flush()
}

func listDeliveries(c *client, status, target string) ([]deliveryJSON, error) {
	var out []deliveryJSON
	for cursor := ""; ; {
		var page struct {
			Deliveries []deliveryJSON `json:"deliveries"`
			NextCursor string         `json:"next_cursor"`
		}
		q := url.Values{"limit": {"1000"}, "cursor": {cursor}, "target": {target}}
		if err := c.json("GET", "/api/v1/outbox/"+status+"?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Deliveries...)
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// runSync: sync mailchimp asks the server to pull its configured
// audience into the ledger, and prints what it did.
func runSync(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "write")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "mailchimp" {
		return usagef("want: sync mailchimp")
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	var report map[string]json.RawMessage
	if err := c.json("POST", "/api/v1/sync/mailchimp", nil, &report); err != nil {
		return err
	}
	var counts []string
	for _, k := range slices.Sorted(maps.Keys(report)) {
		var n int
		if json.Unmarshal(report[k], &n) == nil {
			counts = append(counts, fmt.Sprintf("%s %d", k, n))
		}
	}
	// The members that could not be recorded, by their place in the
	// audience and Mailchimp's id: the answer names no address.
	var bad []struct {
		Offset   int    `json:"offset"`
		MemberID string `json:"member_id"`
		Reason   string `json:"reason"`
	}
	json.Unmarshal(report["bad"], &bad)
	for _, b := range bad {
		fmt.Fprintf(e.stderr, "member %d (id %s): %s\n", b.Offset, b.MemberID, b.Reason)
	}
	parts := counts
	fmt.Fprintln(e.stdout, "mailchimp sync done: "+strings.Join(parts, ", "))
	return nil
}
