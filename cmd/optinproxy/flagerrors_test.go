package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A wrong flag, of any command, is one line on standard error that names
// the flag as --help does (two dashes), and lists the flags there are;
// exit status 2. Nothing is started or asked of a server.
func TestUnknownFlagOfEveryCommand(t *testing.T) {
	for _, c := range commands {
		for _, name := range invocations(c) {
			args := append(append([]string{}, name...), "--no-such-flag")
			code, out, errs := runHere(args...)
			if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line on stderr", args, code, out, errs)
			}
			want := "optinproxy " + c.name + ": unknown flag --no-such-flag; " + strings.Join(name, " ") + " takes "
			if _, verbs := subcommands[c.name]; verbs && len(name) == 1 {
				want = "optinproxy " + c.name + `: unknown subcommand "--no-such-flag": want `
			}
			if !strings.HasPrefix(errs, want) {
				t.Errorf("%q: %q, want it to start with %q", args, errs, want)
			}
		}
	}
}

// invocations are the ways to call c: its name, and its name with each
// of its verbs.
func invocations(c command) [][]string {
	names := [][]string{{c.name}}
	for _, verb := range subcommands[c.name] {
		names = append(names, []string{c.name, verb})
	}
	return names
}

// A flag's bad or missing value names the flag, the value and what would
// be valid, by the flag's type or in its own words.
func TestBadFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "expiring", "--days", "x"}, `optinproxy report: --days "x": want a whole number`},
		{[]string{"report", "expiring", "--days"}, `optinproxy report: --days needs a value: a whole number`},
		{[]string{"hash-password", "--cost", "x", "pw"}, `optinproxy hash-password: --cost "x": want a whole number`},
		{[]string{"export", "jan@example.com", "--force=maybe"}, `optinproxy export: --force "maybe": want true or false, or the flag alone for true`},
		{[]string{"export", "jan@example.com", "--format"}, `optinproxy export: --format needs a value: json, csv or xlsx`},
		{[]string{"consent", "grant", "jan@example.com", "newsletter", "--evidence", "campaign"}, `optinproxy consent: --evidence "campaign": want key=value`},
		// The flag meant, when one begins with what was typed.
		{[]string{"export", "jan@example.com", "--out", "jan.json"}, `optinproxy export: unknown flag --out (did you mean --output?); export takes --addr, --config, --force, --format, --output, --token`},
		{[]string{"version", "-x"}, `optinproxy version: unknown flag --x; version takes no flags`},
		// Values the flag's type takes, but the command does not.
		{[]string{"export", "jan@example.com", "--format", "pdf"}, `optinproxy export: --format "pdf": want json, csv or xlsx`},
		{[]string{"report", "expiring", "--format", "xml"}, `optinproxy report: --format "xml": want table, csv or json for report expiring`},
		{[]string{"report", "processing", "--format", "csv"}, `optinproxy report: --format "csv": want markdown or json for report processing`},
		{[]string{"report", "expiring", "--days", "0"}, `optinproxy report: --days 0: want at least 1`},
		{[]string{"outbox", "list", "--status", "gone"}, `optinproxy outbox: --status "gone": want dead, pending or retired`},
		{[]string{"hash-password", "--cost", "99", "pw"}, `optinproxy hash-password: --cost 99: want 4 to 31`},
		{[]string{"unsubscribe-url", "jan@example.com"}, `optinproxy unsubscribe-url: --purpose is required, e.g. --purpose newsletter`},
	} {
		code, out, errs := runHere(tc.args...)
		if code != 2 || out != "" || errs != tc.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
	// The flags keep their types for --help after a refused value.
	if _, out, _ := runHere("report", "--help"); !strings.Contains(out, "-days int") {
		t.Errorf("report --help lacks -days int:\n%s", out)
	}
}

// An API command that finds no token says, on one line that ends the
// output, every way to give one; exit status 2.
func TestNoTokenLine(t *testing.T) {
	r := runCmd(t, t.TempDir(), "", []string{"OPTINPROXY_ADDR=127.0.0.1:1"}, "verify")
	want := "optinproxy verify: no token: give --token, OPTINPROXY_TOKEN or --config with the server's configuration, " +
		"or run in the folder where `optinproxy serve` made data/admin.token\n"
	if r.code != 2 || r.stdout != "" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", r.code, r.stdout, r.stderr, want)
	}
}

// A hostile flag, value or argument echoed in an error (an escape
// sequence, a newline, NUL, a bidirectional override, a byte that is no
// UTF-8, or 64 KiB of it) stays one line on standard error and reaches
// the terminal escaped, never as a control character.
func TestHostileFlagsEchoedSafely(t *testing.T) {
	long := strings.Repeat("\x1b[2J", 16<<10)
	for _, args := range [][]string{
		{"serve", "--\x1b[31mred\nsecond line"},
		{"serve", "---\x1b]0;title\x07"},
		{"serve", "--con\x00fig", "x"},
		{"export", "jan@example.com", "--format", "pdf\r\x1b[1A"},
		{"report", "expiring", "--days", "\u202e1"},
		{"hash-password", "--cost", "\xff\xfe", "pw"},
		{"serve", "--" + long},
		{"consent", "grant", "jan@example.com", "newsletter", "--evidence", "a\x1bb"},
	} {
		code, out, errs := runHere(args...)
		if code == 0 || out != "" {
			t.Errorf("%q: exit %d, stdout %q; want an error", args, code, out)
		}
		if strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
			t.Errorf("%q: stderr is not one line: %q", args, errs)
		}
		for _, r := range strings.TrimSuffix(errs, "\n") {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == utf8.RuneError {
				t.Errorf("%q: stderr carries %U raw: %q", args, r, errs)
				break
			}
		}
	}
	// A configuration's problems are a list, one line each: a path with a
	// newline is still one problem on one line.
	code, _, errs := runHere("check-config", "/nonexistent/\x1b[31m\nconfig.yaml")
	if want := "optinproxy: configuration has problems:\nopen /nonexistent/\\x1b[31m\\nconfig.yaml: no such file or directory\n"; code != 2 || errs != want {
		t.Errorf("check-config of a hostile path: exit %d, stderr %q, want %q", code, errs, want)
	}
	// What is escaped is still there to read.
	if _, _, errs := runHere("serve", "--\x1b[31mred"); errs != `optinproxy serve: unknown flag --\x1b[31mred; serve takes --config`+"\n" {
		t.Errorf("stderr %q", errs)
	}
}
