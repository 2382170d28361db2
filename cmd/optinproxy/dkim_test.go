package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"optinproxy/internal/testtools"
)

// A marketing copy with its footer and List-Unsubscribe headers leaves
// DKIM-signed by the From domain's key, the unsubscribe fields among the
// signed ones, and verifies with go-msgauth and with dkimpy, an
// independent verifier.
func TestRelayedCopyIsSigned(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "dkim.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "optinproxy.yaml")
	cfg := "dkim:\n  - {domain: shop.example, selector: s1, key_file: " + keyFile + "}\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+cfgFile)
	if r := runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr, "OPTINPROXY_CONFIG=" + cfgFile},
		"consent", "grant", "jan@example.com", "newsletter", "--source", "form"); r.code != 0 {
		t.Fatalf("grant: %s%s", r.stdout, r.stderr)
	}
	if code, out := swaksSend(t, s.smtpAddr, "jan@example.com", "--header", "X-Optin-Purpose: newsletter", "--body", "Beste Jan"); code != 0 {
		t.Fatalf("newsletter: %d\n%s", code, out)
	}
	raw, _ := onlyCopy(t, dir)
	txt := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name == "s1._domainkey.shop.example" {
				return []string{txt}, nil
			}
			return nil, os.ErrNotExist
		},
	})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil {
		t.Fatalf("go-msgauth: %v %+v\n%s", err, verifications, raw)
	}
	signed := strings.Join(verifications[0].HeaderKeys, " ")
	for _, h := range []string{"List-Unsubscribe", "List-Unsubscribe-Post", "From"} {
		if !strings.Contains(strings.ToLower(" "+signed+" "), " "+strings.ToLower(h)+" ") {
			t.Errorf("%s is not signed: h=%s", h, signed)
		}
	}
	if !bytes.Contains(raw, []byte("/u/")) {
		t.Errorf("no unsubscribe link in the copy")
	}

	// dkimpy (Debian's python3-dkim), the second opinion.
	if _, err := testtools.Find(t, "dknewkey", "python3-dkim python3-nacl"); err != nil {
		t.Skipf("dkimpy cannot be installed: %v", err)
	}
	verify, err := filepath.Abs("../../dkim/testdata/verify.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", verify, "s1._domainkey.shop.example", txt)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
}
