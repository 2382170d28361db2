package dkim

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// A copy is signed with every key of its From domain, Ed25519 and RSA,
// and each signature verifies with go-msgauth.
func TestSignVerifies(t *testing.T) {
	ed := Key{Domain: "shop.example", Selector: "ed1", Signer: edKey()}
	rs := Key{Domain: "shop.example", Selector: "rsa1", Signer: rsaKey()}
	for _, tt := range []struct {
		name string
		keys []Key
	}{
		{"ed25519", []Key{ed}},
		{"rsa", []Key{rs}},
		{"both", []Key{ed, rs}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, res := signed(t, newSigner(t, tt.keys...), newsletter("nieuws@Shop.Example"))
			if !res.Signed || res.Broken != 0 {
				t.Fatalf("result %+v, want signed and nothing broken", res)
			}
			vs := verify(t, out, records(t, tt.keys...))
			if len(vs) != len(tt.keys) {
				t.Fatalf("%d signatures, want %d:\n%s", len(vs), len(tt.keys), out)
			}
			for _, v := range vs {
				if v.Err != nil || v.Domain != "shop.example" {
					t.Errorf("signature of %s: %v", v.Domain, v.Err)
				}
			}
		})
	}
}

// The unsubscribe fields are signed, From and them once more than they
// occur (RFC 8058 section 4 asks that they be covered; the extra entry
// breaks the signature when one is added later).
func TestSignCoversUnsubscribeHeaders(t *testing.T) {
	key := Key{Domain: "shop.example", Selector: "s1", Signer: edKey()}
	out, _ := signed(t, newSigner(t, key), newsletter("nieuws@shop.example"))
	vs := verify(t, out, records(t, key))
	if len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verifications %+v", vs)
	}
	count := func(name string) int {
		return len(slices.DeleteFunc(slices.Clone(vs[0].HeaderKeys), func(h string) bool { return !strings.EqualFold(h, name) }))
	}
	for name, want := range map[string]int{
		"From": 2, "List-Unsubscribe": 2, "List-Unsubscribe-Post": 2,
		"List-Id": 1, "Subject": 1, "To": 1, "Message-ID": 1, "Cc": 0,
	} {
		if got := count(name); got != want {
			t.Errorf("h= holds %s %d times, want %d: %v", name, got, want, vs[0].HeaderKeys)
		}
	}

	// A List-Unsubscribe added on the way (pointing elsewhere) breaks it.
	tampered := append([]byte("List-Unsubscribe: <https://evil.example/>\r\n"), out...)
	if vs := verify(t, tampered, records(t, key)); len(vs) != 1 || vs[0].Err == nil {
		t.Errorf("a List-Unsubscribe added after signing still verifies")
	}
}

// Messages are signed only with a key of exactly their From domain, and
// only when the author is clear; otherwise they pass through unchanged.
func TestSignNeedsKeyOfFromDomain(t *testing.T) {
	s := newSigner(t, Key{Domain: "shop.example", Selector: "s1", Signer: edKey()})
	for _, tt := range []struct {
		name string
		msg  []byte
	}{
		{"no From", message([]string{"To: a@example.net", "Subject: x"}, "body\r\n")},
		{"other domain", newsletter("nieuws@other.example")},
		{"subdomain", newsletter("nieuws@mail.shop.example")},
		{"parent domain", newsletter("nieuws@example")},
		{"two From fields", message([]string{"From: a@shop.example", "From: b@shop.example"}, "x\r\n")},
		{"two mailboxes", message([]string{"From: a@shop.example, b@shop.example"}, "x\r\n")},
		{"no address", message([]string{"From: Shop"}, "x\r\n")},
		{"empty message", nil},
		{"header starts with white space", []byte(" stray\r\nFrom: a@shop.example\r\n\r\nx\r\n")},
		{"header line without colon", []byte("From: a@shop.example\r\nstray\r\n\r\nx\r\n")},
		{"field without name", []byte("From: a@shop.example\r\n: x\r\n\r\nx\r\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, res := signed(t, s, tt.msg)
			if res.Signed {
				t.Errorf("signed")
			}
			if !bytes.Equal(out, tt.msg) {
				t.Errorf("message changed:\n%q\nwant\n%q", out, tt.msg)
			}
		})
	}
}

// From forms that must still find the domain.
func TestSignFromForms(t *testing.T) {
	key := Key{Domain: "shop.example", Selector: "s1", Signer: edKey()}
	s := newSigner(t, key)
	for _, from := range []string{
		"From: nieuws@shop.example",
		"From: Shop B.V. <nieuws@shop.example>", // unquoted dot: not RFC 5322, common
		"From: =?windows-1252?Q?Caf=E9?= <nieuws@shop.example>",
		"From: \"Shop\"\r\n <nieuws@SHOP.EXAMPLE.>",
		"from:nieuws@shop.example (Shop)",
	} {
		msg := message([]string{from, "Subject: x"}, "x\r\n")
		out, res := signed(t, s, msg)
		if !res.Signed {
			t.Errorf("%q: not signed", from)
			continue
		}
		if vs := verify(t, out, records(t, key)); len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("%q: does not verify: %+v", from, vs)
		}
	}
}

