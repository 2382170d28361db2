package webhooks

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification's reference
// libraries: a known secret, message and signature.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecUnix   = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vecHeader(sig string, unix int64) http.Header {
	h := http.Header{}
	h.Set(HeaderID, vecID)
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(HeaderSignature, sig)
	return h
}

func TestSignStandardVector(t *testing.T) {
	got, err := SignStandard(vecSecret, vecID, time.Unix(vecUnix, 0), []byte(vecBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != vecSig {
		t.Errorf("SignStandard = %q, want %q", got, vecSig)
	}
}

func TestVerifyStandard(t *testing.T) {
	now := time.Unix(vecUnix, 0)
	const tol = 5 * time.Minute
	otherSig, _ := SignStandard("whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAA", vecID, now, []byte(vecBody))
	tests := []struct {
		name string
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		// The vector, as sent.
		{"valid", vecHeader(vecSig, vecUnix), vecBody, now, nil},
		// Any entry may match: key rotation sends several.
		{"one of several", vecHeader(otherSig+" v2,xyz "+vecSig, vecUnix), vecBody, now, nil},
		// Within tolerance on both sides.
		{"late within tolerance", vecHeader(vecSig, vecUnix), vecBody, now.Add(tol), nil},
		{"early within tolerance", vecHeader(vecSig, vecUnix), vecBody, now.Add(-tol), nil},
		// A changed body, another key, a changed timestamp: refused.
		{"body changed", vecHeader(vecSig, vecUnix), vecBody + " ", now, ErrBadSignature},
		{"other key", vecHeader(otherSig, vecUnix), vecBody, now, ErrBadSignature},
		{"timestamp changed", vecHeader(vecSig, vecUnix+1), vecBody, now, ErrBadSignature},
		// A replay long after, or a clock far ahead: stale.
		{"too old", vecHeader(vecSig, vecUnix), vecBody, now.Add(tol + time.Second), ErrStale},
		{"too new", vecHeader(vecSig, vecUnix), vecBody, now.Add(-tol - time.Second), ErrStale},
		// Malformed or missing headers.
		{"no signature", vecHeader("", vecUnix), vecBody, now, ErrBadSignature},
		{"not v1", vecHeader("v2"+vecSig[2:], vecUnix), vecBody, now, ErrBadSignature},
		{"not base64", vecHeader("v1,!!!", vecUnix), vecBody, now, ErrBadSignature},
		{"bad timestamp", func() http.Header { h := vecHeader(vecSig, vecUnix); h.Set(HeaderTimestamp, "soon"); return h }(), vecBody, now, ErrBadSignature},
		{"no id", func() http.Header { h := vecHeader(vecSig, vecUnix); h.Del(HeaderID); return h }(), vecBody, now, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyStandard(vecSecret, tt.h, []byte(tt.body), tt.now, tol)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("VerifyStandard = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{vecSecret, vecSecret[len("whsec_"):]} {
		if key, err := ParseSecret(s); err != nil || len(key) != 24 {
			t.Errorf("ParseSecret(%q) = %d bytes, %v", s, len(key), err)
		}
	}
	for _, s := range []string{"", "whsec_", "whsec_not base64!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(s); !errors.Is(err, ErrBadSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrBadSecret", s, err)
		}
	}
	if _, err := SignStandard("whsec_", "x", time.Now(), nil); !errors.Is(err, ErrBadSecret) {
		t.Errorf("SignStandard with a bad secret = %v", err)
	}
	if err := VerifyStandard("whsec_", vecHeader(vecSig, vecUnix), nil, time.Now(), time.Minute); !errors.Is(err, ErrBadSecret) {
		t.Errorf("VerifyStandard with a bad secret = %v", err)
	}
}

// TestStandardAgainstNode checks both directions against the official
// Node package: it accepts what we sign, we accept what it signs, and it
// refuses what we refuse.
func TestStandardAgainstNode(t *testing.T) {
	now := time.Now()
	body := []byte(`{"id":"ev1","type":"consent.withdrawn","email":"ana@example.org"}`)
	ours, err := SignStandard(vecSecret, "hook-1.ev1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, "hook-1.ev1")
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, ours)
	tampered := h.Clone()
	tampered.Set(HeaderID, "hook-1.ev2")

	sigs, verified := runNode(t, vecSecret,
		[]nodeMessage{{ID: vecID, Timestamp: vecUnix, Payload: vecBody}, {ID: "hook-1.ev1", Timestamp: now.Unix(), Payload: string(body)}},
		[]nodeSigned{signedFromHeader(h, body), signedFromHeader(tampered, body)})
	if len(sigs) != 2 || len(verified) != 2 {
		t.Fatalf("node answered %q, %q", sigs, verified)
	}
	if sigs[0] != vecSig {
		t.Errorf("node signs the vector %q, want %q", sigs[0], vecSig)
	}
	if verified[0] != "" {
		t.Errorf("node refuses our signature: %s", verified[0])
	}
	if verified[1] == "" {
		t.Error("node accepts a signature for another webhook-id")
	}
	h.Set(HeaderSignature, sigs[1])
	if err := VerifyStandard(vecSecret, h, body, now, 5*time.Minute); err != nil {
		t.Errorf("VerifyStandard refuses node's signature: %v", err)
	}
	if sigs[1] != ours {
		t.Errorf("node signs %q, we sign %q", sigs[1], ours)
	}
}
