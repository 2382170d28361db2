package redisstore

import (
	"strings"

	"optinproxy/optin"
)

// DefaultPrefix starts every key when Options.Prefix is empty.
const DefaultPrefix = "optin:"

// schemaVersion is the layout doc.go describes; Open refuses another.
const schemaVersion = "1"

// Fields of the state hash and of the meta hash.
const (
	fieldAddress     = "a"
	fieldKey         = "k"
	fieldCount       = "n"
	consentPrefix    = "c:"
	suppressPrefix   = "x:"
	metaLedgerKey    = "lk"
	metaVersion      = "v"
	feedFieldSubject = "s"
	feedFieldIndex   = "i"
)

// reasons are the suppression reasons in the order stores list them.
var reasons = []optin.SuppressionReason{
	optin.SuppressUnsubscribedAll, optin.SuppressHardBounce, optin.SuppressComplaint,
	optin.SuppressErased, optin.SuppressManual,
}

// keys names the store's keys under one prefix.
type keys struct{ prefix string }

func (k keys) meta() string { return k.prefix + "meta" }
func (k keys) feed() string { return k.prefix + "events" }
func (k keys) supp() string { return k.prefix + "supp" }
func (k keys) state(sid string) string {
	return k.prefix + "{" + sid + "}:s"
}
func (k keys) events(sid string) string {
	return k.prefix + "{" + sid + "}:e"
}

// delivered is the key of subject sid's mark for a message (see
// markOf), in the subject's slot.
func (k keys) delivered(sid, message string) string {
	return k.prefix + "{" + sid + "}:d:" + markOf(message)
}

// statePattern matches every state key, for SCAN.
func (k keys) statePattern() string {
	return globEscape(k.prefix) + "{*}:s"
}

// sidOf returns the subject id in a state or event list key.
func (k keys) sidOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.prefix+"{")
	if !ok {
		return "", false
	}
	sid, _, ok := strings.Cut(rest, "}")
	return sid, ok && sid != ""
}

// globEscape quotes the characters SCAN's MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
