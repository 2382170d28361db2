package admin

import "testing"

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
