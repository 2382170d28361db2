package dkim

import (
	"bytes"
	"crypto"
	"crypto/sha1" // verifying rsa-sha1 body hashes only; we never sign with it
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
)

const signatureField = "DKIM-Signature"

// BrokenSignatures counts the DKIM-Signature fields of msg that no longer
// verify against it, without asking DNS: those whose body hash (bh=),
// recomputed under their own c= and l=, differs from the body as it is now,
// and those that sign a header field named in changed (the fields the
// caller added, replaced or removed since the message was signed: a
// signature over them cannot verify, whatever their values). Signatures
// that cannot be checked this way (malformed, or of an unknown algorithm)
// are not counted. Names compare case-insensitively.
func BrokenSignatures(msg []byte, changed ...string) int {
	h := split(msg)
	return len(brokenFields(msg, h.fields, h.body, changed))
}

// brokenFields returns the indexes in fields of the broken signatures.
func brokenFields(msg []byte, fields []field, body int, changed []string) []int {
	var broken []int
	hashes := bodyHashes{body: msg[body:]}
	for i, f := range fields {
		if !strings.EqualFold(f.name, signatureField) {
			continue
		}
		sig, ok := parseSignature(f.value(msg))
		if !ok {
			continue
		}
		if sig.covers(changed) || !bytes.Equal(hashes.get(sig.body), sig.bodyHash) {
			broken = append(broken, i)
		}
	}
	return broken
}

// signature is what the DNS-free check reads of a DKIM-Signature.
type signature struct {
	body     bodyCanon
	bodyHash []byte
	headers  []string
}

// bodyCanon says how a body hash is made: the hash, the canonicalization
// and the l= limit (-1 for the whole body).
type bodyCanon struct {
	hash    crypto.Hash
	relaxed bool
	limit   int64
}

// covers reports whether the signature signs one of the named fields.
func (s signature) covers(names []string) bool {
	for _, h := range s.headers {
		for _, n := range names {
			if strings.EqualFold(h, n) {
				return true
			}
		}
	}
	return false
}

// parseSignature reads the tags of a DKIM-Signature value (RFC 6376
// section 3.5) that the body hash check needs, and whether they make sense.
func parseSignature(v string) (signature, bool) {
	tags := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		name, val, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok {
			if name != "" {
				return signature{}, false
			}
			continue
		}
		if _, dup := tags[name]; dup {
			return signature{}, false // a duplicate tag makes it invalid
		}
		tags[name] = strings.TrimSpace(val)
	}
	sig := signature{body: bodyCanon{limit: -1}}
	switch tags["a"] {
	case "rsa-sha256", "ed25519-sha256":
		sig.body.hash = crypto.SHA256
	case "rsa-sha1":
		sig.body.hash = crypto.SHA1
	default:
		return signature{}, false
	}
	switch c := tags["c"]; c {
	case "", "simple", "relaxed", "simple/simple", "relaxed/simple":
	case "simple/relaxed", "relaxed/relaxed":
		sig.body.relaxed = true
	default:
		return signature{}, false
	}
	if l, ok := tags["l"]; ok {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n < 0 {
			return signature{}, false
		}
		sig.body.limit = n
	}
	bh, err := base64.StdEncoding.DecodeString(stripSpace(tags["bh"]))
	if err != nil || len(bh) == 0 {
		return signature{}, false
	}
	sig.bodyHash = bh
	for h := range strings.SplitSeq(tags["h"], ":") {
		if h = strings.TrimSpace(h); h != "" {
			sig.headers = append(sig.headers, h)
		}
	}
	if tags["v"] != "1" || len(sig.headers) == 0 {
		return signature{}, false
	}
	return sig, true
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// bodyHashes computes each kind of body hash once: CRM signatures
// usually share one.
type bodyHashes struct {
	body []byte
	done map[bodyCanon][]byte
}

func (b *bodyHashes) get(c bodyCanon) []byte {
	if sum, ok := b.done[c]; ok {
		return sum
	}
	if b.done == nil {
		b.done = map[bodyCanon][]byte{}
	}
	var h hash.Hash
	if c.hash == crypto.SHA1 {
		h = sha1.New()
	} else {
		h = sha256.New()
	}
	w := &limited{w: h, left: c.limit}
	canonicalize(w, b.body, c.relaxed)
	sum := h.Sum(nil)
	if w.left > 0 {
		sum = nil // l= claims more body than there is: it cannot verify
	}
	b.done[c] = sum
	return sum
}
