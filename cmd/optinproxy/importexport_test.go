package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIImportSample imports docs/import-sample.csv, the file the README
// shows, and a semicolon-separated one as Dutch Excel saves it; counts
// read "1 row", "2 rows".
func TestCLIImportSample(t *testing.T) {
	dir := t.TempDir()
	s := serveOn(t, "embedded", dir)
	cli := cliOf(t, dir, s)
	copyFile(t, "../../docs/import-sample.csv", filepath.Join(dir, "import-sample.csv"))
	mustOut(t, cli("import", "import-sample.csv"), "5 rows: 5 applied, 0 unchanged (already stored or older), 0 bad")
	mustOut(t, cli("consent", "show", "bob@example.com"), "newsletter  withdrawn")
	// Again: the dated rows are repeats, the undated ones cannot undo
	// what is stored.
	mustOut(t, cli("import", "import-sample.csv"), "5 rows: 0 applied, 5 unchanged")

	copyFile(t, "../../admin/testdata/import-semicolon.csv", filepath.Join(dir, "excel.csv"))
	// anna and bob are stored already, from the sample.
	mustOut(t, cli("import", "excel.csv"), "3 rows: 1 applied, 2 unchanged (already stored or older), 0 bad")
	mustOut(t, cli("consent", "show", "piet@example.com"), "newsletter  granted")

	os.WriteFile(filepath.Join(dir, "one.csv"), []byte("email,purpose,status,basis,source\nbroken,newsletter,granted,consent,import\n"), 0o600)
	r := cli("import", "one.csv")
	if !strings.Contains(r.stdout, "1 row: 0 applied, 0 unchanged (already stored or older), 1 bad") || !strings.Contains(r.stdout, "one.csv:2: bad address") {
		t.Errorf("one bad row:\n%s", r.stdout)
	}
	failsWith(t, r, 1, "optinproxy import: 1 bad row was skipped")
	os.WriteFile(filepath.Join(dir, "two.csv"), []byte("email,purpose,status,basis,source\nbroken,newsletter,granted,consent,import\nerik@example.com,newsletter,granted\n"), 0o600)
	r = cli("import", "two.csv")
	if !strings.Contains(r.stdout, "2 rows: 0 applied") || !strings.Contains(r.stdout, "two.csv:3: missing column basis") {
		t.Errorf("two bad rows:\n%s", r.stdout)
	}
	failsWith(t, r, 1, "optinproxy import: 2 bad rows were skipped")
}

// TestCLIExportNoClobber: export never overwrites a file unless told to;
// an XLSX goes to standard output when that is piped, to EMAIL.xlsx when
// it is a terminal.
func TestCLIExportNoClobber(t *testing.T) {
	dir := t.TempDir()
	s := serveOn(t, "embedded", dir)
	cli := cliOf(t, dir, s)
	mustOut(t, cli("consent", "grant", "jan@example.com", "newsletter"), "granted")

	mustOut(t, cli("export", "jan@example.com", "--format", "xlsx", "--output", "jan.xlsx"), "wrote jan.xlsx")
	os.WriteFile(filepath.Join(dir, "jan.xlsx"), []byte("mine"), 0o600)
	failsWith(t, cli("export", "jan@example.com", "--format", "xlsx", "--output", "jan.xlsx"), 1,
		"jan.xlsx exists; give --force to overwrite it, or another --output")
	failsWith(t, cli("export", "jan@example.com", "--output", "jan.xlsx"), 1, "jan.xlsx exists")
	if b, _ := os.ReadFile(filepath.Join(dir, "jan.xlsx")); string(b) != "mine" {
		t.Errorf("a refused export changed the file: %q", b)
	}
	mustOut(t, cli("export", "jan@example.com", "--format", "xlsx", "--output", "jan.xlsx", "--force"), "wrote jan.xlsx")
	if b, _ := os.ReadFile(filepath.Join(dir, "jan.xlsx")); !bytes.HasPrefix(b, []byte("PK")) {
		t.Errorf("--force did not write the workbook: %q", b[:min(len(b), 8)])
	}

	// Piped, the workbook goes where it is sent, like json and csv.
	r := cli("export", "jan@example.com", "--format", "xlsx")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "PK") {
		t.Errorf("piped xlsx: exit %d, stdout starts %q", r.code, r.stdout[:min(len(r.stdout), 20)])
	}
	if _, err := os.Stat(filepath.Join(dir, "jan@example.com.xlsx")); err == nil {
		t.Error("a piped export wrote jan@example.com.xlsx as well")
	}

	// On a terminal (script(1) gives the command one), EMAIL.xlsx; once.
	onTerminal := func() string {
		cmd := exec.Command("script", "-qec", binary+" export jan@example.com --format xlsx", "/dev/null")
		cmd.Dir = dir
		cmd.Env = append(cleanEnv(), "OPTINPROXY_ADDR="+s.httpAddr)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := onTerminal(); !strings.Contains(out, "wrote jan@example.com.xlsx") {
		t.Errorf("xlsx on a terminal: %s", out)
	}
	if out := onTerminal(); !strings.Contains(out, "jan@example.com.xlsx exists; give --force") {
		t.Errorf("xlsx on a terminal, the file there already: %s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
