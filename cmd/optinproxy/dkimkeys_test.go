package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-config reads each dkim key file: a key that does not load is a
// problem at its line, naming the entry; an RSA key under 2048 bits is a
// warning; good keys are ok.
func TestCheckConfigDKIMKeys(t *testing.T) {
	dir := t.TempDir()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, dir, "ed.pem", ed)
	writePEM(t, dir, "short.pem", short)
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		dkim    string
		code    int
		want    []string // in stdout for 0, in stderr otherwise
		wantNot string
	}{
		{"good key", "  - {domain: shop.example, selector: ed1, key_file: ed.pem}\n",
			0, []string{": ok"}, "warning: dkim"},
		{"short RSA key", "  - {domain: shop.example, selector: ed1, key_file: ed.pem}\n  - {domain: shop.example, selector: rsa1, key_file: short.pem}\n",
			0, []string{"warning: dkim[1]: the RSA key of rsa1._domainkey.shop.example has 1024 bits", ": ok"}, ""},
		{"not a key", "  - {domain: shop.example, selector: ed1, key_file: ed.pem}\n  - domain: shop.example\n    selector: s2\n    key_file: junk.pem\n",
			2, []string{"optinproxy.yaml:5: dkim[1].key_file: ", "junk.pem", "unusable key"}, "dkim[0]"},
		{"missing file", "  - domain: shop.example\n    selector: s2\n    key_file: none.pem\n",
			2, []string{"optinproxy.yaml:4: dkim[0].key_file: ", "none.pem"}, ""},
		{"selector twice", "  - {domain: shop.example, selector: s1, key_file: ed.pem}\n  - {domain: shop.example, selector: s1, key_file: ed.pem}\n",
			2, []string{"optinproxy.yaml:3: dkim[1].selector: "}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "optinproxy.yaml")
			if err := os.WriteFile(path, []byte("dkim:\n"+c.dkim), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, dir, "", nil, "check-config", path)
			out := r.stdout
			if c.code != 0 {
				out = r.stderr
			}
			if r.code != c.code {
				t.Fatalf("exit %d, want %d:\n%s%s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if c.wantNot != "" && strings.Contains(r.stdout+r.stderr, c.wantNot) {
				t.Errorf("output says %q:\n%s%s", c.wantNot, r.stdout, r.stderr)
			}
		})
	}
}

func writePEM(t *testing.T, dir, name string, key crypto.Signer) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}
