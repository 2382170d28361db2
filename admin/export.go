package admin

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"optinproxy/optin"
)

// export is everything stored about one subject (SPEC §6, access and
// portability): records, suppressions and the whole event history.
type export struct {
	subjectJSON
	ExportedAt time.Time `json:"exported_at"`
}

// exportSubject answers ?format=json (default), csv or xlsx.
func (a *API) exportSubject(w http.ResponseWriter, r *http.Request, _ principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" && format != "xlsx" {
		badRequest(w, "format must be json, csv or xlsx")
		return
	}
	ex, err := a.collect(r.Context(), addr)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	name := "optinproxy-export-" + addr.Hash() + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	switch format {
	case "json":
		writeJSON(w, http.StatusOK, ex)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		cw := csv.NewWriter(w)
		for _, row := range ex.rows() {
			cw.Write(csvRow(row))
		}
		cw.Flush()
	case "xlsx":
		f, err := ex.workbook()
		if err != nil {
			a.fail(w, r, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
		w.Header().Set("Cache-Control", "no-store")
		if err := f.Write(w); err != nil {
			a.log.Warn("writing xlsx export", "err", err)
		}
	}
}

// collect reads the subject and pages through all of its events.
func (a *API) collect(ctx context.Context, addr optin.Address) (*export, error) {
	v, err := a.store.Subject(ctx, addr, 0)
	if err != nil {
		return nil, err
	}
	ex := &export{subjectJSON: subjectAnswer(v), ExportedAt: a.opts.Now().UTC()}
	ex.Events = []optin.Event{}
	q := optin.EventQuery{Subject: addr, Limit: optin.MaxPageSize}
	for {
		page, err := a.store.Events(ctx, q)
		if err != nil {
			return nil, err
		}
		ex.Events = append(ex.Events, page.Events...)
		if page.NextCursor == "" {
			return ex, nil
		}
		q.Cursor = page.NextCursor
	}
}

var (
	consentHeader     = []string{"purpose", "status", "basis", "source", "granted_at", "updated_at", "expires_at", "event_id", "evidence"}
	suppressionHeader = []string{"reason", "created_at"}
	eventHeader       = []string{"id", "time", "type", "purpose", "actor", "details", "prev", "hash"}
)

func (ex *export) consentRows() [][]string {
	var rows [][]string
	for _, c := range ex.Consents {
		ev := ""
		if c.Evidence != nil {
			b, _ := c.Evidence.MarshalJSON()
			ev = string(b)
		}
		rows = append(rows, []string{c.Purpose, string(c.Status), string(c.Basis), c.Source,
			stamp(c.GrantedAt), stamp(c.UpdatedAt), stamp(c.ExpiresAt), c.EventID, ev})
	}
	return rows
}

func (ex *export) suppressionRows() [][]string {
	var rows [][]string
	for _, s := range ex.Suppressions {
		rows = append(rows, []string{string(s.Reason), stamp(s.CreatedAt)})
	}
	return rows
}

func (ex *export) eventRows() [][]string {
	var rows [][]string
	for _, e := range ex.Events {
		rows = append(rows, []string{e.ID, stamp(e.Time), string(e.Type), e.Purpose, e.Actor, string(e.Details), e.Prev, e.Hash})
	}
	return rows
}

// rows is the CSV form: one table, its first column naming the section.
func (ex *export) rows() [][]string {
	out := [][]string{{"section", "email", "exported_at"}, {"subject", ex.Email, stamp(ex.ExportedAt)}}
	add := func(section string, header []string, rows [][]string) {
		out = append(out, append([]string{"section"}, header...))
		for _, r := range rows {
			out = append(out, append([]string{section}, r...))
		}
	}
	add("consent", consentHeader, ex.consentRows())
	add("suppression", suppressionHeader, ex.suppressionRows())
	add("event", eventHeader, ex.eventRows())
	return out
}

// workbook is the XLSX form: a sheet per section.
func (ex *export) workbook() (*excelize.File, error) {
	f := excelize.NewFile()
	sheets := []struct {
		name   string
		header []string
		rows   [][]string
	}{
		{"Subject", []string{"email", "exported_at"}, [][]string{{ex.Email, stamp(ex.ExportedAt)}}},
		{"Consents", consentHeader, ex.consentRows()},
		{"Suppressions", suppressionHeader, ex.suppressionRows()},
		{"Events", eventHeader, ex.eventRows()},
	}
	for i, s := range sheets {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", s.name); err != nil {
				return nil, err
			}
		} else if _, err := f.NewSheet(s.name); err != nil {
			return nil, err
		}
		sw, err := f.NewStreamWriter(s.name)
		if err != nil {
			return nil, err
		}
		for r, row := range append([][]string{s.header}, s.rows...) {
			cells := make([]any, len(row))
			for c, v := range row {
				cells[c] = v
			}
			cell, _ := excelize.CoordinatesToCellName(1, r+1)
			if err := sw.SetRow(cell, cells); err != nil {
				return nil, fmt.Errorf("xlsx %s row %d: %w", s.name, r+1, err)
			}
		}
		if err := sw.Flush(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// csvRow neutralises every cell of row for a spreadsheet (see csvCell).
func csvRow(row []string) []string {
	out := make([]string, len(row))
	for i, v := range row {
		out[i] = csvCell(v)
	}
	return out
}

// csvCell keeps a spreadsheet that opens the export from running a cell
// as a formula: an address may start with = + or -, so a cell starting
// with one of the characters OWASP lists (= + - @ tab CR) gets a leading
// single quote. Every column is treated alike, negative-looking numbers
// too: the export writes no numbers, only text, times, ids and JSON. The
// XLSX export needs none of this, its cells are typed as text.
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
