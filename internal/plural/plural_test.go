package plural

import "testing"

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    int
		noun string
		want string
	}{
		{1, "row", "1 row"},
		{0, "row", "0 rows"},
		{2, "bad row", "2 bad rows"},
		{1, "address", "1 address"},
		{3, "address", "3 addresses"},
		{2, "entry", "2 entries"},
		{2, "key", "2 keys"}, // a vowel before the y
		{5, "subject key", "5 subject keys"},
		{2, "match", "2 matches"},
		{2, "box", "2 boxes"},
	} {
		if got := Count(tc.n, tc.noun); got != tc.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
}
