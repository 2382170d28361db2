package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"optinproxy/internal/testcert"
	"optinproxy/internal/testtools"
)

// The README walk reads the shell blocks of README.md (its indented code
// blocks; fenced ones are configuration) and runs them in order, as a new
// user would paste them, in one temporary folder. The README's
// conventions, which the walk relies on:
//
//   - A line "# TEXT" after a command shows a line of its output. TEXT
//     must match a whole line of what the command printed (standard output
//     and error together), the shown lines in the order given, other lines
//     may come between them; "..." stands for any text, runs of spaces
//     count as one (tables are aligned), and swaks's reply markers ("<-",
//     "<**") are not part of the line. A "#" after a command on its own
//     line is a remark, not output.
//   - A command without shown output must exit 0; one with shown output
//     may fail (a refused message is the point of some).
//   - A block that cannot run here is preceded by the HTML comment
//     <!-- not run: WHY -->, which the walk logs with its reason.
//
// What the walk does in the user's place: `go build -o optinproxy
// ./cmd/optinproxy` puts the binary these tests built in the folder (the
// folder has no source); `./optinproxy serve` starts the server as
// startServe does, on free ports rather than 2525 and 8080, which later
// commands reach through OPTINPROXY_ADDR and in place of the README's
// 127.0.0.1:2525 and 127.0.0.1:8080; `sudo apt-get install -y PKG`
// installs PKG only when its program is missing.

// readmeStep is one command of a README block and the output the README
// shows after it.
type readmeStep struct {
	line  int      // README.md line of the command
	cmd   string   // as bash runs it: continuation lines and heredocs kept
	shown []string // the lines shown after it, without "# "
}

// readmeBlock is one indented code block of the README.
type readmeBlock struct {
	line    int
	notRun  string // why the README says it cannot run here; "" to run it
	steps   []readmeStep
	problem string // a block the walk cannot read
}

var (
	notRunMark = regexp.MustCompile(`^<!-- not run: (.+) -->$`)
	heredoc    = regexp.MustCompile(`<<-?\s*['"]?(\w+)['"]?`)
	replyMark  = regexp.MustCompile(`^(<-|<\*\*|<~\*?)\s+`)
)

// readmeBlocks finds the shell blocks of a Markdown text.
func readmeBlocks(md string) []readmeBlock {
	lines := strings.Split(md, "\n")
	var blocks []readmeBlock
	fenced := false
	prose := "" // the last non-blank prose line
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		if !strings.HasPrefix(l, "    ") || (i > 0 && strings.TrimSpace(lines[i-1]) != "") {
			if strings.TrimSpace(l) != "" {
				prose = strings.TrimSpace(l)
			}
			continue
		}
		// An indented block: its lines, blank ones within it included.
		b := readmeBlock{line: i + 1}
		if m := notRunMark.FindStringSubmatch(prose); m != nil {
			b.notRun = m[1]
		}
		var body []string
		for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.TrimSpace(lines[i]) == ""); i++ {
			body = append(body, strings.TrimPrefix(lines[i], "    "))
		}
		i--
		b.steps, b.problem = readmeSteps(body, b.line)
		blocks = append(blocks, b)
		prose = ""
	}
	return blocks
}

