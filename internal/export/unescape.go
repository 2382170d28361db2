package export

import (
	"bytes"
	"encoding/json"
)

// unescapeHTML undoes what encoding/json's HTML escaping did to a JSON
// text: \u003c, \u003e and \u0026 become < > &, so that a message id
// reads <id@host> in an export, as in the mail it came from. It works
// on the escapes only, so keys keep their order and numbers their
// digits; an escaped backslash (\\u003c) is left alone. The export is a
// download, never HTML in a page, so the escaping protects nothing there.
func unescapeHTML(raw json.RawMessage) json.RawMessage {
	if !bytes.Contains(raw, []byte(`\u00`)) {
		return raw
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 == len(raw) {
			out = append(out, raw[i])
			continue
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) {
			if c, ok := htmlEscapes[string(bytes.ToLower(raw[i+2:i+6]))]; ok {
				out = append(out, c)
				i += 5
				continue
			}
		}
		// Any other escape is copied whole, so that the byte after a
		// backslash is never read as the start of an escape.
		out = append(out, raw[i], raw[i+1])
		i++
	}
	return out
}

var htmlEscapes = map[string]byte{"003c": '<', "003e": '>', "0026": '&'}
