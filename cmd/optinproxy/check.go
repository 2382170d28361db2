package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"optinproxy/internal/plural"
)

// checkBatch is how many addresses one POST /api/v1/check takes.
const checkBatch = 10_000

// runCheck: check FILE.csv --purpose P answers each address's decision
// for the purpose as the relay would decide it now, without sending
// anything, as CSV email,decision,reason on standard output, in the
// file's order. The file is a CSV with an email column, or one address a
// line; it is read whole before anything is asked, so that a bad line is
// found before any output.
func runCheck(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "read")
	purpose := fs.String("purpose", "", "the purpose to decide for (required)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want FILE.csv (a CSV with an email column, or one address a line; - for standard input)")
	}
	if *purpose == "" {
		return usagef("want --purpose, e.g. --purpose newsletter")
	}
	var in io.Reader = e.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	emails, err := readCheckList(in)
	if err != nil {
		name := pos[0]
		if name == "-" {
			name = "standard input"
		}
		return fmt.Errorf("%s:%w", name, err)
	}
	if emails == nil {
		emails = []string{} // sent as [], which the API takes; null it refuses
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	out := csv.NewWriter(e.stdout)
	out.Write([]string{"email", "decision", "reason"})
	allowed, blocked, mode := 0, 0, ""
	// An empty list is asked too: the server still checks the purpose.
	for start := 0; ; start += checkBatch {
		batch := emails[start:min(start+checkBatch, len(emails))]
		var ans struct {
			Mode    string `json:"mode"`
			Results []struct{ Email, Decision, Reason string }
		}
		if err := c.json("POST", "/api/v1/check", map[string]any{"purpose": *purpose, "emails": batch}, &ans); err != nil {
			return err
		}
		if len(ans.Results) != len(batch) {
			return fmt.Errorf("the server answered %d results for %d addresses", len(ans.Results), len(batch))
		}
		mode = ans.Mode
		for i, r := range ans.Results {
			out.Write([]string{csvSafe(batch[i]), r.Decision, r.Reason})
			if r.Decision == "allow" {
				allowed++
			} else {
				blocked++
			}
		}
		if start+checkBatch >= len(emails) {
			break
		}
	}
	out.Flush()
	if err := out.Error(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%s: %d allowed, %d blocked for %s\n", plural.Count(len(emails), "address"), allowed, blocked, *purpose)
	if mode == "monitor" {
		fmt.Fprintln(e.stderr, "the proxy runs in monitor mode (policy.mode): it relays to the blocked addresses too, and records that they were blocked")
	}
	return nil
}

// errCheckFile is a list the check cannot read; its message names the line.
var errCheckFile = errors.New("not a list of addresses")

// readCheckList reads the addresses of a check: a CSV whose header has an
// email column (any case), or else one address a line (blank lines
// skipped). Errors name the line, as "LINE: ...".
func readCheckList(r io.Reader) ([]string, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
	if !utf8.Valid(raw) {
		line := 1 + bytes.Count(raw[:firstInvalid(raw)], []byte("\n"))
		return nil, fmt.Errorf("%d: %w: the text is not UTF-8", line, errCheckFile)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	// Columns are separated by commas, or by semicolons as Excel writes
	// them in languages with a decimal comma; the header row decides.
	sep := ','
	if strings.Count(first, ";") > strings.Count(first, ",") {
		sep = ';'
	}
	col := -1
	if strings.ContainsRune(first, sep) || strings.EqualFold(strings.TrimSpace(first), "email") {
		hr := csv.NewReader(strings.NewReader(first))
		hr.Comma = sep
		header, err := hr.Read()
		if err == nil {
			for i, h := range header {
				if strings.EqualFold(strings.TrimSpace(h), "email") {
					col = i
					break
				}
			}
		}
		if col < 0 && strings.ContainsRune(first, sep) {
			return nil, fmt.Errorf("1: %w: a CSV needs an email column in its header row (found %q)", errCheckFile, first)
		}
	}
	if col < 0 {
		var out []string
		sc := bufio.NewScanner(bytes.NewReader(raw))
		line := 1
		for ; sc.Scan(); line++ {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				out = append(out, s)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%d: %w: %v", line, errCheckFile, err)
		}
		return out, nil
	}
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.TrimLeadingSpace = true
	cr.Comma = sep
	// Rows may leave off trailing cells, as a spreadsheet does with empty
	// ones and as import takes them; only the email cell must be there.
	cr.FieldsPerRecord = -1
	if _, err := cr.Read(); err != nil {
		return nil, fmt.Errorf("1: %w", err)
	}
	var out []string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%d: %w: %v", pe.StartLine, errCheckFile, pe.Err)
		}
		if err != nil {
			return nil, err
		}
		if col >= len(rec) {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("%d: %w: the row ends before its email column", line, errCheckFile)
		}
		out = append(out, strings.TrimSpace(rec[col]))
	}
}

// firstInvalid is the offset of the first byte that is not UTF-8.
func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
