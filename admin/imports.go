package admin

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"optinproxy/optin"
)

// importBatch is how many rows go to the store at once: an import of 100k
// rows takes a few hundred store calls, not 100k.
const importBatch = 500

// maxBadRows caps the bad rows listed in the answer; all are counted.
const maxBadRows = 1000

type importAnswer struct {
	Rows    int      `json:"rows"`
	Applied int      `json:"applied"`
	Ignored int      `json:"ignored"` // an equal or newer change was stored already
	Bad     int      `json:"bad"`
	BadRows []badRow `json:"bad_rows"`
}

type badRow struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// importColumns are the CSV columns of an import; the first five are
// required in the header.
var importColumns = []string{"email", "purpose", "status", "basis", "source", "granted_at", "policy_version", "ip"}

// importCSV reads a CSV body row by row (streamed, never held whole),
// validates each row, and applies the good ones in batches. A bad row is
// reported with its line and does not stop the import. ?file= names the
// file the rows came from, which each consent's event keeps with its
// line and the time of the import: imports never invent evidence,
// so that is all a row without granted_at has to show.
func (a *API) importCSV(w http.ResponseWriter, r *http.Request, p principal) {
	src := optin.ImportSource{File: importFileName(r.URL.Query().Get("file")), At: a.opts.Now().UTC()}
	body := bufio.NewReaderSize(r.Body, 64<<10)
	cr := csv.NewReader(body)
	cr.Comma = sniffSeparator(body)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		badRequest(w, "the CSV is empty: it needs a header row with at least email,purpose,status,basis,source")
		return
	}
	if err != nil {
		a.failImport(w, r, fmt.Errorf("reading the header row: %w", err), 0)
		return
	}
	col := map[string]int{}
	for i, h := range head {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[name]; dup {
			badRequest(w, "column "+name+" appears twice")
			return
		}
		known := false
		for _, c := range importColumns {
			known = known || c == name
		}
		if !known {
			hint := ""
			if strings.ContainsAny(name, ";\t") {
				hint = " (a header row must separate its columns with commas or semicolons: save the file as CSV)"
			}
			badRequest(w, fmt.Sprintf("unknown column %q; the columns are %s%s", name, strings.Join(importColumns, ","), hint))
			return
		}
		col[name] = i
	}
	for _, req := range importColumns[:5] {
		if _, ok := col[req]; !ok {
			badRequest(w, "the header row lacks the column "+req+" (required: email,purpose,status,basis,source)")
			return
		}
	}

	ans := importAnswer{BadRows: []badRow{}}
	var batch []optin.Change
	var lines []int // of the rows in batch
	bad := func(line int, msg string) {
		ans.Bad++
		if len(ans.BadRows) < maxBadRows {
			ans.BadRows = append(ans.BadRows, badRow{Line: line, Error: msg})
		}
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := a.ledger.Apply(r.Context(), batch)
		if err != nil {
			return err
		}
		for i, rs := range res {
			switch {
			case errors.Is(rs.Refused, optin.ErrErased):
				// The row is refused, never the address in the answer.
				bad(lines[i], "erased: the address was erased and takes no consent")
			case rs.Refused != nil:
				bad(lines[i], clientMessage(rs.Refused))
			case rs.Applied:
				ans.Applied++
			default:
				ans.Ignored++
			}
		}
		batch, lines = batch[:0], lines[:0]
		return nil
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			ans.Rows++
			bad(pe.StartLine, pe.Err.Error())
			continue
		}
		if err != nil {
			a.failImport(w, r, err, ans.Applied+ans.Ignored)
			return
		}
		ans.Rows++
		line, _ := cr.FieldPos(0)
		if len(rec) > len(head) {
			bad(line, fmt.Sprintf("%d fields, the header has %d", len(rec), len(head)))
			continue
		}
		if msg := missingColumn(rec, head, col); msg != "" {
			bad(line, msg)
			continue
		}
		src.Line = line
		ch, err := a.importRow(rec, col, p, src)
		if err != nil {
			bad(line, clientMessage(err))
			continue
		}
		batch, lines = append(batch, ch), append(lines, line)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				a.fail(w, r, err)
				return
			}
		}
	}
	if err := flush(); err != nil {
		a.fail(w, r, err)
		return
	}
	// Refused rows (erased) are known only once their batch is applied:
	// list the bad rows in file order all the same.
	slices.SortStableFunc(ans.BadRows, func(x, y badRow) int { return cmp.Compare(x.Line, y.Line) })
	a.log.Info("import", "token", p.name, "rows", ans.Rows, "applied", ans.Applied, "ignored", ans.Ignored, "bad", ans.Bad)
	writeJSON(w, http.StatusOK, ans)
}

