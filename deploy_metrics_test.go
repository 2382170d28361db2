package optinproxy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/webhooks"
)

const (
	dashboardFile = "deploy/grafana/optinproxy-dashboard.json"
	alertsFile    = "deploy/prometheus/alerts.yml"
)

// queryMetric finds the series the queries read: ours, and the Go and
// process collectors' the server registers too.
var queryMetric = regexp.MustCompile(`\b((?:optinproxy|process|go)_[a-zA-Z0-9_]+)`)

// prometheusMade are series Prometheus makes itself when it scrapes.
var prometheusMade = []string{"up"}

// targetLabels are labels Prometheus adds to every scraped series, and le,
// the bucket of a histogram.
var targetLabels = []string{"instance", "job", "le"}

// TestDashboardAndAlertsUseServedMetrics: every series the dashboard and
// the alert rules query, and every label they select or group by, is on
// the /metrics of a running server. The server is the built binary, made
// to produce each labelled series once: a message relayed to one recipient
// and blocked for another, a grant sent to a failing outbound webhook, a
// CRM delivery without a signature and a Mandrill spam report.
func TestDashboardAndAlertsUseServedMetrics(t *testing.T) {
	bin := imageBinary(t)
	exposed := scrapeBusyServer(t, bin)
	queries := append(dashboardQueries(t), alertQueries(t)...)
	if len(queries) < 20 {
		t.Fatalf("found %d queries in %s and %s", len(queries), dashboardFile, alertsFile)
	}
	for _, q := range queries {
		for _, p := range queryProblems(q, exposed) {
			t.Errorf("%s: %s", p, q)
		}
	}
}

// TestQueryProblems: the check catches a series that is not served and a
// label a series does not have.
func TestQueryProblems(t *testing.T) {
	exposed := map[string][]string{"optinproxy_smtp_messages_total": {"result"}}
	for _, tc := range []struct{ query, want string }{
		{`sum by (result) (rate(optinproxy_smtp_messages_total[5m]))`, ""},
		{`up{job="optinproxy"} == 0`, ""},
		{`rate(optinproxy_no_such_total[5m])`, "optinproxy_no_such_total is not served"},
		{`optinproxy_smtp_messages_total{outcome="relayed"}`, "no label outcome"},
		{`sum by (sender) (optinproxy_smtp_messages_total)`, "has label sender"},
		{`1 + 1`, "reads no series"},
	} {
		got := strings.Join(queryProblems(tc.query, exposed), "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("queryProblems(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

// queryProblems names the series and labels of one PromQL query that
// exposed (series name -> its label names) lacks.
func queryProblems(q string, exposed map[string][]string) []string {
	var problems []string
	names := queryMetric.FindAllString(q, -1)
	for _, made := range prometheusMade {
		if regexp.MustCompile(`\b` + made + `\{`).MatchString(q) {
			names = append(names, made)
		}
	}
	if len(names) == 0 {
		return []string{"reads no series"}
	}
	labelsOf := func(name string) []string {
		if slices.Contains(prometheusMade, name) {
			return nil
		}
		return exposed[name]
	}
	for _, n := range names {
		if _, ok := exposed[n]; !ok && !slices.Contains(prometheusMade, n) {
			problems = append(problems, n+" is not served at /metrics")
		}
	}
	// Labels selected on a series must be that series'.
	for _, sel := range regexp.MustCompile(`\b(\w+)\{([^}]*)\}`).FindAllStringSubmatch(q, -1) {
		for _, l := range regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)`).FindAllStringSubmatch(sel[2], -1) {
			if !slices.Contains(labelsOf(sel[1]), l[1]) && !slices.Contains(targetLabels, l[1]) {
				problems = append(problems, fmt.Sprintf("%s has no label %s", sel[1], l[1]))
			}
		}
	}
	// Labels grouped by must be on some series of the query.
	for _, by := range regexp.MustCompile(`\bby\s*\(([^)]*)\)`).FindAllStringSubmatch(q, -1) {
		for _, l := range strings.Split(by[1], ",") {
			l = strings.TrimSpace(l)
			found := slices.Contains(targetLabels, l)
			for _, n := range names {
				found = found || slices.Contains(labelsOf(n), l)
			}
			if !found {
				problems = append(problems, fmt.Sprintf("no series of the query has label %s", l))
			}
		}
	}
	return problems
}

// scrapeBusyServer starts bin with webhooks configured, makes each
// labelled series appear, and returns what /metrics serves: series names
// (a histogram's _bucket, _sum and _count each) and their label names.
func scrapeBusyServer(t *testing.T, bin string) map[string][]string {
	t.Helper()
	dir := t.TempDir()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "down for the test", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	// Mandrill signs with the URL as registered, so the HTTP port is
	// chosen before the start.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a test secret of 32 bytes long!!"))
	const mandrillKey = "mandrill-test-key"
	config := fmt.Sprintf(`webhooks:
  crm: {secret: %q}
  mandrill: {key: %q, url: "http://%s/webhooks/mandrill"}
  outbound:
    - {url: %q, secret: %q, events: [consent.granted]}
`, secret, mandrillKey, httpAddr, failing.URL+"/hook", secret)
	if err := os.WriteFile(filepath.Join(dir, "optinproxy.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(), "OPTINPROXY_CONFIG="+filepath.Join(dir, "optinproxy.yml"),
		"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN="+httpAddr)
	srv := startBinary(t, bin, dir, env, nil)
	srv.waitReady(t)
	base := "http://" + srv.http

	grant := exec.Command(bin, "consent", "grant", "jan@example.com", "newsletter")
	grant.Dir, grant.Env = dir, env
	if out, err := grant.CombinedOutput(); err != nil {
		t.Fatalf("consent grant: %v\n%s", err, out)
	}
	msg := "From: news@shop.example\r\nTo: jan@example.com, piet@example.com\r\nSubject: Lente\r\nX-Optin-Purpose: newsletter\r\n\r\nDe lente is er.\r\n"
	// piet has no consent: the message is relayed to jan only, which the
	// server may answer with an error; the metrics count it either way.
	if err := smtp.SendMail(srv.smtpAddr, nil, "news@shop.example", []string{"jan@example.com", "piet@example.com"}, []byte(msg)); err != nil {
		t.Logf("SMTP: %v", err)
	}
	if resp, err := http.Post(base+"/webhooks/crm", "application/json", strings.NewReader(`{}`)); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	events := fmt.Sprintf(`[{"event": "spam", "_id": "m1", "ts": %d, "msg": {"email": "jan@example.com", "sender": "news@shop.example"}}]`, time.Now().Unix())
	form := url.Values{"mandrill_events": {events}}
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/mandrill", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Mandrill-Signature", webhooks.MandrillSignature(mandrillKey, "http://"+httpAddr+"/webhooks/mandrill", form))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Fatalf("Mandrill spam report: %s", resp.Status)
	}

	// The outbound delivery is made in the background: wait for it, a
	// bounded number of scrapes.
	var exposed map[string][]string
	for range 300 {
		exposed = scrape(t, base+"/metrics")
		if _, ok := exposed["optinproxy_webhook_deliveries_total"]; ok {
			return exposed
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no outbound webhook delivery was counted; served: %v", slices.Sorted(maps.Keys(exposed)))
	return nil
}

// scrape reads a /metrics page in the text format.
func scrape(t *testing.T, u string) map[string][]string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s %v", u, resp.Status, err)
	}
	labelName := regexp.MustCompile(`(\w+)="`)
	out := map[string][]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		labels := out[name]
		if labels == nil {
			labels = []string{}
		}
		if strings.Contains(line, "{") {
			for _, m := range labelName.FindAllStringSubmatch(rest, -1) {
				if !slices.Contains(labels, m[1]) {
					labels = append(labels, m[1])
				}
			}
		}
		out[name] = labels
	}
	return out
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"` // a collapsed row's
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// allPanels is every panel, those in rows included.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// TestDashboardIsImportable: the dashboard is JSON Grafana imports: a
// uid, unique panel ids, every panel placed on the 24-column grid, and
// every graph reading the data source chosen on the dashboard.
func TestDashboardIsImportable(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed to import and link it", d.Title, d.UID)
	}
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if p.ID <= 0 {
			t.Errorf("panel %q has no id", p.Title)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is not placed on the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not read the dashboard's data source", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	if len(ids) < 10 {
		t.Errorf("%d panels", len(ids))
	}
}

// dashboardQueries are the dashboard's PromQL: the panels' and the
// variables'.
func dashboardQueries(t *testing.T) []string {
	d := readDashboard(t)
	var qs []string
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			qs = append(qs, v.Definition)
		}
	}
	return qs
}

