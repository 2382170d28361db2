// Package dkim signs the copies the relay sends with the DKIM keys of
// their From domain (RFC 6376; RSA and Ed25519, RFC 8463), and finds the
// signatures a client put on a message that no longer verify once the
// relay changed it: those it removes when it signs, and counts when it
// cannot. It asks no DNS: the keys are the operator's, and whether a
// client's signature still holds is judged from the message alone.
package dkim

import (
	"crypto"
	"fmt"
	"io"
	"slices"
	"strings"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// Key is one signing key: the domain it signs for (d=), the selector
// under which its public key is published (s=), and the private key.
type Key struct {
	Domain   string
	Selector string
	Signer   crypto.Signer
}

// Options tune a Signer; the zero value is the usual choice.
type Options struct {
	// Headers are the header fields to sign, each as often as it occurs;
	// nil means DefaultHeaders. It must hold From.
	Headers []string
}

// DefaultHeaders are the fields signed by default: those a receiver shows
// or acts on. The unsubscribe fields are among them because receivers
// honour one-click unsubscribe only when a signature covers them.
var DefaultHeaders = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id",
}

// oversigned are signed once more than they occur, so that a field of
// that name added on the way breaks the signature instead of passing as
// signed: a second From, or a List-Unsubscribe pointing elsewhere.
var oversigned = []string{"From", "List-Unsubscribe", "List-Unsubscribe-Post"}

// Signer signs messages with the keys of their From domain. It is safe
// for concurrent use.
type Signer struct {
	keys    map[string][]Key // by lower-case domain, in the order given
	headers []string
}

// New returns a Signer for keys. A domain may have several keys (an
// Ed25519 and an RSA key, since not every receiver checks Ed25519); each
// signs. It refuses a key without domain or selector, a (domain, selector)
// given twice, and keys that checkKey refuses.
func New(keys []Key, opts Options) (*Signer, error) {
	s := &Signer{keys: map[string][]Key{}, headers: opts.Headers}
	if s.headers == nil {
		s.headers = DefaultHeaders
	}
	if !slices.ContainsFunc(s.headers, func(h string) bool { return strings.EqualFold(h, "From") }) {
		return nil, fmt.Errorf("%w: the signed headers must include From", ErrConfig)
	}
	for i, k := range keys {
		domain := strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		switch {
		case domain == "" || k.Selector == "":
			return nil, fmt.Errorf("%w: key %d needs a domain and a selector", ErrConfig, i)
		case k.Signer == nil:
			return nil, fmt.Errorf("%w: key %d (%s._domainkey.%s) has no private key", ErrConfig, i, k.Selector, domain)
		case slices.ContainsFunc(s.keys[domain], func(o Key) bool { return strings.EqualFold(o.Selector, k.Selector) }):
			return nil, fmt.Errorf("%w: selector %s of %s is given twice", ErrConfig, k.Selector, domain)
		}
		if err := checkKey(k.Signer); err != nil {
			return nil, fmt.Errorf("key %d (%s._domainkey.%s): %w", i, k.Selector, domain, err)
		}
		k.Domain = domain
		s.keys[domain] = append(s.keys[domain], k)
	}
	return s, nil
}

// Sign writes msg to w, signed when there is a key for its From domain
// and its header is well formed:
// first a DKIM-Signature per key of that domain, then msg without the
// signatures that no longer verify. Without a key, msg goes to w as it
// is. changed names the header fields the caller added, replaced or
// removed (see BrokenSignatures).
//
// msg is the whole message with CRLF line ends; Sign does not change or
// keep it and writes its unchanged parts straight from it, so the caller
// holds one copy. An error is a key that failed to sign or a failed write;
// w may then have part of the message.
//
// signed reports whether the message got signatures of ours. broken
// counts the message's signatures that no longer verify (see
// BrokenSignatures): removed when signed, left in place (harmless: a
// receiver treats them as absent) when not. The results are plain values
// so that the relay can declare the interface it signs through without
// importing this package.
func (s *Signer) Sign(w io.Writer, msg []byte, changed ...string) (signed bool, broken int, err error) {
	h := split(msg)
	bad := brokenFields(msg, h.fields, h.body, changed)
	var keys []Key
	if !h.malformed {
		keys = s.keys[fromDomain(msg, h.fields)]
	}
	if len(keys) == 0 {
		_, err := w.Write(msg)
		return false, len(bad), err
	}
	parts := keep(msg, h.fields, bad, h.blank)
	headers := s.headerKeys(h.fields)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		sig, err := sign(k, headers, parts)
		if err != nil {
			return false, len(bad), err
		}
		sigs = append(sigs, sig)
	}
	for _, sig := range sigs {
		if _, err := io.WriteString(w, sig); err != nil {
			return false, len(bad), err
		}
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return false, len(bad), err
		}
	}
	return true, len(bad), nil
}

// sign returns the DKIM-Signature field of key over the message in parts.
func sign(k Key, headers []string, parts [][]byte) (string, error) {
	signer, err := msgauth.NewSigner(&msgauth.SignOptions{
		Domain:                 k.Domain,
		Selector:               k.Selector,
		Signer:                 k.Signer,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		HeaderKeys:             headers,
	})
	if err != nil {
		return "", fmt.Errorf("dkim: signing with %s._domainkey.%s: %w", k.Selector, k.Domain, err)
	}
	for _, p := range parts {
		if _, err := signer.Write(p); err != nil {
			signer.Close()
			return "", fmt.Errorf("dkim: signing with %s._domainkey.%s: %w", k.Selector, k.Domain, err)
		}
	}
	if err := signer.Close(); err != nil {
		return "", fmt.Errorf("dkim: signing with %s._domainkey.%s: %w", k.Selector, k.Domain, err)
	}
	return signer.Signature(), nil
}

// headerKeys returns h=: each field of s.headers as often as msg has it,
// the oversigned ones once more.
func (s *Signer) headerKeys(fields []field) []string {
	var keys []string
	for _, name := range s.headers {
		n := 0
		for _, f := range fields {
			if strings.EqualFold(f.name, name) {
				n++
			}
		}
		if slices.ContainsFunc(oversigned, func(o string) bool { return strings.EqualFold(o, name) }) {
			n++
		}
		for range n {
			keys = append(keys, name)
		}
	}
	return keys
}

// keep returns msg as slices of itself without the fields at the indexes
// in drop, and with the blank line that ends a header added when msg
// lacks it.
func keep(msg []byte, fields []field, drop []int, blank bool) [][]byte {
	var parts [][]byte
	from := 0
	for _, i := range drop {
		if fields[i].start > from {
			parts = append(parts, msg[from:fields[i].start])
		}
		from = fields[i].end
	}
	if !blank {
		if from < len(msg) {
			parts = append(parts, msg[from:])
		}
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			parts = append(parts, crlf)
		}
		return append(parts, crlf)
	}
	return append(parts, msg[from:])
}
