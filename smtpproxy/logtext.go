package smtpproxy

import (
	"regexp"
	"strings"
	"unicode"
)

// anAddress is anything shaped like a mail address in free text.
var anAddress = regexp.MustCompile(`[^\s<>()\[\],;:"']+@[^\s<>()\[\],;:"']+`)

// logText makes text that others wrote (an upstream's reply, an error
// that quotes one) fit for the log: addresses replaced, control
// characters dropped, and cut short. Logs keep no personal data.
func logText(s string) string {
	s = anAddress.ReplaceAllString(s, "<address>")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = oneLine(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