// TestAlertRulesAreComplete: each rule has a unique name, a query, a
// severity and a summary an operator can act on.
func TestAlertRulesAreComplete(t *testing.T) {
	rules := readAlertRules(t)
	names := map[string]bool{}
	for _, r := range rules {
		name := fmt.Sprint(r["alert"])
		if names[name] {
			t.Errorf("two rules are named %s", name)
		}
		names[name] = true
		if stringAt(r, "expr") == "" {
			t.Errorf("%s has no expr", name)
		}
		if sev := stringAt(r, "labels.severity"); sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", name, sev)
		}
		if stringAt(r, "annotations.summary") == "" || stringAt(r, "annotations.description") == "" {
			t.Errorf("%s lacks a summary or a description", name)
		}
	}
	for _, want := range []string{"OptinproxyDown", "OptinproxyMessagesTempfailing", "OptinproxyUpstreamFailing", "OptinproxyReceiptsNotStored",
		"OptinproxyStoreDataLost", "OptinproxyOutboxDeadLetters", "OptinproxyOutboundWebhookFailing", "OptinproxyInboundWebhooksFailing", "OptinproxyConfigReloadRefused"} {
		if !names[want] {
			t.Errorf("no rule %s", want)
		}
	}
}

func readAlertRules(t *testing.T) []map[string]any {
	t.Helper()
	var rules []map[string]any
	for _, g := range listAt(readYAML(t, alertsFile), "groups") {
		for _, r := range listAt(g.(map[string]any), "rules") {
			rules = append(rules, r.(map[string]any))
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", alertsFile)
	}
	return rules
}

func alertQueries(t *testing.T) []string {
	var qs []string
	for _, r := range readAlertRules(t) {
		qs = append(qs, stringAt(r, "expr"))
	}
	return qs
}
