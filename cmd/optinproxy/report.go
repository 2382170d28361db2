package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"optinproxy/internal/plural"
)

// reportNames are the reports of `optinproxy report`.
const reportNames = "no-basis, no-proof, expiring, outdated-policy, processing or affected"

// reportOut writes a report's rows as a readable table, CSV, or the
// API's JSON (one page per line).
type reportOut struct {
	format string
	stdout io.Writer
	tw     *tabwriter.Writer
	cw     *csv.Writer
}

func newReportOut(format string, stdout io.Writer, header ...string) *reportOut {
	o := &reportOut{format: format, stdout: stdout}
	switch format {
	case "table":
		o.tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		o.row(header...)
	case "csv":
		o.cw = csv.NewWriter(stdout)
		o.row(header...)
	}
	return o
}

// row writes one row (nothing for json).
func (o *reportOut) row(cells ...string) {
	switch o.format {
	case "table":
		fmt.Fprintln(o.tw, strings.Join(cells, "\t"))
	case "csv":
		for i, c := range cells {
			cells[i] = csvSafe(c)
		}
		o.cw.Write(cells)
	}
}

// page writes a page's raw JSON (json only).
func (o *reportOut) page(raw []byte) {
	if o.format == "json" {
		fmt.Fprintln(o.stdout, strings.TrimSpace(string(compactJSON(raw))))
	}
}

// done flushes, and for a table prints the summary line.
func (o *reportOut) done(summary string) error {
	switch o.format {
	case "table":
		o.tw.Flush()
		fmt.Fprintln(o.stdout, summary)
	case "csv":
		o.cw.Flush()
		return o.cw.Error()
	}
	return nil
}

// csvSafe keeps a spreadsheet that opens the CSV from running a cell as a
// formula: an address may start with = + - or @, so such a cell gets a
// leading single quote, as the API's CSV export does.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func runReport(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "read")
	format := fs.String("format", "", "table (default), csv or json; for processing markdown (default) or json")
	asJSON := fs.Bool("json", false, "the same as --format json")
	since := fs.String("since", "", "no-basis and affected: the window's start, RFC 3339 (no-basis default: 30 days ago)")
	until := fs.String("until", "", "no-basis and affected: the window's end, RFC 3339, exclusive (no-basis default: now)")
	days := fs.Int("days", 30, "expiring: consents that expire within this many days")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one report: %s", reportNames)
	}
	if *asJSON {
		*format = "json"
	}
	name := pos[0]
	formats := []string{"table", "csv", "json"}
	if name == "processing" {
		formats = []string{"markdown", "json"}
	}
	if *format == "" {
		*format = formats[0]
	}
	if !slices.Contains(formats, *format) {
		return usagef("--format %q: want %s or %s for report %s", *format, strings.Join(formats[:len(formats)-1], ", "), formats[len(formats)-1], name)
	}
	window := url.Values{}
	for _, f := range []struct{ key, val string }{{"since", *since}, {"until", *until}} {
		if f.val == "" {
			continue
		}
		if name != "no-basis" && name != "affected" {
			return usagef("--%s is for no-basis and affected", f.key)
		}
		if _, err := time.Parse(time.RFC3339Nano, f.val); err != nil {
			return usagef("--%s %q is not an RFC 3339 time such as 2026-03-01T00:00:00Z", f.key, f.val)
		}
		window.Set(f.key, f.val)
	}
	if name == "affected" && (*since == "" || *until == "") {
		return usagef("report affected needs --since and --until (RFC 3339)")
	}
	daysSet := false
	fs.Visit(func(f *flag.Flag) { daysSet = daysSet || f.Name == "days" })
	if daysSet && name != "expiring" {
		return usagef("--days is for expiring")
	}
	if *days < 1 {
		return usagef("--days %d: want at least 1", *days)
	}
	run := map[string]func(*client, *reportOut, url.Values) error{
		"no-proof": reportNoProof, "no-basis": reportNoBasis, "affected": reportAffected,
		"outdated-policy": reportOutdated, "expiring": func(c *client, o *reportOut, q url.Values) error {
			q.Set("days", fmt.Sprint(*days))
			return reportExpiring(c, o, q)
		},
	}
	header := map[string][]string{
		"no-proof":        {"EMAIL", "PURPOSE", "STATUS", "SOURCE", "GRANTED", "MISSING"},
		"no-basis":        {"EMAIL", "PURPOSE", "ATTEMPTS", "RELAYED_ANYWAY", "LAST_ATTEMPT", "REASONS"},
		"affected":        {"EMAIL", "FIRST", "LAST", "KINDS"},
		"expiring":        {"EMAIL", "PURPOSE", "EXPIRES", "GRANTED", "SOURCE", "NOTICED"},
		"outdated-policy": {"EMAIL", "PURPOSE", "STATUS", "POLICY_VERSION", "GRANTED"},
	}
	if name != "processing" && run[name] == nil {
		return usagef("unknown report %q: want %s", name, reportNames)
	}
	c, err := cf.connect()
	if err != nil {
		return err
	}
	if name == "processing" {
		raw, err := c.do("GET", "/api/v1/reports/processing?format="+*format, "", nil)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(raw)
		return err
	}
	if *format == "table" {
		for i, h := range header[name] {
			header[name][i] = strings.ReplaceAll(h, "_", " ")
		}
	}
	if *format == "csv" {
		for i, h := range header[name] {
			header[name][i] = strings.ToLower(h)
		}
	}
	return run[name](c, newReportOut(*format, e.stdout, header[name]...), window)
}

