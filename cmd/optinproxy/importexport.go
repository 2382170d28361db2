package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"optinproxy/internal/plural"
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
	fmt.Fprintf(e.stdout, "%s: %d applied, %d unchanged (already stored or older), %d bad (%.1fs)\n",
		plural.Count(ans.Rows, "row"), ans.Applied, ans.Ignored, ans.Bad, time.Since(start).Seconds())
	for _, b := range ans.BadRows {
		fmt.Fprintf(e.stdout, "%s:%d: %s\n", pos[0], b.Line, b.Error)
	}
	if ans.Bad > len(ans.BadRows) {
		fmt.Fprintf(e.stdout, "... and %s more\n", plural.Count(ans.Bad-len(ans.BadRows), "bad row"))
	}
	if ans.Bad > 0 {
		verb := "were"
		if ans.Bad == 1 {
			verb = "was"
		}
		return exitError{msg: fmt.Sprintf("optinproxy import: %s %s skipped", plural.Count(ans.Bad, "bad row"), verb), code: 1}
	}
	return nil
}

func runExport(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "read")
	format := fs.String("format", "json", "json, csv or xlsx")
	output := fs.String("output", "", "file to write, - for standard output (default: standard output; xlsx to a terminal: EMAIL.xlsx)")
	force := fs.Bool("force", false, "overwrite the file written (--output, or EMAIL.xlsx) if it exists")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want EMAIL")
	}
	if *format != "json" && *format != "csv" && *format != "xlsx" {
		return usagef("--format %q: want json, csv or xlsx", *format)
	}
	out := *output
	if out == "" && *format == "xlsx" && isTerminal(e.stdout) {
		// A workbook is binary: on a terminal it would be noise, so it
		// goes to a file; piped or redirected it goes where it is sent.
		out = filepath.Base(pos[0]) + ".xlsx"
	}
	if out != "" && out != "-" && !*force {
		// Checked before the request so that nothing is fetched in vain;
		// O_EXCL below still refuses a file that appears meanwhile.
		if _, err := os.Lstat(out); err == nil {
			return exitError{msg: fmt.Sprintf("optinproxy export: %s exists; give --force to overwrite it, or another --output", out), code: 1}
		}
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	raw, err := c.do("GET", subjectPath(pos[0])+"/export?format="+url.QueryEscape(*format), "", nil)
	if err != nil {
		return err
	}
	if out == "" || out == "-" {
		_, err := e.stdout.Write(raw)
		return err
	}
	if err := writeNew(out, raw, *force); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes)\n", out, len(raw))
	return nil
}

// writeNew writes b to a file created for it; an existing file is
// overwritten only when force is set.
func writeNew(name string, b []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(name, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return exitError{msg: fmt.Sprintf("optinproxy export: %s exists; give --force to overwrite it, or another --output", name), code: 1}
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isTerminal says whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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