// readmeSteps splits a block's lines into commands and their shown output.
func readmeSteps(body []string, first int) ([]readmeStep, string) {
	var steps []readmeStep
	for i := 0; i < len(body); i++ {
		l := body[i]
		switch {
		case strings.TrimSpace(l) == "":
			continue
		case strings.HasPrefix(l, "#"):
			if len(steps) == 0 {
				return nil, fmt.Sprintf("line %d shows output before any command", first+i)
			}
			s := &steps[len(steps)-1]
			s.shown = append(s.shown, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
			continue
		}
		st := readmeStep{line: first + i, cmd: l}
		for strings.HasSuffix(body[i], `\`) && i+1 < len(body) {
			i++
			st.cmd += "\n" + body[i]
		}
		if m := heredoc.FindStringSubmatch(st.cmd); m != nil {
			for i++; i < len(body) && strings.TrimSpace(body[i]) != m[1]; i++ {
				st.cmd += "\n" + body[i]
			}
			if i == len(body) {
				return nil, fmt.Sprintf("the heredoc of line %d has no end %s", st.line, m[1])
			}
			st.cmd += "\n" + m[1]
		}
		steps = append(steps, st)
	}
	return steps, ""
}

// shownPattern turns a shown output line into a regular expression for a
// whole line: "..." is any text, and spaces are normalized by squeeze.
func shownPattern(shown string) *regexp.Regexp {
	parts := strings.Split(squeeze(shown), "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// squeeze trims a line and turns every run of spaces and tabs into one space.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// missingOutput is the first shown line that output lacks, in order, or
// "" when output shows them all.
func missingOutput(shown []string, output string) string {
	lines := strings.Split(output, "\n")
	at := 0
	for _, s := range shown {
		p := shownPattern(s)
		for ; at < len(lines); at++ {
			l := squeeze(replyMark.ReplaceAllString(strings.TrimSpace(lines[at]), ""))
			if p.MatchString(l) {
				break
			}
		}
		if at == len(lines) {
			return s
		}
		at++
	}
	return ""
}

// TestREADMEWalk runs README.md as a new user would, and fails when a
// command fails or no longer prints what the README shows.
func TestREADMEWalk(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The files of the repository the README's commands name.
	if err := os.Mkdir(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "../../docs/import-sample.csv", filepath.Join(dir, "docs/import-sample.csv"))

	var srv *server
	ran := 0
	for _, b := range readmeBlocks(string(raw)) {
		if b.problem != "" {
			t.Fatalf("README.md:%d: %s", b.line, b.problem)
		}
		if b.notRun != "" {
			t.Logf("README.md:%d: not run: %s", b.line, b.notRun)
			continue
		}
		for _, st := range b.steps {
			ran++
			cmd := strings.TrimSpace(st.cmd)
			switch {
			case cmd == "go build -o optinproxy ./cmd/optinproxy":
				linkBinary(t, dir)
				continue
			case cmd == "go build -o optinproxy ./cmd/optinproxy && ./optinproxy serve":
				linkBinary(t, dir)
				cmd = "./optinproxy serve"
			}
			switch {
			case strings.HasPrefix(cmd, "sudo apt-get install -y "):
				pkg := strings.Fields(strings.TrimPrefix(cmd, "sudo apt-get install -y "))[0]
				testtools.Need(t, pkg, pkg)
				continue
			case cmd == "./optinproxy serve":
				if srv != nil {
					t.Fatalf("README.md:%d: a second server in the same folder", st.line)
				}
				srv = startServe(t, dir)
				continue
			}
			env := cleanEnv()
			if srv != nil {
				cmd = strings.NewReplacer("127.0.0.1:2525", srv.smtpAddr, "127.0.0.1:8080", srv.httpAddr).Replace(cmd)
				env = append(env, "OPTINPROXY_ADDR=http://"+srv.httpAddr)
			}
			code, out := runShell(t, dir, env, cmd)
			if len(st.shown) == 0 && code != 0 {
				t.Errorf("README.md:%d: exit %d:\n%s\n%s", st.line, code, cmd, out)
			}
			if miss := missingOutput(st.shown, out); miss != "" {
				t.Errorf("README.md:%d: the output lacks the line the README shows\n\t%s\n(exit %d) of\n%s\n%s", st.line, miss, code, cmd, out)
			}
		}
	}
	if ran < 20 {
		t.Errorf("the walk ran %d commands of the README; its blocks were not found", ran)
	}
}

// linkBinary puts the binary these tests built in dir as ./optinproxy,
// where the README's go build would have written it.
func linkBinary(t *testing.T, dir string) {
	t.Helper()
	abs, err := filepath.Abs(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(dir, "optinproxy")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
}

// runShell runs cmd with bash in dir, a pipeline failing when any of its
// commands does, and returns the exit status and everything printed.
func runShell(t *testing.T, dir string, env []string, cmd string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", cmd)
	c.Dir, c.Env = dir, env
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("still running after 2 minutes: %s\n%s", cmd, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The walk's reading of the README: blocks, continuation lines, heredocs,
// shown output and the not-run mark; and its matching, which must fail
// when a shown line changes.
func TestREADMEWalkReading(t *testing.T) {
	md := "Prose.\n\n" +
		"    ./optinproxy verify     # a remark\n" +
		"    # 3 subjects, ... events checked\n" +
		"    # every chain is intact\n" +
		"    swaks --to a@example.com \\\n" +
		"          --body hi\n" +
		"\n" +
		"```yaml\n    not: a command\n```\n" +
		"<!-- not run: it needs a real mailer -->\n\n" +
		"    cat > f.yaml <<'YAML'\n" +
		"    # not output\n" +
		"    YAML\n"
	blocks := readmeBlocks(md)
	if len(blocks) != 2 || blocks[0].line != 3 || blocks[1].notRun != "it needs a real mailer" {
		t.Fatalf("blocks: %+v", blocks)
	}
	s := blocks[0].steps
	if len(s) != 2 || s[0].cmd != "./optinproxy verify     # a remark" || len(s[0].shown) != 2 || s[1].cmd != "swaks --to a@example.com \\\n      --body hi" {
		t.Errorf("steps: %+v", s)
	}
	if h := blocks[1].steps; len(h) != 1 || h[0].shown != nil || !strings.HasSuffix(h[0].cmd, "# not output\nYAML") {
		t.Errorf("heredoc: %+v", h)
	}
	out := "=== Connected\n<** 550 5.7.1  No recipient:  <jan@example.com>: no_consent\n -> QUIT\n"
	for _, tc := range []struct {
		shown []string
		ok    bool
	}{
		{[]string{"550 5.7.1 No recipient: <jan@example.com>: no_consent"}, true},
		{[]string{"550 ...: no_consent", "-> QUIT"}, true},
		{[]string{"550 5.7.1 No recipient: <jan@example.com>: no_basis"}, false}, // a changed word
		{[]string{"550 5.7.1 No recipient"}, false},                              // a part of a line
		{[]string{"-> QUIT", "550 ..."}, false},                                  // out of order
	} {
		if miss := missingOutput(tc.shown, out); (miss == "") != tc.ok {
			t.Errorf("%q in %q: missing %q", tc.shown, out, miss)
		}
	}
}

// fileKey is a key of a configuration sample that names a file.
var fileKey = regexp.MustCompile(`\b(\w*_file): *"?([^",}\s]+)`)

// Every configuration sample of the README and of docs/ (their fenced
// yaml blocks) passes check-config, with the files it names made as a
// user would make them: a certificate and its key for smtp.tls, any
// other key_file an Ed25519 key (but the ledger key, which serve makes),
// any other *_file a secret. The folders
// the documents name (/etc/optinproxy, /var/lib/optinproxy,
// /run/secrets) are made in a temporary folder, and the placeholders a
// reader fills in (a bcrypt hash, a whsec_ secret) are filled in.
func TestREADMEConfigSamples(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("/etc/optinproxy/", "./etc/", "/var/lib/optinproxy/", "./var/", "/run/secrets/", "./run/",
		`"$2a$10$..."`, `"`+string(hash)+`"`, "whsec_...", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	cert := testcert.New(t)
	for _, doc := range append([]string{"../../README.md"}, docs...) {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		var samples []string
		var cur []string
		in := false
		for _, l := range strings.Split(string(raw), "\n") {
			switch {
			case !in && strings.TrimSpace(l) == "```yaml":
				in, cur = true, nil
			case in && strings.TrimSpace(l) == "```":
				in = false
				samples = append(samples, strings.Join(cur, "\n")+"\n")
			case in:
				cur = append(cur, l)
			}
		}
		if doc == "../../README.md" && len(samples) < 2 {
			t.Fatalf("found %d yaml samples in the README", len(samples))
		}
		for i, sample := range samples {
			if strings.Contains(sample, "scrape_configs:") {
				continue // Prometheus's configuration, not the proxy's
			}
			sample = fill.Replace(sample)
			dir := t.TempDir()
			afterCert := false
			for _, m := range fileKey.FindAllStringSubmatch(sample, -1) {
				path := filepath.Join(dir, m[2])
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				var content []byte
				switch {
				case filepath.Base(path) == "ledger.key":
					// store.key_file: serve makes it on the first start.
				case m[1] == "cert_file":
					content = cert.CertPEM
				case m[1] == "key_file" && afterCert:
					content = cert.KeyPEM
				case m[1] == "api_key_file":
					content = []byte("0123456789abcdef0123456789abcdef-us6\n") // Mailchimp's form fits Mandrill's too
				case m[1] == "key_file":
					_, key, _ := ed25519.GenerateKey(rand.Reader)
					writePEM(t, filepath.Dir(path), filepath.Base(path), key)
				default:
					content = []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n") // fits every secret, a webhook's too
				}
				afterCert = m[1] == "cert_file"
				if content != nil {
					if err := os.WriteFile(path, content, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "sample.yaml"), []byte(sample), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, dir, "", nil, "check-config", "sample.yaml")
			if r.code != 0 || !strings.Contains(r.stdout, "sample.yaml: ok") {
				t.Errorf("%s sample %d does not pass check-config (exit %d):\n%s\n%s%s", filepath.Base(doc), i+1, r.code, sample, r.stdout, r.stderr)
			}
		}
	}
}