// reportPages gets every page of a report, hands its raw JSON to o and
// the page, decoded, to each, which returns the page's next_cursor.
func reportPages[P any](c *client, o *reportOut, path string, q url.Values, each func(page *P) string) error {
	q.Set("limit", "1000")
	for cursor, pages := "", 0; pages < 1_000_000; pages++ {
		q.Set("cursor", cursor)
		raw, err := c.do("GET", path+"?"+q.Encode(), "", nil)
		if err != nil {
			return err
		}
		page := new(P)
		if err := json.Unmarshal(raw, page); err != nil {
			return err
		}
		o.page(raw)
		next := each(page)
		if next == "" || next == cursor {
			return nil
		}
		cursor = next
	}
	return nil
}

// reportDay is a report's date, "unknown" when not known.
func reportDay(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02")
}

// reportTime is a report's time, empty when not known.
func reportTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func reportNoProof(c *client, o *reportOut, q url.Values) error {
	n := 0
	type pageJSON struct {
		Consents []struct {
			Email, Purpose, Status, Source string
			GrantedAt                      time.Time `json:"granted_at"`
			Missing                        []string
		} `json:"consents"`
		NextCursor string `json:"next_cursor"`
	}
	err := reportPages(c, o, "/api/v1/reports/no-proof", q, func(page *pageJSON) string {
		for _, r := range page.Consents {
			n++
			o.row(r.Email, r.Purpose, r.Status, r.Source, reportDay(r.GrantedAt), strings.Join(r.Missing, ", "))
		}
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	return o.done(plural.Count(n, "consent") + " without full proof")
}

// reportNoBasis adds up the rows of a subject and purpose found on
// several pages before it prints them: the API counts per page.
func reportNoBasis(c *client, o *reportOut, q url.Values) error {
	type row struct {
		Email, Purpose string
		Reasons        []string
		Attempts       int
		RelayedAnyway  int       `json:"relayed_anyway"`
		LastAttempt    time.Time `json:"last_attempt"`
	}
	var rows []*row
	byKey := map[[2]string]*row{}
	var since, until time.Time
	erased := 0
	type pageJSON struct {
		Since, Until time.Time
		Subjects     []row
		Erased       int
		NextCursor   string `json:"next_cursor"`
	}
	err := reportPages(c, o, "/api/v1/reports/no-basis", q, func(page *pageJSON) string {
		since, until, erased = page.Since, page.Until, erased+page.Erased
		for _, r := range page.Subjects {
			k := [2]string{r.Email, r.Purpose}
			have := byKey[k]
			if have == nil {
				have = &row{Email: r.Email, Purpose: r.Purpose}
				byKey[k] = have
				rows = append(rows, have)
			}
			have.Attempts += r.Attempts
			have.RelayedAnyway += r.RelayedAnyway
			if r.LastAttempt.After(have.LastAttempt) {
				have.LastAttempt = r.LastAttempt
			}
			for _, reason := range r.Reasons {
				if !slices.Contains(have.Reasons, reason) {
					have.Reasons = append(have.Reasons, reason)
				}
			}
		}
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	slices.SortFunc(rows, func(a, b *row) int { return strings.Compare(a.Email+" "+a.Purpose, b.Email+" "+b.Purpose) })
	attempts, anyway := 0, 0
	for _, r := range rows {
		slices.Sort(r.Reasons)
		attempts += r.Attempts
		anyway += r.RelayedAnyway
		o.row(r.Email, r.Purpose, fmt.Sprint(r.Attempts), fmt.Sprint(r.RelayedAnyway), reportTime(r.LastAttempt), strings.Join(r.Reasons, ", "))
	}
	pairs := plural.Count(len(rows), "subject") + " and " + plural.Of("purpose")
	if len(rows) == 1 {
		pairs = "1 subject and purpose"
	}
	summary := fmt.Sprintf("%s, %s from %s to %s", pairs, plural.Count(attempts, "blocked attempt"), reportTime(since), reportTime(until))
	switch {
	case anyway == 1:
		summary += "; 1 of them was relayed anyway (policy.mode monitor)"
	case anyway > 1:
		summary += fmt.Sprintf("; %d of them were relayed anyway (policy.mode monitor)", anyway)
	}
	if erased > 0 {
		summary += fmt.Sprintf("; %d more to subjects erased since", erased)
	}
	return o.done(summary)
}

// reportAffected adds up a subject's counts found on several pages.
func reportAffected(c *client, o *reportOut, q url.Values) error {
	type row struct {
		Email       string
		Kinds       map[string]int
		First, Last time.Time
	}
	var rows []*row
	byEmail := map[string]*row{}
	erased := 0
	type pageJSON struct {
		Subjects   []row
		Erased     int
		NextCursor string `json:"next_cursor"`
	}
	err := reportPages(c, o, "/api/v1/reports/affected", q, func(page *pageJSON) string {
		erased += page.Erased
		for _, r := range page.Subjects {
			have := byEmail[r.Email]
			if have == nil {
				have = &row{Email: r.Email, Kinds: map[string]int{}, First: r.First, Last: r.Last}
				byEmail[r.Email] = have
				rows = append(rows, have)
			}
			for k, n := range r.Kinds {
				have.Kinds[k] += n
			}
			if r.First.Before(have.First) {
				have.First = r.First
			}
			if r.Last.After(have.Last) {
				have.Last = r.Last
			}
		}
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	slices.SortFunc(rows, func(a, b *row) int { return strings.Compare(a.Email, b.Email) })
	for _, r := range rows {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.Kinds)) {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, r.Kinds[k]))
		}
		o.row(r.Email, reportTime(r.First), reportTime(r.Last), strings.Join(kinds, ", "))
	}
	summary := fmt.Sprintf("%s mailed or changed from %s to %s", plural.Count(len(rows), "subject"), q.Get("since"), q.Get("until"))
	if erased > 0 {
		summary += "; and " + plural.Count(erased, "event") + " of subjects erased since"
	}
	return o.done(summary)
}

func reportExpiring(c *client, o *reportOut, q url.Values) error {
	type row struct {
		Email, Purpose, Source string
		GrantedAt              time.Time `json:"granted_at"`
		ExpiresAt              time.Time `json:"expires_at"`
		NoticedAt              time.Time `json:"noticed_at"`
	}
	var rows []row
	type pageJSON struct {
		Consents   []row
		NextCursor string `json:"next_cursor"`
	}
	err := reportPages(c, o, "/api/v1/reports/expiring", q, func(page *pageJSON) string {
		rows = append(rows, page.Consents...)
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	// The API sorts within a page; the whole list is sorted here.
	slices.SortStableFunc(rows, func(a, b row) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	for _, r := range rows {
		o.row(r.Email, r.Purpose, reportTime(r.ExpiresAt), reportDay(r.GrantedAt), r.Source, reportTime(r.NoticedAt))
	}
	verb := "expire"
	if len(rows) == 1 {
		verb = "expires"
	}
	days, _ := strconv.Atoi(q.Get("days"))
	return o.done(fmt.Sprintf("%s %s within %s", plural.Count(len(rows), "consent"), verb, plural.Count(days, "day")))
}

func reportOutdated(c *client, o *reportOut, q url.Values) error {
	n, current := 0, ""
	type pageJSON struct {
		CurrentVersion string `json:"current_version"`
		Consents       []struct {
			Email, Purpose, Status string
			PolicyVersion          string    `json:"policy_version"`
			GrantedAt              time.Time `json:"granted_at"`
		}
		NextCursor string `json:"next_cursor"`
	}
	err := reportPages(c, o, "/api/v1/reports/outdated-policy", q, func(page *pageJSON) string {
		current = page.CurrentVersion
		for _, r := range page.Consents {
			n++
			o.row(r.Email, r.Purpose, r.Status, r.PolicyVersion, reportDay(r.GrantedAt))
		}
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	return o.done(fmt.Sprintf("%s given under a policy version other than %s", plural.Count(n, "consent"), current))
}

func compactJSON(raw []byte) []byte {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	b, _ := json.Marshal(v)
	return b
}
