package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"optinproxy/internal/mailchimptest"
	"optinproxy/internal/redistest"
	"optinproxy/webhooks"
)

const (
	hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
	mcSecret   = "3f1c0a9e7b2d4c6e8f0a1b2c3d4e5f60"
	mcList     = "a6b5da1054"
	mandKey    = "mandrill-webhook-key"
)

// hookReceiver is a CRM's endpoint for optinproxy's outbound webhooks:
// it checks every signature and keeps the events it acknowledged, by
// webhook-id. refuse names addresses it answers 410 for (a delivery
// that goes straight to the dead-letter list).
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	down     bool // answer 503 to everything
	refuse   map[string]bool
	acked    map[string]webhooks.Payload
	order    []string
	requests int
	bad      int
	// dups counts deliveries of an event already acknowledged.
	dups int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{t: t, refuse: map[string]bool{}, acked: map[string]webhooks.Payload{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if err := webhooks.VerifyStandard(hookSecret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		h.bad++
		http.Error(w, "bad signature", 401)
		return
	}
	var p webhooks.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		h.bad++
		http.Error(w, "bad body", 400)
		return
	}
	if h.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if h.refuse[p.Email] {
		http.Error(w, "gone", http.StatusGone)
		return
	}
	id := r.Header.Get("webhook-id")
	if _, dup := h.acked[id]; dup {
		h.dups++
	} else {
		h.order = append(h.order, id)
	}
	h.acked[id] = p
	w.WriteHeader(204)
}

