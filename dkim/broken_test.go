package dkim

import (
	"bytes"
	"strings"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// crmSign signs msg as a CRM would, with go-msgauth, in the given body
// canonicalization, signing headers (nil: all of them).
func crmSign(t testing.TB, msg []byte, key Key, body msgauth.Canonicalization, headers []string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := msgauth.Sign(&out, bytes.NewReader(msg), &msgauth.SignOptions{
		Domain: key.Domain, Selector: key.Selector, Signer: key.Signer,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   body,
		HeaderKeys:             headers,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// withFooter appends a footer to msg's body, as the injection does.
func withFooter(msg []byte) []byte {
	return append(bytes.Clone(msg), "--\r\nAfmelden: https://optin.example/u/T\r\n"...)
}

var crm = Key{Domain: "crm.example", Selector: "crm", Signer: edKey()}

// The body hash recomputed here matches the one go-msgauth signs, in
// both canonicalizations, for bodies with the shapes that differ.
func TestBodyHashMatchesGoMsgauth(t *testing.T) {
	bodies := []string{
		"", "\r\n", "\r\n\r\n", "x", "x\r\n", "x\r\n\r\n\r\n",
		"  a  b\t\tc \t\r\n\r\n \t\r\nd\r\n", "bare\nLF\n\n", "\r\nleading empty line\r\n",
		"tab\tin \t middle\r\n", "only space   ", "cr\rinside\r\n",
	}
	for _, body := range bodies {
		for _, c := range []msgauth.Canonicalization{msgauth.CanonicalizationSimple, msgauth.CanonicalizationRelaxed} {
			msg := crmSign(t, message([]string{"From: a@crm.example"}, body), crm, c, nil)
			if n := BrokenSignatures(msg); n != 0 {
				t.Errorf("%s body %q: %d broken, want 0", c, body, n)
			}
		}
	}
}

// A signature the footer broke is counted and, when signing, removed;
// one whose body still matches is kept.
func TestBrokenSignaturesRemoved(t *testing.T) {
	plain := newsletter("nieuws@shop.example")
	broken := withFooter(crmSign(t, plain, crm, msgauth.CanonicalizationRelaxed, nil))
	intact := crmSign(t, plain, crm, msgauth.CanonicalizationRelaxed, nil)
	ours := Key{Domain: "shop.example", Selector: "s1", Signer: edKey()}
	s := newSigner(t, ours)
	txt := records(t, ours, crm)

	out, res := signed(t, s, broken)
	if !res.Signed || res.Broken != 1 {
		t.Fatalf("broken CRM signature: result %+v, want signed, 1 broken", res)
	}
	if vs := verify(t, out, txt); len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "shop.example" {
		t.Errorf("want only our signature, verifying: %+v", vs)
	}

	out, res = signed(t, s, intact)
	if !res.Signed || res.Broken != 0 {
		t.Fatalf("intact CRM signature: result %+v, want signed, 0 broken", res)
	}
	vs := verify(t, out, txt)
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want ours and the CRM's", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("%s: %v", v.Domain, v.Err)
		}
	}
}

// Without a key the message is not touched, but the broken signature
// is reported.
func TestBrokenSignaturesWithoutKey(t *testing.T) {
	msg := withFooter(crmSign(t, newsletter("nieuws@shop.example"), crm, msgauth.CanonicalizationSimple, nil))
	out, res := signed(t, newSigner(t), msg)
	if res.Signed || res.Broken != 1 {
		t.Errorf("result %+v, want not signed, 1 broken", res)
	}
	if !bytes.Equal(out, msg) {
		t.Errorf("message changed")
	}
}

// BrokenSignatures counts what no longer verifies, and only that.
func TestBrokenSignaturesCount(t *testing.T) {
	plain := newsletter("nieuws@shop.example")
	relaxed := func(m []byte) []byte { return crmSign(t, m, crm, msgauth.CanonicalizationRelaxed, nil) }
	simple := func(m []byte) []byte { return crmSign(t, m, crm, msgauth.CanonicalizationSimple, nil) }
	noUnsub := func(m []byte) []byte {
		return crmSign(t, m, crm, msgauth.CanonicalizationRelaxed, []string{"From", "Subject"})
	}
	for _, tt := range []struct {
		name    string
		msg     []byte
		changed []string
		want    int
	}{
		{"unsigned", plain, nil, 0},
		{"intact", relaxed(plain), nil, 0},
		{"footer, relaxed", withFooter(relaxed(plain)), nil, 1},
		{"footer, simple", withFooter(simple(plain)), nil, 1},
		{"two signatures, both broken", withFooter(simple(relaxed(plain))), nil, 2},
		{"footer beyond l=", withFooter(withLength(t, relaxed(plain))), nil, 0},
		{"whitespace only, relaxed", respace(relaxed(plain)), nil, 0},
		{"whitespace only, simple", respace(simple(plain)), nil, 1},
		{"signed List-Unsubscribe replaced", relaxed(plain), []string{"list-unsubscribe"}, 1},
		{"unsigned List-Unsubscribe replaced", noUnsub(plain), []string{"List-Unsubscribe", "List-Unsubscribe-Post"}, 0},
		{"malformed signature", message([]string{"DKIM-Signature: v=1; a=rsa-sha256; bh", "From: a@b.example"}, "x"), nil, 0},
		{"unknown algorithm", message([]string{"DKIM-Signature: v=1; a=rsa-md5; bh=AAAA; h=from; d=b.example; s=s; b=AAAA", "From: a@b.example"}, "x"), nil, 0},
		{"l= beyond the body", message([]string{"DKIM-Signature: v=1; a=rsa-sha256; l=999; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; h=from; d=b.example; s=s; b=AAAA", "From: a@b.example"}, ""), nil, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := BrokenSignatures(tt.msg, tt.changed...); got != tt.want {
				t.Errorf("BrokenSignatures = %d, want %d", got, tt.want)
			}
		})
	}
}

// withLength rewrites msg's one signature's body hash as if it had l=
// covering the current body: a footer appended later leaves it intact.
// The b= no longer verifies, but the DNS-free check reads only bh= and l=.
func withLength(t testing.TB, msg []byte) []byte {
	t.Helper()
	h := split(msg)
	var c limitedCounter
	canonicalize(&limited{w: &c, left: -1}, msg[h.body:], true)
	for _, f := range h.fields {
		if strings.EqualFold(f.name, signatureField) {
			sig := string(msg[f.start:f.end])
			sig = strings.Replace(sig, "bh=", "l="+itoa(c.n)+"; bh=", 1)
			return append(append(bytes.Clone(msg[:f.start]), sig...), msg[f.end:]...)
		}
	}
	t.Fatal("no signature")
	return nil
}

// respace doubles the spaces in the body: relaxed canonicalization does
// not see it, simple does.
func respace(msg []byte) []byte {
	body := split(msg).body
	return append(bytes.Clone(msg[:body]), bytes.ReplaceAll(msg[body:], []byte(" "), []byte("  "))...)
}
