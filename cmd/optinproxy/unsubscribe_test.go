package main

import (
	"bytes"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"optinproxy/internal/redistest"
	"optinproxy/internal/testtools"
)

// The unsubscribe link as support makes it, followed as a recipient
// would: the page asks and changes nothing, the one-click POST
// withdraws, and the ledger shows it.
func TestUnsubscribeURLEndToEnd(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	public := "OPTINPROXY_HTTP_PUBLIC_URL=http://" + addr + "/"
	s := startServe(t, dir, "OPTINPROXY_HTTP_LISTEN="+addr, public)
	cli := func(args ...string) result {
		return runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr, public}, args...)
	}
	r := cli("unsubscribe-url", "Jan@Example.com", "--purpose", "newsletter")
	link := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(link, "http://"+addr+"/u/") || strings.Contains(link, "jan") {
		t.Fatalf("unsubscribe-url: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if page := get(link); !strings.Contains(page, "Our monthly newsletter") || !strings.Contains(page, `lang="nl"`) {
		t.Errorf("page:\n%s", page)
	}
	if r := cli("consent", "show", "jan@example.com"); strings.Contains(r.stdout, "withdrawn") {
		t.Fatalf("GET withdrew:\n%s", r.stdout)
	}

	resp, err := http.PostForm(link, url.Values{"List-Unsubscribe": {"One-Click"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click POST: %d", resp.StatusCode)
	}
	r = cli("consent", "show", "jan@example.com")
	for _, want := range []string{"newsletter  withdrawn  consent  unsubscribe", `"channel":"one-click"`, "consent.withdrawn  newsletter  unsubscribe"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("consent show lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	if m := get("http://" + s.httpAddr + "/metrics"); !strings.Contains(m, `optinproxy_unsubscribes_total{channel="one-click",purpose="newsletter"} 1`) {
		t.Errorf("metrics do not count the unsubscribe")
	}
	// A tampered link: 400, and the server logs no address.
	resp, err = http.Get(link[:len(link)-2] + "xx")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("tampered link: %d, want 400", resp.StatusCode)
	}
}

func TestUnsubscribeURLErrors(t *testing.T) {
	dir := t.TempDir()
	startServe(t, dir) // makes the secret file
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"jan@example.com"}, 2, "--purpose is required"},
		{[]string{"jan@example.com", "--purpose", "nope"}, 2, `purpose "nope" is not configured`},
		{[]string{"jan@example.com", "--purpose", "transactional"}, 2, "no unsubscribe links"},
		{[]string{"not-an-address", "--purpose", "newsletter"}, 2, "optinproxy unsubscribe-url:"},
		{[]string{"--purpose", "newsletter"}, 2, "want one EMAIL"},
	} {
		r := runCmd(t, dir, "", nil, append([]string{"unsubscribe-url"}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q on one line", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
	// Without the secret file (no server ever started here) it says so.
	r := runCmd(t, t.TempDir(), "", nil, "unsubscribe-url", "jan@example.com", "--purpose", "newsletter")
	if r.code != 1 || !strings.Contains(r.stderr, "made when optinproxy serve first starts") {
		t.Errorf("no secret file: exit %d, %q", r.code, r.stderr)
	}
	if r := runCmd(t, dir, "", nil, "unsubscribe-url", "--help"); r.code != 0 {
		t.Errorf("--help: exit %d", r.code)
	}
}

// A mail client's List-Unsubscribe mailto: a client that may not relay
// (no trusted network here) mails unsubscribe+TOKEN@mailto_domain, with
// swaks, and the withdrawal is in the history; that client still cannot
// mail anyone else.
func TestUnsubscribeByMail(t *testing.T) {
	dir := t.TempDir()
	env := []string{"OPTINPROXY_UNSUBSCRIBE_MAILTO_DOMAIN=unsub.shop.example", "OPTINPROXY_SMTP_TRUSTED_NETWORKS="}
	s := startServe(t, dir, env...)
	cli := func(args ...string) result {
		return runCmd(t, dir, "", append([]string{"OPTINPROXY_ADDR=" + s.httpAddr}, env...), args...)
	}
	r := cli("unsubscribe-url", "jan@example.com", "--purpose", "newsletter")
	link := strings.TrimSpace(r.stdout)
	token := link[strings.LastIndex(link, "/u/")+3:]
	if r.code != 0 || token == "" {
		t.Fatalf("unsubscribe-url: %d %q %s", r.code, r.stdout, r.stderr)
	}
	code, out := testtools.Swaks(t, "--server", s.smtpAddr, "--helo", "mua.example", "--timeout", "10s",
		"--from", "jan@example.com", "--to", "unsubscribe+"+token+"@unsub.shop.example", "--body", "unsubscribe")
	if code != 0 || !strings.Contains(out, "250 2.0.0 Unsubscribed") {
		t.Fatalf("swaks: %d\n%s", code, out)
	}
	r = cli("consent", "show", "jan@example.com")
	if !strings.Contains(r.stdout, "newsletter  withdrawn  consent  unsubscribe") || !strings.Contains(r.stdout, `"channel":"mailto"`) {
		t.Errorf("consent show:\n%s%s", r.stdout, r.stderr)
	}
	code, out = testtools.Swaks(t, "--server", s.smtpAddr, "--helo", "mua.example", "--timeout", "10s",
		"--from", "jan@example.com", "--to", "piet@example.com")
	if code == 0 || !strings.Contains(out, "530 5.7.0") {
		t.Errorf("a client that may not relay mailed piet: %d\n%s", code, out)
	}
}

// The whole way, on one Redis shared by two proxies: a newsletter relayed
// through the first carries List-Unsubscribe, List-Unsubscribe-Post and
// the link in its body; a scanner's GET of the link changes nothing; the
// mail client's one-click POST withdraws; the next newsletter, sent
// through the second proxy, is blocked, and the history shows it.
func TestUnsubscribeLinkInRelayedMail(t *testing.T) {
	redis := "OPTINPROXY_STORE_REDIS_URL=" + redistest.Start(t).URL()
	dirA, dirB := t.TempDir(), t.TempDir()
	// Both proxies share the ledger key and the unsubscribe secret.
	a := startServe(t, dirA, redis)
	for _, f := range []string{"ledger.key", "unsubscribe.key"} {
		b, err := os.ReadFile(filepath.Join(dirA, "data", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dirB, "data"), 0o700)
		if err := os.WriteFile(filepath.Join(dirB, "data", f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := startServe(t, dirB, redis)
	cli := func(args ...string) result {
		return runCmd(t, dirA, "", []string{"OPTINPROXY_ADDR=" + a.httpAddr}, args...)
	}
	if r := cli("consent", "grant", "jan@example.com", "newsletter", "--source", "form"); r.code != 0 {
		t.Fatalf("grant: %s%s", r.stdout, r.stderr)
	}
	newsletter := []string{"--header", "Subject: Lente", "--header", "X-Optin-Purpose: newsletter", "--body", "Beste Jan,\nonze lente-aanbieding."}
	if code, out := swaksSend(t, a.smtpAddr, "jan@example.com", newsletter...); code != 0 {
		t.Fatalf("newsletter: %d\n%s", code, out)
	}
	_, m := onlyCopy(t, dirA)
	lu := m.Header.Get("List-Unsubscribe")
	link := strings.Trim(lu, "<>")
	if !strings.Contains(link, "/u/") || m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || m.Header.Get("List-Id") == "" {
		t.Fatalf("list headers: %q %q %q", lu, m.Header.Get("List-Unsubscribe-Post"), m.Header.Get("List-Id"))
	}
	body, _ := io.ReadAll(m.Body)
	if strings.Count(string(body), link) != 1 || m.Header.Get("X-Optin-Purpose") != "" {
		t.Errorf("the body holds the link %d times:\n%s", strings.Count(string(body), link), body)
	}
	// The link is served by either proxy; the public URL names the first.
	link = "http://" + b.httpAddr + link[strings.Index(link, "/u/"):]
	resp, err := http.Get(link) // a scanner following links
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, out := swaksSend(t, b.smtpAddr, "jan@example.com", newsletter...); code != 0 {
		t.Fatalf("the GET withdrew: %d\n%s", code, out)
	}
	resp, err = http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click: %d", resp.StatusCode)
	}
	code, out := swaksSend(t, b.smtpAddr, "jan@example.com", newsletter...)
	if code == 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("newsletter after one-click, through the second proxy: %d\n%s", code, out)
	}
	show := cli("consent", "show", "jan@example.com").stdout
	for _, want := range []string{"consent.withdrawn  newsletter  unsubscribe", "message.blocked"} {
		if !strings.Contains(show, want) {
			t.Errorf("history lacks %q:\n%s", want, show)
		}
	}
}

// onlyCopy reads the one copy in dir's outbox, without the file
// upstream's envelope lines, and parses it.
func onlyCopy(t *testing.T, dir string) ([]byte, *mail.Message) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "data/outbox/*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d copies in the outbox, want 1", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for bytes.HasPrefix(raw, []byte("X-Optinproxy-Envelope-")) {
		raw = raw[bytes.Index(raw, []byte("\r\n"))+2:]
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return raw, m
}
