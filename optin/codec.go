package optin

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EncodeConsent writes a record in the compact text form the embedded store
// keeps (Redis keeps a binary form, to stay within its compact hashes):
// status|basis|source|granted|updated|expires|event|gaps, times in Unix
// nanoseconds (0 for none), gaps a number. Subject, purpose and evidence
// are not in it: the store's key holds the first two, the event the last.
func EncodeConsent(c Consent) string {
	return strings.Join([]string{
		string(c.Status), string(c.Basis), c.Source,
		unixNano(c.GrantedAt), unixNano(c.UpdatedAt), unixNano(c.ExpiresAt), c.EventID,
		strconv.Itoa(int(c.Gaps)), url.QueryEscape(c.PolicyVersion), unixNano(c.NoticedAt),
	}, "|")
}

// DecodeConsent reads EncodeConsent's form back, and the older forms
// without gaps (7 fields) or without policy version and notice (8).
func DecodeConsent(a Address, purpose, s string) (Consent, error) {
	f := strings.Split(s, "|")
	if len(f) != 7 && len(f) != 8 && len(f) != 10 {
		return Consent{}, fmt.Errorf("%w: consent record %q", ErrCorrupt, s)
	}
	c := Consent{Subject: a, Purpose: purpose, Status: Status(f[0]), Basis: Basis(f[1]), Source: f[2], EventID: f[6]}
	if len(f) >= 8 {
		g, err := strconv.ParseUint(f[7], 10, 8)
		if err != nil {
			return Consent{}, fmt.Errorf("%w: consent record %q", ErrCorrupt, s)
		}
		c.Gaps = ProofGaps(g)
	}
	var err error
	if len(f) == 10 {
		if c.PolicyVersion, err = url.QueryUnescape(f[8]); err != nil {
			return Consent{}, fmt.Errorf("%w: consent record %q", ErrCorrupt, s)
		}
		if c.NoticedAt, err = fromUnixNano(f[9]); err != nil {
			return Consent{}, fmt.Errorf("%w: consent record %q", ErrCorrupt, s)
		}
	}
	for i, t := range []*time.Time{&c.GrantedAt, &c.UpdatedAt, &c.ExpiresAt} {
		if *t, err = fromUnixNano(f[3+i]); err != nil {
			return Consent{}, fmt.Errorf("%w: consent record %q", ErrCorrupt, s)
		}
	}
	return c, nil
}

func unixNano(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func fromUnixNano(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}
