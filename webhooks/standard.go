package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com): the headers every
// signed request carries, and the prefix of a secret.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"

	secretPrefix = "whsec_"
	// minSecret is the shortest key accepted: the specification asks for
	// 24 to 64 random bytes; 16 still leaves no room for guessing.
	minSecret = 16
	// maxSignatures caps the entries of one webhook-signature header, so a
	// request cannot make us compute many MACs.
	maxSignatures = 8
)

// ParseSecret returns the HMAC key of a Standard Webhooks secret:
// "whsec_" followed by standard base64 of at least 16 bytes. The prefix may
// be left out, as the reference libraries allow. Errors wrap ErrBadSecret
// and never repeat the secret.
func ParseSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, secretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrBadSecret, secretPrefix)
	}
	if len(key) < minSecret {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrBadSecret, len(key), minSecret)
	}
	return key, nil
}

// SignStandard returns the webhook-signature value ("v1,<base64>") of a
// message with id sent at ts: HMAC-SHA256, keyed with secret's key, over
// "id.unix-seconds.body".
func SignStandard(secret string, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(standardMAC(key, id, ts.Unix(), body)), nil
}

// standardMAC is the raw HMAC of one message.
func standardMAC(key []byte, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyStandard checks a Standard Webhooks request: the webhook-id,
// webhook-timestamp and webhook-signature headers of h and the raw body.
// The timestamp must lie within tolerance of now in both directions
// (ErrStale otherwise); one of the space-separated "v1,<base64>" entries
// of webhook-signature must match, compared in constant time
// (ErrBadSignature otherwise, also for missing or malformed headers).
// Entries of other versions are ignored. A bad secret is ErrBadSecret.
// Deduplicating by webhook-id is the caller's job.
func VerifyStandard(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s header", ErrBadSignature, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrBadSignature, HeaderTimestamp)
	}
	ts := time.Unix(unix, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s is %s from now", ErrStale, HeaderTimestamp, d.Round(time.Second))
	}
	want := standardMAC(key, id, unix, body)
	for i, entry := range strings.Fields(sigs) {
		if i == maxSignatures {
			break
		}
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) { // constant time
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrBadSignature)
}
