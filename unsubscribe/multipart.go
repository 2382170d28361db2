package unsubscribe

import "bytes"

// span is a body part's place in its multipart body: from after its
// opening delimiter line to before the line break that belongs to the
// next delimiter.
type span struct{ start, end int }

// maxBoundary is generous: RFC 2046 allows 70 characters.
const maxBoundary = 200

// splitParts finds the body parts of a multipart body the way a reader
// does (RFC 2046 §5.1.1): a delimiter is "--boundary" at the start of a
// line, followed by "--" for the last one, optional spaces or tabs, and
// the end of the line. ok is false when the boundary is missing or there
// is no closing delimiter: the body is then not split at all.
func splitParts(body []byte, boundary string) (parts []span, ok bool) {
	if boundary == "" || len(boundary) > maxBoundary {
		return nil, false
	}
	dash := []byte("--" + boundary)
	start := -1 // of the part being read, once the first delimiter is seen
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], dash)
		if j < 0 {
			return nil, false
		}
		j += i
		i = j + len(dash)
		if j > 0 && body[j-1] != '\n' {
			continue
		}
		closing, next, isDelim := delimiterRest(body, i)
		if !isDelim {
			continue
		}
		if start >= 0 {
			parts = append(parts, span{start, max(start, lineBreakBefore(body, j))})
		}
		if closing {
			return parts, true
		}
		start, i = next, next
	}
	return nil, false
}

// delimiterRest reads what follows "--boundary" at i: closing is true
// for "--"; next is where the line after it starts.
func delimiterRest(body []byte, i int) (closing bool, next int, ok bool) {
	if bytes.HasPrefix(body[i:], []byte("--")) {
		closing = true
		i += 2
	}
	for i < len(body) && (body[i] == ' ' || body[i] == '\t') {
		i++
	}
	switch {
	case i == len(body):
		return closing, i, true
	case body[i] == '\n':
		return closing, i + 1, true
	case body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n':
		return closing, i + 2, true
	}
	return false, 0, false
}

// lineBreakBefore returns where the line break ending at j starts.
func lineBreakBefore(body []byte, j int) int {
	if j > 0 && body[j-1] == '\n' {
		j--
		if j > 0 && body[j-1] == '\r' {
			j--
		}
	}
	return j
}