// waitFor polls the acknowledged events (bounded) until want finds one.
func (h *hookReceiver) waitFor(what string, want func(p webhooks.Payload) bool) webhooks.Payload {
	h.t.Helper()
	for range 300 {
		h.mu.Lock()
		for _, id := range h.order {
			if p := h.acked[id]; want(p) {
				h.mu.Unlock()
				return p
			}
		}
		h.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("the receiver never got %s", what)
	return webhooks.Payload{}
}

func (h *hookReceiver) count(want func(p webhooks.Payload) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, id := range h.order {
		if want(h.acked[id]) {
			n++
		}
	}
	return n
}

func is(typ, email string) func(p webhooks.Payload) bool {
	return func(p webhooks.Payload) bool { return string(p.Type) == typ && p.Email == email }
}

// webhookConfig writes a configuration with every webhook configured
// against local servers; httpAddr is where the proxy listens.
func webhookConfig(t *testing.T, dir, httpAddr, redisURL string, recv *hookReceiver, mc *mailchimptest.Server) string {
	t.Helper()
	key := filepath.Join(dir, "mailchimp.key")
	mkey := filepath.Join(dir, "mandrill.key")
	os.WriteFile(key, []byte("test-key-us1\n"), 0o600)
	os.WriteFile(mkey, []byte("test-mandrill-key\n"), 0o600)
	cfg := fmt.Sprintf(`http:
  listen: %[1]s
store:
  redis: {url: %[2]q}
webhooks:
  mailchimp: {secret: %[3]s, lists: {%[4]s: newsletter}}
  mandrill: {key: %[5]s, url: "http://%[1]s/webhooks/mandrill"}
  crm: {secret: %[6]q}
  outbound:
    - {url: %[7]q, secret: %[6]q}
  mailchimp_api: {api_key_file: %[8]q, list_id: %[4]s, purpose: newsletter, base_url: %[9]q}
  mandrill_api: {api_key_file: %[10]q, base_url: %[11]q}
`, httpAddr, redisURL, mcSecret, mcList, mandKey, hookSecret, recv.srv.URL, key, mc.URL, mkey, mc.MandrillURL)
	path := filepath.Join(dir, "optinproxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func post(t *testing.T, u, contentType string, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// crmEvent signs a CRM event as a Standard Webhooks sender does.
func crmEvent(t *testing.T, id string, body string) http.Header {
	t.Helper()
	now := time.Now()
	sig, err := webhooks.SignStandard(hookSecret, id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {fmt.Sprint(now.Unix())}, "Webhook-Signature": {sig}}
}

// TestWebhooksEndToEnd walks every webhook through the built binary on
// Redis: Mailchimp's subscribe grants, a CRM's signed withdrawal is
// applied once, sent to the CRM's outbound endpoint and to the Mailchimp
// audience; Mandrill's spam report suppresses, and a manual suppression
// reaches Mandrill's rejection list; a refused delivery goes to the dead-letter list and
// comes back with outbox replay; sync mailchimp pulls the audience with
// its evidence.
func TestWebhooksEndToEnd(t *testing.T) {
	rs := redistest.Start(t)
	recv := newHookReceiver(t)
	mc := mailchimptest.New(t, mailchimptest.Options{})
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := webhookConfig(t, dir, addr, rs.URL(), recv, mc)
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+cfg, "OPTINPROXY_HTTP_LISTEN="+addr)
	base := "http://" + s.httpAddr
	cli := cliOf(t, dir, s)

	// Mailchimp validates the URL with a GET; a wrong secret is refused.
	if resp, err := http.Get(base + "/webhooks/mailchimp/" + mcSecret); err != nil || resp.StatusCode != 200 {
		t.Fatalf("Mailchimp's validation GET: %v %v", resp, err)
	}
	fired := time.Now().UTC().Add(-time.Minute).Format("2006-01-02 15:04:05")
	form := url.Values{"type": {"subscribe"}, "fired_at": {fired}, "data[list_id]": {mcList},
		"data[email]": {"Jan@Example.com"}, "data[ip_opt]": {"198.51.100.7"}, "data[id]": {"8a25ff1d98"}}
	if code, body := post(t, base+"/webhooks/mailchimp/wrong"+mcSecret[5:], "application/x-www-form-urlencoded", []byte(form.Encode()), nil); code != 401 {
		t.Fatalf("wrong secret: %d %s", code, body)
	}
	if code, body := post(t, base+"/webhooks/mailchimp/"+mcSecret, "application/x-www-form-urlencoded", []byte(form.Encode()), nil); code != 200 {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	r := cli("consent", "show", "jan@example.com")
	for _, want := range []string{"newsletter  granted  consent  mailchimp", "198.51.100.7"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("consent show lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	granted := recv.waitFor("consent.granted", is("consent.granted", "jan@example.com"))
	if granted.Purpose != "newsletter" || granted.Source != "mailchimp" {
		t.Errorf("granted payload %+v", granted)
	}

	// The CRM withdraws; the same delivery again changes nothing.
	body := `{"type": "consent.withdrawn", "email": "jan@example.com", "purpose": "newsletter"}`
	h := crmEvent(t, "msg_withdraw_1", body)
	for i := range 2 {
		if code, out := post(t, base+"/webhooks/crm", "application/json", []byte(body), h); code != 200 && code != 204 {
			t.Fatalf("CRM delivery %d: %d %s", i+1, code, out)
		}
	}
	bad := crmEvent(t, "msg_withdraw_2", body)
	bad.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if code, _ := post(t, base+"/webhooks/crm", "application/json", []byte(body), bad); code != 401 {
		t.Errorf("bad CRM signature: %d, want 401", code)
	}
	recv.waitFor("consent.withdrawn", is("consent.withdrawn", "jan@example.com"))
	hash := mailchimptest.SubscriberHash("jan@example.com")
	waitUntil(t, "the Mailchimp member unsubscribed", func() bool {
		for _, c := range mc.Calls() {
			if c.Method == "PATCH" && strings.HasSuffix(c.Path, "/members/"+hash) && strings.Contains(string(c.Body), `"unsubscribed"`) {
				return true
			}
		}
		return false
	})
	r = cli("consent", "show", "jan@example.com")
	if n := strings.Count(r.stdout, "consent.withdrawn"); n != 1 {
		t.Errorf("the repeated delivery was applied %d times:\n%s", n, r.stdout)
	}

	// The relay counts copies by From: domain, the complaint rate's
	// denominator.
	if code, out := swaksSend(t, s.smtpAddr, "piet@example.com", "--header", "X-Optin-Purpose: transactional", "--header", "From: News <news@Mail.Shop.Example>"); code != 0 {
		t.Fatalf("relay: %d\n%s", code, out)
	}
	if n := metric(t, s, `optinproxy_relayed_copies_total{domain="mail.shop.example"}`); n != 1 {
		t.Errorf("relayed copies of mail.shop.example: %v, want 1", n)
	}

	// Mandrill reports spam: a complaint suppression, counted against the
	// From domain.
	events := `[{"event": "spam", "_id": "m1", "ts": ` + fmt.Sprint(time.Now().Unix()) + `, "msg": {"email": "piet@example.com", "sender": "news@mail.shop.example"}}]`
	mform := url.Values{"mandrill_events": {events}}
	sig := webhooks.MandrillSignature(mandKey, "http://"+addr+"/webhooks/mandrill", mform)
	if code, out := post(t, base+"/webhooks/mandrill", "application/x-www-form-urlencoded", []byte(mform.Encode()), http.Header{"X-Mandrill-Signature": {sig}}); code != 200 {
		t.Fatalf("mandrill: %d %s", code, out)
	}
	if r := cli("suppress", "list"); !strings.Contains(r.stdout, "piet@example.com\tcomplaint") {
		t.Errorf("suppress list:\n%s%s", r.stdout, r.stderr)
	}
	recv.waitFor("suppression.added", is("suppression.added", "piet@example.com"))
	if rate := metric(t, s, `optinproxy_complaint_rate{domain="mail.shop.example"}`); rate != 1 {
		t.Errorf("complaint rate of mail.shop.example: %v, want 1 (one complaint, one copy)", rate)
	}
	// Mandrill lists its own spam reports; a suppression made here
	// reaches its rejection list.
	if r := cli("suppress", "add", "kim@example.com", "--reason", "manual"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	waitUntil(t, "Mandrill's rejection list", func() bool {
		for _, rj := range mc.Rejects() {
			if rj.Email == "kim@example.com" {
				return true
			}
		}
		return false
	})
	for _, rj := range mc.Rejects() {
		if rj.Email == "piet@example.com" {
			t.Errorf("Mandrill's own spam report was sent back to it")
		}
	}

	// A delivery the CRM refuses goes dead; replayed, it arrives.
	recv.mu.Lock()
	recv.refuse["dead@example.com"] = true
	recv.mu.Unlock()
	if r := cli("consent", "grant", "dead@example.com", "newsletter"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	var id string
	waitUntil(t, "a dead delivery", func() bool {
		r := cli("outbox", "list")
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(line, "hook-") && strings.Contains(line, "consent.granted") && strings.Contains(line, "410") {
				id = strings.Fields(line)[0]
				return true
			}
		}
		return false
	})
	recv.mu.Lock()
	recv.refuse["dead@example.com"] = false
	recv.mu.Unlock()
	if r := cli("outbox", "replay", id); r.code != 0 || !strings.Contains(r.stdout, "pending again") {
		t.Fatalf("outbox replay: %d %s%s", r.code, r.stdout, r.stderr)
	}
	recv.waitFor("the replayed consent.granted", is("consent.granted", "dead@example.com"))
	if r := cli("outbox", "replay", id); r.code == 0 || !strings.Contains(r.stderr, "no dead delivery") {
		t.Errorf("replaying a delivered one: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("outbox", "list", "--status", "retired"); !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "mailchimp-") {
		t.Errorf("outbox list --status retired:\n%s%s", r.stdout, r.stderr)
	}

	// sync mailchimp: the audience's members with Mailchimp's evidence.
	mc.AddMember(mcList, mailchimptest.Member{EmailAddress: "anna@example.com", Status: "subscribed",
		TimestampOpt: "2025-03-01T10:00:00+00:00", IPOpt: "203.0.113.9"})
	mc.AddMember(mcList, mailchimptest.Member{EmailAddress: "kees@example.com", Status: "cleaned"})
	r = cli("sync", "mailchimp")
	if r.code != 0 || !strings.Contains(r.stdout, "granted 1") || !strings.Contains(r.stdout, "suppressed 1") {
		t.Fatalf("sync mailchimp: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("consent", "show", "anna@example.com")
	for _, want := range []string{"granted  consent  mailchimp", "203.0.113.9", "2025-03-01T10:00:00Z"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("synced consent lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := cli("sync", "mailchimp"); !strings.Contains(r.stdout, "granted 0") {
		t.Errorf("a second sync changed something: %s", r.stdout)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.bad != 0 || recv.dups != 0 {
		t.Errorf("%d deliveries failed their signature check, %d came again after their acknowledgement", recv.bad, recv.dups)
	}
}

// TestTwoProxiesDeliverEachEventOnce: two proxies on one Redis with the
// same outbound endpoint; changes made through both reach it once each.
func TestTwoProxiesDeliverEachEventOnce(t *testing.T) {
	rs := redistest.Start(t)
	recv := newHookReceiver(t)
	mc := mailchimptest.New(t, mailchimptest.Options{})
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startServe(t, dirA, "OPTINPROXY_CONFIG="+webhookConfig(t, dirA, "127.0.0.1:0", rs.URL(), recv, mc))
	key, err := os.ReadFile(filepath.Join(dirA, "data", "ledger.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dirB, "data"), 0o700)
	os.WriteFile(filepath.Join(dirB, "data", "ledger.key"), key, 0o600)
	b := startServe(t, dirB, "OPTINPROXY_CONFIG="+webhookConfig(t, dirB, "127.0.0.1:0", rs.URL(), recv, mc))
	const n = 20
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		if r := runCmd(t, s.dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, "consent", "grant", fmt.Sprintf("user%d@example.com", i), "newsletter"); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	granted := func(p webhooks.Payload) bool { return p.Type == "consent.granted" }
	waitUntil(t, "every grant delivered", func() bool { return recv.count(granted) >= n })
	// A little longer, for a second delivery that should not come.
	time.Sleep(2 * time.Second)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.order) != n || recv.requests != n {
		t.Errorf("%d events in %d requests, want %d once each", len(recv.order), recv.requests, n)
	}
}

// waitUntil polls cond (bounded: 15 s).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitLong(t, what, 15*time.Second, cond)
}

// waitLong polls cond every 50 ms for at most limit.
func waitLong(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for range int(limit / (50 * time.Millisecond)) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestOutboxSurvivesACrash: the CRM's endpoint is down while changes are
// made; the proxy is killed mid-retry and started again once the
// endpoint is back. Every change arrives, in order per address, none
// twice, from the outbox in Redis. (The new process takes the endpoint
// over when the dead one's lease runs out, within 30 s.)
func TestOutboxSurvivesACrash(t *testing.T) {
	rs := redistest.Start(t)
	recv := newHookReceiver(t)
	recv.down = true
	mc := mailchimptest.New(t, mailchimptest.Options{})
	dir := t.TempDir()
	cfg := webhookConfig(t, dir, "127.0.0.1:0", rs.URL(), recv, mc)
	s := startServe(t, dir, "OPTINPROXY_CONFIG="+cfg)
	cli := func(s *server, args ...string) {
		t.Helper()
		if r := runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, args...); r.code != 0 {
			t.Fatalf("%v: %s", args, r.stderr)
		}
	}
	var want []string
	for _, who := range []string{"ann", "bob", "cor"} {
		addr := who + "@example.com"
		cli(s, "consent", "grant", addr, "newsletter")
		cli(s, "consent", "withdraw", addr, "newsletter")
		want = append(want, addr+" consent.granted", addr+" consent.withdrawn")
	}
	waitUntil(t, "a failed attempt", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return recv.requests > 0
	})
	s.cmd.Process.Kill()
	<-s.done

	recv.mu.Lock()
	recv.down = false
	recv.mu.Unlock()
	startServe(t, dir, "OPTINPROXY_CONFIG="+cfg)
	got := func() []string {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		var out []string
		for _, id := range recv.order {
			p := recv.acked[id]
			if p.Type == "consent.granted" || p.Type == "consent.withdrawn" {
				out = append(out, p.Email+" "+string(p.Type))
			}
		}
		return out
	}
	waitLong(t, "every change after the restart", 90*time.Second, func() bool { return len(got()) >= len(want) })
	per := map[string][]string{}
	for _, g := range got() {
		addr, typ, _ := strings.Cut(g, " ")
		per[addr] = append(per[addr], typ)
	}
	for _, who := range []string{"ann", "bob", "cor"} {
		if l := per[who+"@example.com"]; strings.Join(l, ",") != "consent.granted,consent.withdrawn" {
			t.Errorf("%s got %v, want the grant then the withdrawal, once each", who, l)
		}
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.dups != 0 || recv.bad != 0 {
		t.Errorf("%d events delivered again after their acknowledgement, %d bad signatures", recv.dups, recv.bad)
	}
}
