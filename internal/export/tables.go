package export

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"
)

var (
	consentHeader     = []string{"purpose", "status", "basis", "source", "granted_at", "updated_at", "expires_at", "event_id", "evidence"}
	suppressionHeader = []string{"reason", "created_at"}
	eventHeader       = []string{"id", "time", "type", "purpose", "actor", "details", "prev", "hash"}
)

func (ex *Export) consentRows() [][]string {
	var rows [][]string
	for _, c := range ex.Consents {
		ev := ""
		if c.Evidence != nil {
			b, _ := c.Evidence.MarshalJSON()
			ev = string(unescapeHTML(b))
		}
		rows = append(rows, []string{c.Purpose, string(c.Status), string(c.Basis), c.Source,
			stamp(c.GrantedAt), stamp(c.UpdatedAt), stamp(c.ExpiresAt), c.EventID, ev})
	}
	return rows
}

func (ex *Export) suppressionRows() [][]string {
	var rows [][]string
	for _, s := range ex.Suppressions {
		rows = append(rows, []string{string(s.Reason), stamp(s.CreatedAt)})
	}
	return rows
}

func (ex *Export) eventRows() [][]string {
	var rows [][]string
	for _, e := range ex.Events {
		rows = append(rows, []string{e.ID, stamp(e.Time), string(e.Type), e.Purpose, e.Actor, string(unescapeHTML(e.Details)), e.Prev, e.Hash})
	}
	return rows
}

// rows is the CSV form: one table, its first column naming the section.
func (ex *Export) rows() [][]string {
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

// writeWorkbook writes the XLSX form: a sheet per section, every cell
// text.
func (ex *Export) writeWorkbook(w io.Writer) error {
	f := excelize.NewFile()
	defer f.Close()
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
				return err
			}
		} else if _, err := f.NewSheet(s.name); err != nil {
			return err
		}
		sw, err := f.NewStreamWriter(s.name)
		if err != nil {
			return err
		}
		for r, row := range append([][]string{s.header}, s.rows...) {
			cells := make([]any, len(row))
			for c, v := range row {
				cells[c] = v
			}
			cell, _ := excelize.CoordinatesToCellName(1, r+1)
			if err := sw.SetRow(cell, cells); err != nil {
				return fmt.Errorf("xlsx %s row %d: %w", s.name, r+1, err)
			}
		}
		if err := sw.Flush(); err != nil {
			return err
		}
	}
	return f.Write(w)
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