// importRow turns one row into a change, or says what is wrong with it.
func (a *API) importRow(rec []string, col map[string]int, p principal, src optin.ImportSource) (optin.Change, error) {
	get := func(name string) string {
		// A short row leaves its trailing optional columns off: empty.
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	addr, err := optin.ParseAddress(get("email"))
	if err != nil {
		return optin.Change{}, err
	}
	cc := optin.ConsentChange{Basis: optin.Basis(get("basis")), Source: get("source"), Actor: p.actor(),
		Evidence: optin.Evidence{PolicyVersion: get("policy_version"), IP: get("ip")}, Import: &src}
	if cc.Source == "" {
		cc.Source = optin.SourceImport
	}
	if s := get("granted_at"); s != "" {
		t, err := parseImportTime(s)
		if err != nil {
			return optin.Change{}, err
		}
		cc.At = t
	}
	purpose := get("purpose")
	switch status := optin.Status(get("status")); status {
	case optin.StatusWithdrawn:
		return a.ledger.WithdrawChange(addr, purpose, cc)
	case optin.StatusGranted, optin.StatusPending, optin.StatusExpired:
		cc.Status = status
		return a.ledger.GrantChange(addr, purpose, cc)
	default:
		return optin.Change{}, fmt.Errorf("status %q: want granted, pending, withdrawn or expired", status)
	}
}

// missingColumn says which required column a short row lacks, or "" when
// it lacks only optional ones (granted_at, policy_version, ip), which a
// spreadsheet leaves off a row whose trailing cells are empty.
func missingColumn(rec, head []string, col map[string]int) string {
	if len(rec) == len(head) {
		return ""
	}
	for _, req := range importColumns[:5] {
		if col[req] >= len(rec) {
			return fmt.Sprintf("missing column %s: %d fields, the header has %d; only granted_at, policy_version and ip may be left off",
				req, len(rec), len(head))
		}
	}
	return ""
}

// sniffSeparator chooses the field separator from the header row: Excel
// set to a language whose decimal mark is a comma (Dutch among them)
// saves "CSV" with semicolons. The header has no quoted commas or
// semicolons, as its column names hold neither, so counting is enough.
func sniffSeparator(body *bufio.Reader) rune {
	// An error here (a short body, a cut connection) is the CSV reader's
	// to report: bufio keeps it for the next read.
	buf, _ := body.Peek(body.Size())
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	if bytes.Count(buf, []byte{';'}) > bytes.Count(buf, []byte{','}) {
		return ';'
	}
	return ','
}

// importFileName keeps of a file name what an event may hold: its last
// element, printable, at most 200 bytes.
func importFileName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || !utf8.ValidRune(r) {
			return -1
		}
		return r
	}, s)
	for len(s) > 200 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// parseImportTime accepts RFC 3339 and, as spreadsheets write them,
// "2006-01-02 15:04:05" and "2006-01-02" (UTC).
func parseImportTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("granted_at %q: want an RFC 3339 time such as 2026-01-31T09:00:00Z", s)
}

// failImport answers a body that could not be read to its end. The
// batches sent to the store before stay; stored says how many rows they
// held, so that the client knows the import was cut, not refused.
func (a *API) failImport(w http.ResponseWriter, r *http.Request, err error, stored int) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		before := fmt.Sprintf("the %d rows before it were", stored)
		if stored == 1 {
			before = "the row before it was"
		}
		tooLarge(w, mbe.Limit, "; "+before+" applied or already stored")
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.fail(w, r, err)
	default:
		badRequest(w, "not a CSV import: "+err.Error())
	}
}
