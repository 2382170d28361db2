package dkim

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"optinproxy/internal/testtools"
)

// dkimpy returns the python3 that can import dkimpy (Debian's
// python3-dkim, with python3-nacl for Ed25519), installing them when
// missing; the test skips when they cannot be had: dkimpy is the second
// opinion, go-msgauth the first.
func dkimpy(t *testing.T) string {
	t.Helper()
	// dknewkey comes with python3-dkim; its #! line names the Debian
	// python3 that has the module (PATH may lead to another one).
	dknewkey, err := testtools.Find(t, "dknewkey", "python3-dkim python3-nacl")
	if err != nil {
		t.Skipf("dkimpy is not installed and cannot be: %v", err)
	}
	python := "/usr/bin/python3"
	if b, err := os.ReadFile(dknewkey); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(strings.TrimPrefix(line, "#!")); len(f) == 1 {
			python = f[0]
		}
	}
	if out, err := exec.Command(python, "-c", "import dkim, nacl").CombinedOutput(); err != nil {
		t.Skipf("python3 cannot import dkim and nacl: %v: %s", err, out)
	}
	return python
}

// pyVerify runs testdata/verify.py on msg and returns its lines, failing
// the test when a signature does not verify.
func pyVerify(t *testing.T, python string, msg []byte, txt map[string]string) []string {
	t.Helper()
	lines, err := pyRun(python, msg, txt)
	if err != nil {
		t.Fatalf("dkimpy: %v\nmessage:\n%s", err, msg)
	}
	return lines
}

func pyRun(python string, msg []byte, txt map[string]string) ([]string, error) {
	args := []string{"testdata/verify.py"}
	for name, rec := range txt {
		args = append(args, name, rec)
	}
	cmd := exec.Command(python, args...)
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		return lines, fmt.Errorf("%w: %s%s", err, out, stderr.String())
	}
	return lines, nil
}

// A second, independent verifier (dkimpy) accepts our signatures,
// Ed25519 and RSA, and sees the unsubscribe fields signed.
func TestDkimpyVerifies(t *testing.T) {
	python := dkimpy(t)
	ed := Key{Domain: "shop.example", Selector: "ed1", Signer: edKey()}
	rs := Key{Domain: "shop.example", Selector: "rsa1", Signer: rsaKey()}
	out, res := signed(t, newSigner(t, ed, rs), newsletter("nieuws@shop.example"))
	if !res.Signed {
		t.Fatal("not signed")
	}
	txt := records(t, ed, rs)
	lines := pyVerify(t, python, out, txt)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ok") || !strings.HasPrefix(lines[1], "ok") {
		t.Fatalf("dkimpy saw %d signatures, want 2: %q", len(lines), lines)
	}
	for _, l := range lines {
		h := strings.ToLower(l[strings.Index(l, "h="):])
		for _, want := range []string{"list-unsubscribe:list-unsubscribe:", "list-unsubscribe-post:list-unsubscribe-post", "from:from"} {
			if !strings.Contains(h, want) {
				t.Errorf("%s: h= lacks %s", l, want)
			}
		}
	}
	// The verifier is not a yes-man: a changed body fails.
	if lines, err := pyRun(python, bytes.Replace(out, []byte("aanbiedingen"), []byte("Aanbiedingen"), 1), txt); err == nil {
		t.Errorf("dkimpy accepts a changed body: %q", lines)
	}
}

// A CRM signature the footer broke is gone, and dkimpy finds ours and
// the intact one good.
func TestDkimpyAfterRemoval(t *testing.T) {
	python := dkimpy(t)
	ours := Key{Domain: "shop.example", Selector: "s1", Signer: rsaKey()}
	s := newSigner(t, ours)
	for _, msg := range [][]byte{
		withFooter(crmSign(t, newsletter("a@shop.example"), crm, "relaxed", nil)),
		crmSign(t, newsletter("a@shop.example"), crm, "simple", nil),
	} {
		out, _ := signed(t, s, msg)
		pyVerify(t, python, out, records(t, ours, crm))
	}
}

// Keys made by dkimpy's dknewkey (RSA in PEM, Ed25519 as a bare base64
// seed) load, and their signatures verify against the DNS records
// dknewkey wrote.
func TestDknewkeyKeys(t *testing.T) {
	python := dkimpy(t)
	dknewkey, err := exec.LookPath("dknewkey")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			base := filepath.Join(dir, kind)
			if out, err := exec.Command(dknewkey, "--ktype", kind, base).CombinedOutput(); err != nil {
				t.Fatalf("dknewkey: %v: %s", err, out)
			}
			signer, err := LoadKey(base + ".key")
			if err != nil {
				t.Fatal(err)
			}
			dns, err := os.ReadFile(base + ".dns")
			if err != nil {
				t.Fatal(err)
			}
			k := Key{Domain: "shop.example", Selector: kind, Signer: signer}
			out, _ := signed(t, newSigner(t, k), newsletter("a@shop.example"))
			txt := map[string]string{kind + "._domainkey.shop.example": strings.TrimSpace(string(dns))}
			pyVerify(t, python, out, txt)
			if vs := verify(t, out, txt); len(vs) != 1 || vs[0].Err != nil {
				t.Errorf("go-msgauth: %+v", vs)
			}
		})
	}
}