// Odd shapes still sign and verify: no body, no blank line, a header
// only without final line end, bare LF lines.
func TestSignOddShapes(t *testing.T) {
	key := Key{Domain: "shop.example", Selector: "s1", Signer: rsaKey()}
	s := newSigner(t, key)
	for name, msg := range map[string]string{
		"empty body":        "From: a@shop.example\r\nSubject: x\r\n\r\n",
		"no blank line":     "From: a@shop.example\r\nSubject: x\r\n",
		"no final line end": "From: a@shop.example\r\nSubject: x",
		"bare LF":           "From: a@shop.example\nSubject: x\n\nline\n",
		"trailing blanks":   "From: a@shop.example\r\n\r\nx\r\n\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, res := signed(t, s, []byte(msg))
			if !res.Signed {
				t.Fatal("not signed")
			}
			if vs := verify(t, out, records(t, key)); len(vs) != 1 || vs[0].Err != nil {
				t.Errorf("does not verify: %v\n%q", vs[0].Err, out)
			}
		})
	}
}

// New refuses what cannot sign.
func TestNewRefuses(t *testing.T) {
	ed := edKey()
	for _, tt := range []struct {
		name string
		keys []Key
		opts Options
		want error
	}{
		{"no domain", []Key{{Selector: "s", Signer: ed}}, Options{}, ErrConfig},
		{"no selector", []Key{{Domain: "a.example", Signer: ed}}, Options{}, ErrConfig},
		{"no private key", []Key{{Domain: "a.example", Selector: "s"}}, Options{}, ErrConfig},
		{"selector twice", []Key{{Domain: "a.example", Selector: "s", Signer: ed}, {Domain: "A.example", Selector: "S", Signer: ed}}, Options{}, ErrConfig},
		{"From not signed", []Key{{Domain: "a.example", Selector: "s", Signer: ed}}, Options{Headers: []string{"Subject"}}, ErrConfig},
		{"ECDSA key", []Key{{Domain: "a.example", Selector: "s", Signer: ecKey(t)}}, Options{}, ErrKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.keys, tt.opts); !errors.Is(err, tt.want) {
				t.Errorf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

// A key that fails to sign is an error, and nothing is written.
func TestSignKeyFails(t *testing.T) {
	s := newSigner(t, Key{Domain: "shop.example", Selector: "s1", Signer: failingSigner{edKey()}})
	var out bytes.Buffer
	if _, _, err := s.Sign(&out, newsletter("a@shop.example")); err == nil {
		t.Fatal("no error from a key that cannot sign")
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes", out.Len())
	}
}

// A failed write is returned.
func TestSignWriteFails(t *testing.T) {
	s := newSigner(t, Key{Domain: "shop.example", Selector: "s1", Signer: edKey()})
	for _, msg := range [][]byte{newsletter("a@shop.example"), newsletter("a@other.example")} {
		if _, _, err := s.Sign(failingWriter{}, msg); !errors.Is(err, errWrite) {
			t.Errorf("Sign: %v, want the write error", err)
		}
	}
}

// The relay declares the interface it signs through with plain types;
// a Signer satisfies it.
var _ interface {
	Sign(w io.Writer, msg []byte, changed ...string) (bool, int, error)
} = (*Signer)(nil)

// A field's value is unfolded: line breaks go, the whitespace after them
// stays, and a CR that ends no line is kept.
func TestFieldValue(t *testing.T) {
	for raw, want := range map[string]string{
		"From: a@shop.example\r\n":                 "a@shop.example",
		"From:a@shop.example":                      "a@shop.example",
		"From: \"Shop\"\r\n <a@shop.example> \r\n": "\"Shop\" <a@shop.example>",
		"From: \"Shop\"\n\t<a@shop.example>\n":     "\"Shop\"\t<a@shop.example>",
		"DKIM-Signature: v=1;\r\n b=ab\r\n cd\r\n": "v=1; b=ab cd",
		"DKIM-Signature: v=1;\r\r\n b=x\r\n":       "v=1;\r b=x",
		"Subject:\r\n \r\n":                        "",
		"X-No-Colon\r\n":                           "",
		"Subject:  a\rb  \r\n":                     "a\rb",
	} {
		msg := []byte(raw)
		if got := (field{start: 0, end: len(msg)}).value(msg); got != want {
			t.Errorf("value of %q = %q, want %q", raw, got, want)
		}
	}
}
