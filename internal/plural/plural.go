// Package plural writes counts of things in English as people read them:
// "1 row", "2 rows", "0 addresses". The command line, the SMTP replies
// and the API's messages all count things, and "1 rows" reads as a bug.
package plural

import (
	"strconv"
	"strings"
)

// Count puts n before noun, in the plural unless n is 1. The plural of
// the noun's last word follows the regular English rules: "address" ->
// "addresses", "entry" -> "entries", "row" -> "rows".
func Count(n int, noun string) string {
	if n == 1 || n == -1 {
		return strconv.Itoa(n) + " " + noun
	}
	return strconv.Itoa(n) + " " + Of(noun)
}

// Of is the regular plural of noun (of its last word).
func Of(noun string) string {
	switch {
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"),
		strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "sh"):
		return noun + "es"
	case strings.HasSuffix(noun, "y") && len(noun) > 1 && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	}
	return noun + "s"
}
