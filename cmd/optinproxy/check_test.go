package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// readCheckList takes the lists a CRM or a spreadsheet writes: an email
// column in any place, commas or semicolons, short rows; and names the
// line of one it cannot read.
func TestReadCheckList(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string // a part of the error; "" for none
	}{
		// One address a line, blank lines skipped.
		{"lines", "jan@example.com\n\npiet@example.com\n", []string{"jan@example.com", "piet@example.com"}, ""},
		// The import sample: rows that leave off their trailing cells.
		{"short rows", "email,purpose,status,basis,source,granted_at\njan@example.com,newsletter,granted,consent,form,2026-01-10\npiet@example.com,newsletter\n",
			[]string{"jan@example.com", "piet@example.com"}, ""},
		// What Dutch Excel writes.
		{"semicolons", "Naam;Email;Plaats\nJan;jan@example.com;Utrecht\nPiet;piet@example.com\n", []string{"jan@example.com", "piet@example.com"}, ""},
		// A row that ends before the email column.
		{"no email cell", "name,email\nJan,jan@example.com\nPiet\n", nil, "3: not a list of addresses: the row ends before its email column"},
		{"no email column", "naam;adres\nJan;Utrecht\n", nil, `1: not a list of addresses: a CSV needs an email column in its header row (found "naam;adres")`},
	} {
		got, err := readCheckList(strings.NewReader(tc.in))
		switch {
		case tc.err == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		case tc.err != "" && (err == nil || !errors.Is(err, errCheckFile) || err.Error() != tc.err):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}
