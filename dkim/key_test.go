package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// LoadKey reads each form key tools write, and the key it returns signs
// messages that verify.
func TestLoadKeyForms(t *testing.T) {
	ed := edKey().(ed25519.PrivateKey)
	rs := rsaKey()
	pkcs8 := func(k crypto.Signer) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPriv(rs))})
	for _, tt := range []struct {
		name string
		data []byte
		want crypto.PublicKey
	}{
		{"PKCS #8 Ed25519", pkcs8(ed), ed.Public()},
		{"PKCS #8 RSA", pkcs8(rs), rs.Public()},
		{"PKCS #1 RSA", pkcs1, rs.Public()},
		{"base64 Ed25519 seed", []byte(base64.StdEncoding.EncodeToString(ed.Seed()) + "\n"), ed.Public()},
		{"base64 Ed25519 seed and public key", []byte(base64.StdEncoding.EncodeToString(ed)), ed.Public()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key, err := LoadKey(writeKey(t, tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
				t.Fatal("a different key")
			}
			k := Key{Domain: "shop.example", Selector: "s1", Signer: key}
			out, _ := signed(t, newSigner(t, k), newsletter("a@shop.example"))
			if vs := verify(t, out, records(t, k)); len(vs) != 1 || vs[0].Err != nil {
				t.Errorf("does not verify: %+v", vs)
			}
		})
	}
}

// LoadKey says what is wrong with a file that holds no usable key.
func TestLoadKeyRefuses(t *testing.T) {
	ec, err := x509.MarshalPKCS8PrivateKey(ecKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ed := edKey().(ed25519.PrivateKey)
	badPair := append(ed.Seed(), make([]byte, 32)...)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", []byte("not a key\n")},
		{"certificate", cert},
		{"ECDSA", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ec})},
		{"garbage PKCS #8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})},
		{"garbage PKCS #1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("junk")})},
		{"base64 of 16 bytes", []byte(base64.StdEncoding.EncodeToString(make([]byte, 16)))},
		{"seed with a wrong public key", []byte(base64.StdEncoding.EncodeToString(badPair))},
		{"RSA 512", readFile(t, "testdata/rsa512.pem")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := LoadKey(writeKey(t, tt.data)); !errors.Is(err, ErrKey) {
				t.Errorf("LoadKey: %v, want ErrKey", err)
			}
		})
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "none.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := make([]byte, maxKeyBytes+1)
	if _, err := LoadKey(writeKey(t, big)); !errors.Is(err, ErrKey) {
		t.Errorf("oversized file: %v", err)
	}
}

// RSA keys of 1024 bits sign (RFC 8301's floor); RSABits lets
// check-config warn of them.
func TestRSABits(t *testing.T) {
	short := genRSA(1024)
	if _, err := New([]Key{{Domain: "a.example", Selector: "s", Signer: short}}, Options{}); err != nil {
		t.Errorf("1024-bit key refused: %v", err)
	}
	if got := RSABits(short); got != 1024 {
		t.Errorf("RSABits = %d", got)
	}
	if got := RSABits(edKey()); got != 0 {
		t.Errorf("RSABits(Ed25519) = %d", got)
	}
}

func writeKey(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func rsaPriv(k crypto.Signer) *rsa.PrivateKey { return k.(*rsa.PrivateKey) }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
