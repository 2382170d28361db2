package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// noProofPage is one page of GET /api/v1/reports/no-proof.
type noProofPage struct {
	Consents []struct {
		Email     string    `json:"email"`
		Purpose   string    `json:"purpose"`
		Status    string    `json:"status"`
		Source    string    `json:"source"`
		GrantedAt time.Time `json:"granted_at"`
		UpdatedAt time.Time `json:"updated_at"`
		Missing   []string  `json:"missing"`
	} `json:"consents"`
	NextCursor string `json:"next_cursor"`
}

func runReport(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	cf := addClientFlags(fs, e)
	asJSON := fs.Bool("json", false, "print the API's JSON, one page per line")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "no-proof" {
		return usagef("want a report: no-proof")
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "EMAIL\tPURPOSE\tSTATUS\tSOURCE\tGRANTED\tMISSING")
	}
	n := 0
	for cursor, pages := "", 0; ; pages++ {
		var page noProofPage
		raw, err := c.do("GET", "/api/v1/reports/no-proof?limit=1000&cursor="+url.QueryEscape(cursor), "", nil)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		if *asJSON {
			fmt.Fprintln(e.stdout, strings.TrimSpace(string(compactJSON(raw))))
		}
		for _, r := range page.Consents {
			n++
			if *asJSON {
				continue
			}
			granted := "unknown"
			if !r.GrantedAt.IsZero() {
				granted = r.GrantedAt.UTC().Format("2006-01-02")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Email, r.Purpose, r.Status, r.Source, granted, strings.Join(r.Missing, ", "))
		}
		if page.NextCursor == "" || page.NextCursor == cursor || pages > 1_000_000 {
			break
		}
		cursor = page.NextCursor
	}
	if !*asJSON {
		tw.Flush()
		fmt.Fprintf(e.stdout, "%d consents without full proof\n", n)
	}
	return nil
}

func compactJSON(raw []byte) []byte {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	b, _ := json.Marshal(v)
	return b
}
