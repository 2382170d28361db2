package optinproxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"optinproxy/internal/testtools"
)

const unitFile = "deploy/systemd/optinproxy.service"

// TestSystemdUnitVerifies: systemd-analyze verify accepts the unit, with
// its ExecStart binary where the unit says (here: the unit's path pointed
// at the binary the Dockerfile's command builds), and rejects broken
// copies: a misspelt directive, a bad value, a binary that is not there.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testtools.Need(t, "systemd-analyze", "systemd")
	bin := imageBinary(t)
	raw, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/optinproxy ") {
		t.Fatalf("%s does not start /usr/local/bin/optinproxy", unitFile)
	}
	verify := func(text string) (bool, string) {
		// verify takes the unit's name from the file's, so each copy gets
		// a folder of its own.
		path := filepath.Join(t.TempDir(), "optinproxy.service")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		// Unknown keys and bad values are only warnings, exit 0: any
		// output is a failure.
		return err == nil && len(strings.TrimSpace(string(out))) == 0, string(out)
	}
	installed := strings.ReplaceAll(unit, "/usr/local/bin/optinproxy", bin)
	if ok, out := verify(installed); !ok {
		t.Errorf("systemd-analyze verify %s:\n%s", unitFile, out)
	}
	for _, broken := range []struct{ name, old, new string }{
		{"a misspelt directive", "\nProtectHome=yes", "\nProtectHme=yes"},
		{"a bad value", "\nProtectSystem=strict", "\nProtectSystem=bogus"},
		{"a missing binary", bin + " serve", bin + "-missing serve"},
	} {
		text := strings.Replace(installed, broken.old, broken.new, 1)
		if text == installed {
			t.Fatalf("%s: %q is not in the unit", broken.name, broken.old)
		}
		if ok, out := verify(text); ok {
			t.Errorf("systemd-analyze verify passed a copy with %s:\n%s", broken.name, out)
		}
	}
}

// TestSystemdUnitHardening: the unit keeps the hardening it documents, and
// systemd-analyze security rates its exposure low.
func TestSystemdUnitHardening(t *testing.T) {
	analyze := testtools.Need(t, "systemd-analyze", "systemd")
	raw, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			set[k] = append(set[k], v)
		}
	}
	for key, want := range map[string]string{
		"User":                    "optinproxy",
		"StateDirectory":          "optinproxy",
		"WorkingDirectory":        "/var/lib/optinproxy",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"MemoryDenyWriteExecute":  "yes",
		"Restart":                 "on-failure",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Type":                    "simple",
	} {
		if v := set[key]; len(v) == 0 || v[0] != want {
			t.Errorf("%s=%q, want %q", key, v, want)
		}
	}
	// serve asks for 2 x smtp.max_connections + 256 descriptors (1000 by
	// default).
	if n, err := strconv.Atoi(strings.Join(set["LimitNOFILE"], "")); err != nil || n < 2*1000+256 {
		t.Errorf("LimitNOFILE=%q, want at least 2256 for the default smtp.max_connections", set["LimitNOFILE"])
	}
	out, err := exec.Command(analyze, "security", "--offline=true", unitFile).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for optinproxy.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2 {
		t.Errorf("systemd-analyze security rates the exposure %.1f, want 2.0 or less (docs/deploy.md says 1.2)", score)
	}
}
