package export

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

// Every first character OWASP lists as starting a formula gets the quote,
// including those (@, tab, CR) no stored value can start with today.
func TestCSVCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"=1+2@example.com", "'=1+2@example.com"},
		{"+31612345678", "'+31612345678"},
		{"-1", "'-1"}, // a negative-looking number too: the export writes no numbers
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"", ""},
		{"jan@example.com", "jan@example.com"},
		{`{"ip":"=1"}`, `{"ip":"=1"}`},
		{"2026-01-10T09:00:00Z", "2026-01-10T09:00:00Z"},
		{"'=already", "'=already"},
		{"a=b", "a=b"},
	} {
		if got := csvCell(tc.in); got != tc.want {
			t.Errorf("csvCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzCSVCell: whatever a cell holds, once quoted, written as CSV and
// read back, it does not start a formula, and it reads back as written
// but for what CSV itself cannot keep (a CR before a LF).
func FuzzCSVCell(f *testing.F) {
	for _, s := range []string{"=1+2@example.com", "-1", "+x", "@x", "\t=1", "\r=1", "\r\n=1", "\"=1\"", " =1", "", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write(csvRow([]string{s, "next"}))
		w.Flush()
		if err := w.Error(); err != nil {
			t.Fatalf("writing %q: %v", s, err)
		}
		r := csv.NewReader(&buf)
		rec, err := r.Read()
		if err != nil {
			t.Fatalf("reading back %q: %v (%q)", s, err, buf.String())
		}
		if len(rec) != 2 || rec[1] != "next" {
			t.Fatalf("%q read back as %q", s, rec)
		}
		if got := rec[0]; got != "" && strings.ContainsRune("=+-@\t\r", rune(got[0])) {
			t.Fatalf("%q reads back as %q, which starts a formula", s, got)
		}
		want := strings.ReplaceAll(csvCell(s), "\r\n", "\n")
		if rec[0] != want {
			t.Fatalf("%q read back as %q, want %q", s, rec[0], want)
		}
	})
}
