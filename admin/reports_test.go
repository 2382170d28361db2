package admin_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"optinproxy/admin"
	"optinproxy/optin"
)

// eachStoreWith is eachStore with options changed by adjust.
func eachStoreWith(t *testing.T, adjust func(*admin.Options), f func(t *testing.T, api *apiServer)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, newAPIWith(t, b.open(t), adjust)) })
	}
}

func addr(t *testing.T, s string) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// receipt stores the relay's receipt of one recipient, as smtpproxy
// writes it: relayed when the copy went out (allowed, or blocked in
// monitor mode).
func (s *apiServer) receipt(t *testing.T, email, purpose string, at time.Time, d optin.Decision, relayed bool) {
	t.Helper()
	r := optin.Receipt{Subject: addr(t, email), Purpose: purpose, Actor: "smtp:crm", Time: at, Decision: d, Relayed: relayed,
		Details: optin.ReceiptDetails{MessageID: "<m@crm.example>"}}
	if relayed && !d.Allow {
		r.Details.Mode = "monitor"
	}
	if _, err := s.ledger.Apply(t.Context(), []optin.Change{r.Change()}); err != nil {
		t.Fatal(err)
	}
}

// ledgerAt is a ledger on the server's store whose clock stands at at:
// events of the main chain recorded in the past.
func (s *apiServer) ledgerAt(t *testing.T, at time.Time) *optin.Ledger {
	t.Helper()
	l, err := optin.NewLedger(optin.LedgerOptions{Store: s.ledger.Store(), Purposes: s.ledger.Purposes(), PolicyVersion: "2026-01",
		Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (s *apiServer) grant(t *testing.T, email, purpose string, cc optin.ConsentChange) {
	t.Helper()
	if _, err := s.ledger.Grant(t.Context(), addr(t, email), purpose, cc); err != nil {
		t.Fatal(err)
	}
}

var (
	blockNoConsent = optin.Decision{Reason: optin.ReasonNoConsent}
	blockWithdrawn = optin.Decision{Reason: optin.ReasonWithdrawn}
	blockBounce    = optin.Decision{Reason: optin.SuppressedReason(optin.SuppressHardBounce)}
	allowConsent   = optin.Decision{Allow: true, Reason: optin.ReasonConsent}
)

type noBasisPage struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Subjects []struct {
		Email         string    `json:"email"`
		Purpose       string    `json:"purpose"`
		Reasons       []string  `json:"reasons"`
		Attempts      int       `json:"attempts"`
		RelayedAnyway int       `json:"relayed_anyway"`
		LastAttempt   time.Time `json:"last_attempt"`
	} `json:"subjects"`
	NextCursor string `json:"next_cursor"`
}

// noBasis reads every page of the no-basis report at query, adding up
// the rows of a subject and purpose found on several, and returns them
// as "email purpose reasons attempts/relayed_anyway last" lines, sorted.
func (s *apiServer) noBasis(t *testing.T, query string) []string {
	t.Helper()
	type sum struct {
		reasons           []string
		attempts, relayed int
		last              time.Time
	}
	rows := map[string]*sum{}
	for cursor, pages := "", 0; ; pages++ {
		var page noBasisPage
		q := query + "&cursor=" + url.QueryEscape(cursor)
		if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/no-basis?"+q, "", &page); code != 200 || pages > 20 {
			t.Fatalf("no-basis?%s: %d %s", q, code, raw)
		}
		for _, r := range page.Subjects {
			k := r.Email + " " + r.Purpose
			if rows[k] == nil {
				rows[k] = &sum{}
			}
			sm := rows[k]
			for _, reason := range r.Reasons {
				if !slices.Contains(sm.reasons, reason) {
					sm.reasons = append(sm.reasons, reason)
				}
			}
			sm.attempts += r.Attempts
			sm.relayed += r.RelayedAnyway
			if r.LastAttempt.After(sm.last) {
				sm.last = r.LastAttempt
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	var out []string
	for k, sm := range rows {
		slices.Sort(sm.reasons)
		out = append(out, fmt.Sprintf("%s %s %d/%d %s", k, strings.Join(sm.reasons, ","), sm.attempts, sm.relayed, sm.last.UTC().Format(time.RFC3339)))
	}
	slices.Sort(out)
	return out
}

// TestReportNoBasis: the subjects mailed without a basis come from the
// blocked receipts in the window (default the last 30 days), per subject
// and purpose, with their reasons, counts and last attempt; a blocked
// decision relayed in monitor mode counts and says so; allowed mail,
// and blocked mail before the window, do not.
func TestReportNoBasis(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		now := time.Now().UTC().Truncate(time.Second)
		day := 24 * time.Hour
		s.receipt(t, "jan@example.com", "newsletter", now.Add(-5*day), blockNoConsent, false)
		s.receipt(t, "jan@example.com", "newsletter", now.Add(-1*day), blockNoConsent, false)
		s.receipt(t, "jan@example.com", "newsletter", now.Add(-40*day), blockNoConsent, false)
		s.receipt(t, "jan@example.com", "transactional", now.Add(-2*day), blockBounce, false)
		s.receipt(t, "piet@example.com", "newsletter", now.Add(-3*day), blockWithdrawn, true)
		s.receipt(t, "piet@example.com", "newsletter", now.Add(-4*day), blockNoConsent, false)
		s.receipt(t, "anna@example.com", "newsletter", now.Add(-1*day), allowConsent, true)
		s.receipt(t, "kees@example.com", "newsletter", now.Add(-40*day), blockNoConsent, false)

		ts := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
		want := []string{
			"jan@example.com newsletter no_consent 2/0 " + ts(day),
			"jan@example.com transactional suppressed:hard_bounce 1/0 " + ts(2*day),
			"piet@example.com newsletter no_consent,withdrawn 2/1 " + ts(3*day),
		}
		for _, limit := range []string{"100", "1"} {
			if got := s.noBasis(t, "limit="+limit); !slices.Equal(got, want) {
				t.Errorf("no-basis, limit %s:\n%s\nwant\n%s", limit, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		// A window given: kees's and jan's old attempts, and nothing later.
		got := s.noBasis(t, "since="+url.QueryEscape(ts(60*day))+"&until="+url.QueryEscape(ts(30*day)))
		want = []string{
			"jan@example.com newsletter no_consent 1/0 " + ts(40*day),
			"kees@example.com newsletter no_consent 1/0 " + ts(40*day),
		}
		if !slices.Equal(got, want) {
			t.Errorf("no-basis 60 to 30 days ago:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, q := range []string{"since=yesterday", "since=" + url.QueryEscape(ts(0)) + "&until=" + url.QueryEscape(ts(day)),
			"cursor=nonsense", "cursor=all~1~2~", "limit=0"} {
			if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/no-basis?"+q, "", nil); code != 400 || errorCode(t, raw) != "bad_request" {
				t.Errorf("no-basis?%s: %d %s, want 400", q, code, raw)
			}
		}
	})
}

// TestReportExpiring: granted consents whose expiry is within the days
// asked, soonest first; not those already expired, withdrawn, without an
// expiry, or further away.
func TestReportExpiring(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		day := 24 * time.Hour
		now := time.Now().UTC()
		// newsletter consents last 730 days; events ones do not expire.
		s.grant(t, "twenty@example.com", "newsletter", optin.ConsentChange{At: now.Add(-710 * day)})
		s.grant(t, "ten@example.com", "newsletter", optin.ConsentChange{At: now.Add(-720 * day)})
		s.grant(t, "later@example.com", "newsletter", optin.ConsentChange{At: now.Add(-600 * day)})
		s.grant(t, "past@example.com", "newsletter", optin.ConsentChange{At: now.Add(-800 * day)})
		s.grant(t, "gone@example.com", "newsletter", optin.ConsentChange{At: now.Add(-720 * day)})
		if _, err := s.ledger.Withdraw(t.Context(), addr(t, "gone@example.com"), "newsletter", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		s.grant(t, "never@example.com", "events", optin.ConsentChange{Source: optin.SourceDoubleOptIn})
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", []string{"ten@example.com", "twenty@example.com"}},
			{"?days=15", []string{"ten@example.com"}},
			{"?days=200", []string{"ten@example.com", "twenty@example.com", "later@example.com"}},
			{"?days=200&limit=1", []string{"ten@example.com", "twenty@example.com", "later@example.com"}},
		} {
			var rep struct {
				Days     int `json:"days"`
				Consents []struct {
					Email     string    `json:"email"`
					Purpose   string    `json:"purpose"`
					ExpiresAt time.Time `json:"expires_at"`
				} `json:"consents"`
				NextCursor string `json:"next_cursor"`
			}
			code, raw := s.call(t, readToken, "GET", "/api/v1/reports/expiring"+tc.query, "", &rep)
			if code != 200 || rep.NextCursor != "" {
				t.Fatalf("expiring%s: %d %s", tc.query, code, raw)
			}
			var got []string
			for _, c := range rep.Consents {
				got = append(got, c.Email)
				if c.Purpose != "newsletter" || c.ExpiresAt.Before(now) {
					t.Errorf("expiring%s: %+v", tc.query, c)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("expiring%s: %v, want %v (soonest first)", tc.query, got, tc.want)
			}
		}
		for _, q := range []string{"?days=0", "?days=x", "?days=100000"} {
			if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/expiring"+q, "", nil); code != 400 {
				t.Errorf("expiring%s: %d %s, want 400", q, code, raw)
			}
		}
	})
}

// TestReportOutdatedPolicy: granted and pending consents given under a
// policy version other than the current one, or none ("unknown"); not
// those under the current one, nor withdrawn ones.
func TestReportOutdatedPolicy(t *testing.T) {
	current := func(o *admin.Options) { o.PolicyVersion = "2026-01" }
	eachStoreWith(t, current, func(t *testing.T, s *apiServer) {
		old := optin.ConsentChange{Evidence: optin.Evidence{PolicyVersion: "2025-06", IP: "192.0.2.1"}}
		s.grant(t, "old@example.com", "newsletter", old)
		s.grant(t, "new@example.com", "newsletter", optin.ConsentChange{})
		s.grant(t, "pending@example.com", "events", old)
		s.grant(t, "left@example.com", "newsletter", old)
		if _, err := s.ledger.Withdraw(t.Context(), addr(t, "left@example.com"), "newsletter", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		csv := "email,purpose,status,basis,source\nimported@example.com,newsletter,granted,consent,import\n"
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", csv, nil); code != 200 {
			t.Fatalf("import: %d %s", code, raw)
		}
		var rep struct {
			CurrentVersion string `json:"current_version"`
			Consents       []struct {
				Email         string `json:"email"`
				Purpose       string `json:"purpose"`
				Status        string `json:"status"`
				PolicyVersion string `json:"policy_version"`
			} `json:"consents"`
			NextCursor string `json:"next_cursor"`
		}
		code, raw := s.call(t, readToken, "GET", "/api/v1/reports/outdated-policy", "", &rep)
		if code != 200 || rep.CurrentVersion != "2026-01" || rep.NextCursor != "" {
			t.Fatalf("outdated-policy: %d %s", code, raw)
		}
		var got []string
		for _, c := range rep.Consents {
			got = append(got, fmt.Sprintf("%s %s %s %s", c.Email, c.Purpose, c.Status, c.PolicyVersion))
		}
		slices.Sort(got)
		want := []string{
			"imported@example.com newsletter granted unknown",
			"old@example.com newsletter granted 2025-06",
			"pending@example.com events pending 2025-06",
		}
		if !slices.Equal(got, want) {
			t.Errorf("outdated-policy:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	// Without a current version there is nothing to compare with.
	s := newAPI(t, backends[0].open(t))
	if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/outdated-policy", "", nil); code != 409 || errorCode(t, raw) != "not_configured" {
		t.Errorf("outdated-policy without a current version: %d %s", code, raw)
	}
}

type affectedPage struct {
	Subjects []struct {
		Email string         `json:"email"`
		Kinds map[string]int `json:"kinds"`
		First time.Time      `json:"first"`
		Last  time.Time      `json:"last"`
	} `json:"subjects"`
	NextCursor string `json:"next_cursor"`
}

// TestReportAffected: the breach report names every subject mailed or
// whose records changed in the window, with counts per kind and the
// first and last time; not those only blocked, nor those whose events
// fall outside the window.
func TestReportAffected(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		now := time.Now().UTC().Truncate(time.Second)
		hour := time.Hour
		if _, err := s.ledgerAt(t, now.Add(-10*24*hour)).Grant(t.Context(), addr(t, "before@example.com"), "newsletter", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		s.receipt(t, "before@example.com", "newsletter", now.Add(-9*24*hour), allowConsent, true)
		s.grant(t, "jan@example.com", "newsletter", optin.ConsentChange{})
		s.receipt(t, "jan@example.com", "newsletter", now.Add(-30*time.Minute), allowConsent, true)
		s.receipt(t, "jan@example.com", "newsletter", now.Add(-20*time.Minute), allowConsent, true)
		s.receipt(t, "mailed@example.com", "transactional", now.Add(-40*time.Minute), optin.Decision{Allow: true, Reason: optin.ReasonTransactional}, true)
		s.receipt(t, "blocked@example.com", "newsletter", now.Add(-30*time.Minute), blockNoConsent, false)
		if _, err := s.ledger.Suppress(t.Context(), addr(t, "bounce@example.com"), optin.SuppressHardBounce, "test"); err != nil {
			t.Fatal(err)
		}
		since, until := now.Add(-hour).Format(time.RFC3339), now.Add(hour).Format(time.RFC3339)
		got := map[string]string{}
		var firstJan, lastJan time.Time
		for cursor, pages := "", 0; ; pages++ {
			var page affectedPage
			q := "since=" + url.QueryEscape(since) + "&until=" + url.QueryEscape(until) + "&limit=1&cursor=" + url.QueryEscape(cursor)
			if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/affected?"+q, "", &page); code != 200 || pages > 20 {
				t.Fatalf("affected: %d %s", code, raw)
			}
			for _, r := range page.Subjects {
				if _, dup := got[r.Email]; dup {
					t.Errorf("%s on two pages of a log this small", r.Email)
				}
				got[r.Email] = fmt.Sprint(r.Kinds)
				if r.Email == "jan@example.com" {
					firstJan, lastJan = r.First, r.Last
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		want := map[string]string{
			"jan@example.com":    "map[consent.granted:1 message.relayed:2]",
			"mailed@example.com": "map[message.relayed:1]",
			"bounce@example.com": "map[suppression.added:1]",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("affected: %v\nwant %v", got, want)
		}
		if !firstJan.Equal(now.Add(-30*time.Minute)) || lastJan.Before(now) {
			t.Errorf("jan: first %s last %s; want the first receipt and the grant", firstJan, lastJan)
		}
		for _, q := range []string{"", "since=" + url.QueryEscape(since), "since=" + url.QueryEscape(until) + "&until=" + url.QueryEscape(since)} {
			if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/affected?"+q, "", nil); code != 400 {
				t.Errorf("affected?%s: %d %s, want 400", q, code, raw)
			}
		}
	})
}

// TestReportProcessing: the record of processing names the controller,
// every purpose with its basis and retention, the retention periods and
// the processors by host, in JSON and in Markdown, and never a
// credential.
func TestReportProcessing(t *testing.T) {
	rec := admin.Processing{
		Controller:       admin.Controller{Name: "Bakkerij Jansen B.V.", Contact: "privacy@bakkerij.example"},
		Store:            "redis",
		ReceiptRetention: 400 * 24 * time.Hour,
		DeliveryDedup:    24 * time.Hour,
		WebhookDedup:     72 * time.Hour,
		OutboxRetention:  7 * 24 * time.Hour,
		PendingExpiry:    7 * 24 * time.Hour,
		Processors: []admin.Processor{{Name: "upstream mailer", Receives: "the mail", Host: "smtp.mailer.example:587"},
			{Name: "outbound webhook", Receives: "consent.withdrawn", Host: "crm.example"}},
	}
	s := newAPIWith(t, backends[0].open(t), func(o *admin.Options) { o.Processing = rec })
	var doc struct {
		Controller admin.Controller `json:"controller"`
		Purposes   []struct {
			Name, Basis, Category, Retention string
			DoubleOptIn                      bool `json:"double_opt_in"`
		} `json:"purposes"`
		Retention []struct {
			What, Period string
		} `json:"retention"`
		Security   []string          `json:"security"`
		Processors []admin.Processor `json:"processors"`
	}
	code, raw := s.call(t, readToken, "GET", "/api/v1/reports/processing", "", &doc)
	if code != 200 {
		t.Fatalf("processing: %d %s", code, raw)
	}
	if doc.Controller != rec.Controller || len(doc.Processors) != 2 || doc.Processors[0].Host != "smtp.mailer.example:587" {
		t.Errorf("controller or processors: %+v %+v", doc.Controller, doc.Processors)
	}
	purposes := fmt.Sprint(doc.Purposes)
	if purposes != "[{events consent marketing no expiry true} {newsletter consent marketing 730d false} {transactional contract transactional no expiry false}]" {
		t.Errorf("purposes: %s", purposes)
	}
	retention := fmt.Sprint(doc.Retention)
	for _, want := range []string{"{message receipts 400d}", "{marks of delivered copies (against duplicate delivery) 1d}", "{ids of inbound webhook deliveries 3d}",
		"{outbound webhook deliveries, once delivered or given up 7d}", "{pending double opt-in consents 7d}", "{consents for newsletter 730d}"} {
		if !strings.Contains(retention, want) {
			t.Errorf("retention lacks %s: %s", want, retention)
		}
	}
	if len(doc.Security) < 5 || !strings.Contains(strings.Join(doc.Security, "\n"), "Redis") {
		t.Errorf("security: %v", doc.Security)
	}
	_, md := s.call(t, readToken, "GET", "/api/v1/reports/processing?format=markdown", "", nil)
	for _, want := range []string{"# Record of processing activities", "- Name: Bakkerij Jansen B.V.", "- Address: (not set)",
		"| newsletter |  | consent | marketing | 730d | no |", "| upstream mailer | the mail | smtp.mailer.example:587 |", "| message receipts | 400d |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if code, _ := s.call(t, readToken, "GET", "/api/v1/reports/processing?format=pdf", "", nil); code != 400 {
		t.Errorf("format=pdf: %d, want 400", code)
	}
}

// TestReportNoBasisPages: a log of more receipts than a store page holds
// is read in report pages that go on where the last stopped, over both
// walks; added up, every attempt is counted once.
func TestReportNoBasisPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		var changes []optin.Change
		for i := range 600 {
			for k := range 2 {
				d, relayed := blockNoConsent, false
				if i%3 == 0 && k == 1 {
					relayed = true // monitor mode: relayed all the same
				}
				r := optin.Receipt{Subject: addr(t, fmt.Sprintf("p%03d@example.com", i)), Purpose: "newsletter", Actor: "smtp", Decision: d,
					Relayed: relayed, Time: now.Add(-time.Duration(i*2+k+1) * time.Second), Details: optin.ReceiptDetails{MessageID: "<m@crm.example>"}}
				if relayed {
					r.Details.Mode = "monitor"
				}
				changes = append(changes, r.Change())
			}
		}
		if _, err := s.ledger.Apply(t.Context(), changes); err != nil {
			t.Fatal(err)
		}
		got := s.noBasis(t, "limit=100")
		attempts, anyway := 0, 0
		for _, line := range got {
			var email, purpose, reasons, last string
			var a, r int
			fmt.Sscanf(line, "%s %s %s %d/%d %s", &email, &purpose, &reasons, &a, &r, &last)
			attempts += a
			anyway += r
		}
		if len(got) != 600 || attempts != 1200 || anyway != 200 {
			t.Errorf("%d subjects, %d attempts, %d relayed anyway; want 600, 1200, 200", len(got), attempts, anyway)
		}
	})
}
