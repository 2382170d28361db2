package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

func runImport(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "write")
	c, pos, err := cf.parseConnect(fs, args, 1, "want FILE.csv")
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	raw, err := c.do("POST", "/api/v1/imports?file="+url.QueryEscape(filepath.Base(pos[0])), "text/csv", f)
	if err != nil {
		return err
	}
	var ans struct {
		Rows, Applied, Ignored, Bad int
		BadRows                     []struct {
			Line  int
			Error string
		} `json:"bad_rows"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d rows: %d applied, %d unchanged (already stored or older), %d bad (%.1fs)\n",
		ans.Rows, ans.Applied, ans.Ignored, ans.Bad, time.Since(start).Seconds())
	for _, b := range ans.BadRows {
		fmt.Fprintf(e.stdout, "%s:%d: %s\n", pos[0], b.Line, b.Error)
	}
	if ans.Bad > len(ans.BadRows) {
		fmt.Fprintf(e.stdout, "... and %d more bad rows\n", ans.Bad-len(ans.BadRows))
	}
	if ans.Bad > 0 {
		return exitError{msg: fmt.Sprintf("optinproxy import: %d bad rows were skipped", ans.Bad), code: 1}
	}
	return nil
}

func runExport(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "read")
	format := fs.String("format", "json", "json, csv or xlsx")
	output := fs.String("output", "", "file to write (default: standard output for json and csv, EMAIL.xlsx for xlsx)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want EMAIL")
	}
	if *format != "json" && *format != "csv" && *format != "xlsx" {
		return usagef("--format must be json, csv or xlsx")
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	raw, err := c.do("GET", subjectPath(pos[0])+"/export?format="+url.QueryEscape(*format), "", nil)
	if err != nil {
		return err
	}
	out := *output
	if out == "" && *format == "xlsx" {
		out = filepath.Base(pos[0]) + ".xlsx"
	}
	if out == "" || out == "-" {
		_, err := e.stdout.Write(raw)
		return err
	}
	if err := os.WriteFile(out, raw, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes)\n", out, len(raw))
	return nil
}

func runSuppress(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want add, remove or list")
	}
	verb := args[0]
	fs := flag.NewFlagSet("suppress "+verb, flag.ContinueOnError)
	cf := addClientFlags(fs, e, suppressScope(verb))
	reason := fs.String("reason", "", "unsubscribed_all, hard_bounce, complaint or manual; remove also takes erased (the erase scope: the person came back)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	switch verb {
	case "add", "remove":
		if len(pos) != 1 {
			return usagef("want EMAIL")
		}
	case "list":
		if len(pos) != 0 {
			return usagef("list takes no arguments")
		}
	default:
		return usagef("unknown subcommand %q: want add, remove or list", verb)
	}
	if *reason == "erased" {
		cf.scope = "erase"
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		var ans struct {
			Email   string
			Reason  string
			Applied bool
		}
		if err := c.json("POST", "/api/v1/suppressions", map[string]string{"email": pos[0], "reason": *reason}, &ans); err != nil {
			return err
		}
		if ans.Applied {
			fmt.Fprintf(e.stdout, "%s suppressed (%s)\n", ans.Email, ans.Reason)
		} else {
			fmt.Fprintf(e.stdout, "%s was already suppressed (%s)\n", ans.Email, ans.Reason)
		}
	case "remove":
		path := "/api/v1/suppressions/" + url.PathEscape(pos[0])
		if *reason != "" {
			path += "?reason=" + url.QueryEscape(*reason)
		}
		var ans struct {
			Email   string
			Removed []string
		}
		if err := c.json("DELETE", path, nil, &ans); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: removed %v\n", ans.Email, ans.Removed)
	case "list":
		cursor := ""
		for {
			var page struct {
				Suppressions []struct {
					Email     string
					Reason    string
					CreatedAt time.Time `json:"created_at"`
				}
				NextCursor string `json:"next_cursor"`
			}
			if err := c.json("GET", "/api/v1/suppressions?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
				return err
			}
			for _, s := range page.Suppressions {
				fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", s.Email, s.Reason, s.CreatedAt.Format(time.RFC3339))
			}
			if page.NextCursor == "" {
				return nil
			}
			cursor = page.NextCursor
		}
	}
	return nil
}
