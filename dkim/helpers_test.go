package dkim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// Keys made once per test binary: RSA generation is slow.
var (
	edKey  = sync.OnceValue(func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k })
	rsaKey = sync.OnceValue(func() crypto.Signer { return genRSA(2048) })
)

func genRSA(bits int) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// txtRecord is the DNS TXT record that publishes k's public half.
func txtRecord(t testing.TB, k crypto.Signer) string {
	t.Helper()
	switch pub := k.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
	t.Fatalf("no TXT record for %T", k)
	return ""
}

// records maps selector._domainkey.domain to its TXT record.
func records(t testing.TB, keys ...Key) map[string]string {
	m := map[string]string{}
	for _, k := range keys {
		m[k.Selector+"._domainkey."+k.Domain] = txtRecord(t, k.Signer)
	}
	return m
}

// verify checks msg's signatures with go-msgauth, the TXT records given
// standing in for DNS, and returns them by domain and selector.
func verify(t testing.TB, msg []byte, txt map[string]string) []*msgauth.Verification {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if r, ok := txt[name]; ok {
				return []string{r}, nil
			}
			return nil, fmt.Errorf("no TXT record at %s", name)
		},
	})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return vs
}

// message builds a CRLF message from header lines and a body.
func message(header []string, body string) []byte {
	return []byte(strings.Join(header, "\r\n") + "\r\n\r\n" + body)
}

// newsletter is a marketing copy as the relay hands it over, the
// unsubscribe headers in place.
func newsletter(from string) []byte {
	return message([]string{
		"From: \"Shop B.V.\" <" + from + ">",
		"To: klant@example.net",
		"Subject: Nieuws van deze week",
		"Date: Mon, 02 Mar 2026 10:00:00 +0100",
		"Message-ID: <n1@shop.example>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"List-Unsubscribe: <https://optin.shop.example/u/TOKEN>",
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		"List-Id: Nieuwsbrief <newsletter.shop.example>",
	}, "Beste klant,\r\n\r\nDe aanbiedingen  van deze week.\t \r\n\r\nAfmelden: https://optin.shop.example/u/TOKEN\r\n\r\n")
}

func newSigner(t testing.TB, keys ...Key) *Signer {
	t.Helper()
	s, err := New(keys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// result is what Sign returned besides the message and the error.
type result struct {
	Signed bool
	Broken int
}

func signed(t testing.TB, s *Signer, msg []byte, changed ...string) ([]byte, result) {
	t.Helper()
	var out bytes.Buffer
	ok, broken, err := s.Sign(&out, msg, changed...)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), result{ok, broken}
}

func ecKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// failingSigner is a key whose signing fails, as a hardware key may.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("token removed")
}

var errWrite = errors.New("connection lost")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

// limitedCounter is a hash.Hash that only counts what is written.
type limitedCounter struct{ n int64 }

func (c *limitedCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
func (c *limitedCounter) Sum(b []byte) []byte         { return b }
func (c *limitedCounter) Reset()                      { c.n = 0 }
func (c *limitedCounter) Size() int                   { return 0 }
func (c *limitedCounter) BlockSize() int              { return 1 }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
