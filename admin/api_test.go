package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"optinproxy/admin"
	"optinproxy/optin"
)

type subjectAnswer struct {
	Email        string          `json:"email"`
	Consents     []optin.Consent `json:"consents"`
	Suppressions []struct {
		Reason string `json:"reason"`
	} `json:"suppressions"`
	Events []optin.Event `json:"events"`
}

func TestAuthentication(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		for _, tc := range []struct {
			token, method, path string
			want                int
		}{
			{"", "GET", "/api/v1/verify", 401},
			{"wrong", "GET", "/api/v1/verify", 401},
			{readToken + "x", "GET", "/api/v1/verify", 401},
			{readToken, "GET", "/api/v1/verify", 200},
			{readToken, "PUT", "/api/v1/subjects/a@example.com/consents/newsletter", 403},
			{readToken, "POST", "/api/v1/imports", 403},
			{adminToken, "PUT", "/api/v1/subjects/a@example.com/consents/newsletter", 200},
		} {
			code, raw := s.call(t, tc.token, tc.method, tc.path, "", nil)
			if code != tc.want {
				t.Errorf("%s %s with %q: %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, raw)
			}
			if code >= 400 {
				errorCode(t, raw)
			}
		}
	})
}

// The README's story: grant with evidence, see it, withdraw, see the
// history as a verifiable chain.
func TestGrantShowWithdrawHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		body := `{"source": "form", "evidence": {"ip": "192.0.2.7", "user_agent": "Firefox", "text": "Yes, send me the newsletter", "campaign": "spring"}}`
		var put struct {
			Applied bool          `json:"applied"`
			Consent optin.Consent `json:"consent"`
		}
		code, raw := s.call(t, adminToken, "PUT", "/api/v1/subjects/"+url.PathEscape("Jan+News@Example.COM")+"/consents/newsletter", body, &put)
		if code != 200 || !put.Applied || put.Consent.Status != optin.StatusGranted || put.Consent.Basis != optin.BasisConsent {
			t.Fatalf("grant: %d %s", code, raw)
		}
		var subj subjectAnswer
		code, raw = s.call(t, readToken, "GET", "/api/v1/subjects/jan+news@example.com", "", &subj)
		if code != 200 || subj.Email != "jan+news@example.com" || len(subj.Consents) != 1 {
			t.Fatalf("show: %d %s", code, raw)
		}
		c := subj.Consents[0]
		if c.Evidence == nil || c.Evidence.IP != "192.0.2.7" || c.Evidence.Extra["campaign"] != "spring" || c.Evidence.PolicyVersion != "2026-01" {
			t.Errorf("evidence not shown: %s", raw)
		}
		if c.ExpiresAt.Sub(c.GrantedAt) != 730*24*time.Hour {
			t.Errorf("expiry %v after grant %v", c.ExpiresAt, c.GrantedAt)
		}

		code, raw = s.call(t, adminToken, "DELETE", "/api/v1/subjects/jan%2Bnews@example.com/consents/newsletter", `{"source": "api"}`, &put)
		if code != 200 || put.Consent.Status != optin.StatusWithdrawn {
			t.Fatalf("withdraw: %d %s", code, raw)
		}
		// A late grant that happened before the withdrawal changes nothing.
		late := fmt.Sprintf(`{"occurred_at": %q}`, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
		code, raw = s.call(t, adminToken, "PUT", "/api/v1/subjects/jan+news@example.com/consents/newsletter", late, &put)
		if code != 200 || put.Applied || put.Consent.Status != optin.StatusWithdrawn {
			t.Errorf("late grant applied: %d %s", code, raw)
		}

		var page struct {
			Events     []optin.Event `json:"events"`
			NextCursor string        `json:"next_cursor"`
		}
		code, raw = s.call(t, readToken, "GET", "/api/v1/events?subject="+url.QueryEscape("JAN+news@example.com"), "", &page)
		if code != 200 || len(page.Events) != 2 {
			t.Fatalf("history: %d %s", code, raw)
		}
		if page.Events[0].Type != optin.EventConsentGranted || page.Events[1].Type != optin.EventConsentWithdrawn {
			t.Errorf("history order: %s, %s", page.Events[0].Type, page.Events[1].Type)
		}
		if page.Events[0].Prev != "" || page.Events[1].Prev != page.Events[0].Hash || page.Events[0].Actor != "token:admin" {
			t.Errorf("chain or actor wrong: %s", raw)
		}
		var rep optin.VerifyReport
		if code, raw := s.call(t, readToken, "GET", "/api/v1/verify", "", &rep); code != 200 || rep.Events != 2 || len(rep.Broken) != 0 {
			t.Errorf("verify: %d %s", code, raw)
		}
	})
}

func TestBadInput(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		for _, tc := range []struct {
			method, path, body string
			want               int
			code               string
		}{
			{"GET", "/api/v1/subjects/nobody@example.com", "", 404, "not_found"},
			{"GET", "/api/v1/subjects/not-an-address", "", 400, "bad_address"},
			{"PUT", "/api/v1/subjects/a@example.com/consents/nope", "", 404, "unknown_purpose"},
			{"PUT", "/api/v1/subjects/a@example.com/consents/newsletter", `{"basis": "whim"}`, 400, "bad_request"},
			{"PUT", "/api/v1/subjects/a@example.com/consents/newsletter", `{"bogus": 1}`, 400, "bad_request"},
			{"PUT", "/api/v1/subjects/a@example.com/consents/newsletter", `{not json`, 400, "bad_request"},
			{"PUT", "/api/v1/subjects/a@example.com/consents/newsletter", `{"evidence": {"ip": 7}}`, 400, "bad_request"},
			{"PUT", "/api/v1/subjects/a@example.com/consents/newsletter", `{"source": "` + strings.Repeat("x", 5000) + `"}`, 413, "too_large"},
			{"GET", "/api/v1/events?since=yesterday", "", 400, "bad_request"},
			{"GET", "/api/v1/events?limit=-1", "", 400, "bad_request"},
			{"GET", "/api/v1/subjects/a@example.com/export?format=pdf", "", 400, "bad_request"},
			{"GET", "/api/v1/nothing-here", "", 404, "not_found"},
			{"POST", "/api/v1/suppressions", `{"email": "x@example.com", "reason": "erased"}`, 400, "bad_request"},
			{"POST", "/api/v1/suppressions", `{"email": "x@example.com", "reason": "bored"}`, 400, "bad_request"},
			{"DELETE", "/api/v1/suppressions/x@example.com?reason=manual", "", 404, "not_found"},
		} {
			code, raw := s.call(t, adminToken, tc.method, tc.path, tc.body, nil)
			if code != tc.want {
				t.Errorf("%s %s %.40s: %d, want %d: %s", tc.method, tc.path, tc.body, code, tc.want, raw)
				continue
			}
			if got := errorCode(t, raw); got != tc.code {
				t.Errorf("%s %s: code %q, want %q", tc.method, tc.path, got, tc.code)
			}
		}
		// The messages speak to the client, not of Go packages, and an
		// unknown purpose is answered with the known ones.
		for path, want := range map[string]string{
			"/api/v1/subjects/not-an-address":           "bad address: missing @",
			"/api/v1/events?subject=not-an-address":     "bad address: missing @",
			"/api/v1/subjects/a@example.com/consents/x": `unknown purpose: "x"; the purposes are: events, newsletter, transactional`,
			// Names are matched exactly; one that differs in case is told so.
			"/api/v1/subjects/a@example.com/consents/Newsletter": `unknown purpose: "Newsletter" (purpose names are lower case: "newsletter"); the purposes are: events, newsletter, transactional`,
		} {
			method := "GET"
			if strings.Contains(path, "/consents/") {
				method = "PUT"
			}
			_, raw := s.call(t, adminToken, method, path, "", nil)
			var e struct{ Error struct{ Message string } }
			if json.Unmarshal([]byte(raw), &e); e.Error.Message != want {
				t.Errorf("%s %s: message %q, want %q", method, path, e.Error.Message, want)
			}
		}
		// Nothing of that was stored.
		if code, raw := s.call(t, readToken, "GET", "/api/v1/subjects/a@example.com", "", nil); code != 404 {
			t.Errorf("bad requests stored something: %d %s", code, raw)
		}
	})
}

func TestDoubleOptInIsPending(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		var put struct{ Consent optin.Consent }
		s.call(t, adminToken, "PUT", "/api/v1/subjects/a@example.com/consents/events", "", &put)
		if put.Consent.Status != optin.StatusPending {
			t.Errorf("double opt-in purpose granted at once: %s", put.Consent.Status)
		}
	})
}

func TestSuppressions(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/suppressions", `{"email": "Bounce@Example.com", "reason": "hard_bounce"}`, nil); code != 201 {
			t.Fatalf("add: %d %s", code, raw)
		}
		// An unknown reason is answered with the ones that would do.
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/suppressions", `{"email": "bounce@example.com", "reason": "spam"}`, nil); code != 400 ||
			!strings.Contains(raw, `unknown suppression reason \"spam\"; the reasons to add are: unsubscribed_all, hard_bounce, complaint, manual`) {
			t.Errorf("unknown reason: %d %s", code, raw)
		}
		if code, raw := s.call(t, adminToken, "DELETE", "/api/v1/suppressions/bounce@example.com?reason=spam", "", nil); code != 400 ||
			!strings.Contains(raw, `unknown suppression reason \"spam\"; the reasons are: unsubscribed_all, hard_bounce, complaint, erased, manual`) {
			t.Errorf("removing an unknown reason: %d %s", code, raw)
		}
		if code, _ := s.call(t, adminToken, "POST", "/api/v1/suppressions", `{"email": "bounce@example.com", "reason": "hard_bounce"}`, nil); code != 200 {
			t.Errorf("repeat add: %d, want 200 (nothing new)", code)
		}
		s.call(t, adminToken, "POST", "/api/v1/suppressions", `{"email": "manual@example.com"}`, nil)
		var page struct {
			Suppressions []struct{ Email, Reason string }
		}
		s.call(t, readToken, "GET", "/api/v1/suppressions", "", &page)
		got := map[string]string{}
		for _, p := range page.Suppressions {
			got[p.Email] = p.Reason
		}
		if got["bounce@example.com"] != "hard_bounce" || got["manual@example.com"] != "manual" || len(got) != 2 {
			t.Errorf("list: %v", got)
		}
		if code, raw := s.call(t, adminToken, "DELETE", "/api/v1/suppressions/BOUNCE@example.com", "", nil); code != 200 {
			t.Errorf("remove: %d %s", code, raw)
		}
		if code, _ := s.call(t, adminToken, "DELETE", "/api/v1/suppressions/bounce@example.com", "", nil); code != 404 {
			t.Errorf("second remove: %d, want 404", code)
		}
	})
}

func TestImportCSV(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		csv := "email,purpose,status,basis,source,granted_at,policy_version,ip\n" +
			"anna@example.com,newsletter,granted,consent,import,2026-01-10T09:00:00Z,2025-06,192.0.2.1\n" +
			"not an address,newsletter,granted,consent,import,,,\n" +
			"bob@example.com,newsletter,withdrawn,consent,crm,2026-01-11,,\n" +
			"carl@example.com,nope,granted,consent,import,,,\n" +
			"dora@example.com,newsletter,maybe,consent,import,,,\n" +
			"eve@example.com,newsletter,granted,consent,import,yesterday,,\n" +
			"\"broken,quote\n"
		var ans struct {
			Rows, Applied, Ignored, Bad int
			BadRows                     []struct {
				Line  int
				Error string
			} `json:"bad_rows"`
		}
		code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", csv, &ans)
		if code != 200 || ans.Rows != 7 || ans.Applied != 2 || ans.Bad != 5 {
			t.Fatalf("import: %d %s", code, raw)
		}
		lines := []int{}
		for _, b := range ans.BadRows {
			lines = append(lines, b.Line)
		}
		if fmt.Sprint(lines) != "[3 5 6 7 8]" {
			t.Errorf("bad lines %v, want [3 5 6 7 8]: %s", lines, raw)
		}
		if ans.BadRows[0].Error != "bad address: missing @" || ans.BadRows[1].Error != `unknown purpose: "nope"; the purposes are: events, newsletter, transactional` {
			t.Errorf("bad rows' errors: %+v", ans.BadRows)
		}
		var subj subjectAnswer
		s.call(t, readToken, "GET", "/api/v1/subjects/anna@example.com", "", &subj)
		if len(subj.Consents) != 1 || subj.Consents[0].Evidence == nil || subj.Consents[0].Evidence.PolicyVersion != "2025-06" ||
			!subj.Consents[0].GrantedAt.Equal(time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("imported record: %+v", subj.Consents)
		}
		// The same file again: every good row is a repeat now.
		s.call(t, adminToken, "POST", "/api/v1/imports", csv, &ans)
		if ans.Applied != 0 || ans.Ignored != 2 {
			t.Errorf("re-import applied %d, ignored %d; want 0 and 2", ans.Applied, ans.Ignored)
		}
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", "mail,purpose\nx,y\n", nil); code != 400 || !strings.Contains(raw, "mail") {
			t.Errorf("bad header: %d %s", code, raw)
		}
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", "", nil); code != 400 || !strings.Contains(raw, "the CSV is empty") {
			t.Errorf("empty file: %d %s", code, raw)
		}
	})
}

func TestExportFormats(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		s.call(t, adminToken, "PUT", "/api/v1/subjects/jan@example.com/consents/newsletter", `{"evidence": {"ip": "192.0.2.9"}}`, nil)
		s.call(t, adminToken, "POST", "/api/v1/suppressions", `{"email": "jan@example.com", "reason": "complaint"}`, nil)

		var ex struct {
			Email        string
			Consents     []optin.Consent
			Suppressions []struct{ Reason string }
			Events       []optin.Event
		}
		if code, raw := s.call(t, readToken, "GET", "/api/v1/subjects/jan@example.com/export", "", &ex); code != 200 || len(ex.Events) != 2 || len(ex.Consents) != 1 || len(ex.Suppressions) != 1 {
			t.Fatalf("json export: %d %s", code, raw)
		}
		code, raw := s.call(t, readToken, "GET", "/api/v1/subjects/jan@example.com/export?format=csv", "", nil)
		if code != 200 || !strings.Contains(raw, "consent,newsletter,granted,consent,api") || !strings.Contains(raw, "suppression,complaint") {
			t.Errorf("csv export: %d %s", code, raw)
		}
		req, _ := http.NewRequest("GET", s.url+"/api/v1/subjects/jan@example.com/export?format=xlsx", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		f, err := excelize.OpenReader(resp.Body)
		if err != nil {
			t.Fatalf("xlsx does not open: %v", err)
		}
		rows, err := f.GetRows("Consents")
		if err != nil || len(rows) != 2 || rows[1][0] != "newsletter" || rows[1][1] != "granted" || !strings.Contains(rows[1][8], "192.0.2.9") {
			t.Errorf("xlsx consents sheet: %v %v", rows, err)
		}
		events, _ := f.GetRows("Events")
		if len(events) != 3 {
			t.Errorf("xlsx events sheet has %d rows, want header + 2", len(events))
		}
		if code, _ := s.call(t, readToken, "GET", "/api/v1/subjects/nobody@example.com/export", "", nil); code != 404 {
			t.Errorf("export of unknown subject: %d", code)
		}
	})
}

// Every route the API serves is in the OpenAPI document, and the document
// lists nothing else.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newAPI(t, backends[0].open(t))
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	code, raw := s.call(t, "", "GET", "/api/v1/openapi.json", "", &doc)
	if code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %d %.200s", code, raw)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{"GET /api/v1/openapi.json": true}
	for _, r := range admin.Routes() {
		served[r] = true
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("%s is served but not in openapi.json", r)
		}
		// And it really is served: no 404 from the catch-all.
		method, path, _ := strings.Cut(r, " ")
		path = strings.NewReplacer("{email}", "a@example.com", "{purpose}", "newsletter").Replace(path)
		code, raw := s.call(t, adminToken, method, path, "", nil)
		if code == 404 && strings.Contains(raw, "no such endpoint") || code == 405 {
			t.Errorf("%s: not served (%d)", r, code)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("%s is in openapi.json but not served", r)
		}
	}
	if !bytes.Contains([]byte(raw), []byte(`"bearer"`)) {
		t.Error("no bearer security scheme")
	}
}

// TestImportInventsNoEvidence: a row without granted_at or
// policy_version keeps them empty, its event names the file and line
// (no evidence invented), it does not undo a stored withdrawal, and the no-proof
// report lists it with what is missing.
func TestImportInventsNoEvidence(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		if code, raw := s.call(t, adminToken, "DELETE", "/api/v1/subjects/gone@example.com/consents/newsletter", "", nil); code != 200 {
			t.Fatalf("withdraw: %d %s", code, raw)
		}
		csv := "email,purpose,status,basis,source,granted_at,policy_version,ip\n" +
			"old@example.com,newsletter,granted,consent,import,,,\n" +
			"gone@example.com,newsletter,granted,consent,import,,,\n" +
			"dated@example.com,newsletter,granted,consent,import,2025-03-01,,198.51.100.4\n" +
			"full@example.com,newsletter,granted,consent,import,2025-03-01,2025-01,198.51.100.5\n"
		var ans struct{ Rows, Applied, Ignored, Bad int }
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/imports?file=../../lists/klanten%20maart.csv", csv, &ans); code != 200 || ans.Applied != 3 || ans.Ignored != 1 {
			t.Fatalf("import: %d %s", code, raw)
		}
		var subj subjectAnswer
		s.call(t, readToken, "GET", "/api/v1/subjects/old@example.com", "", &subj)
		c := subj.Consents[0]
		if !c.GrantedAt.IsZero() || c.Evidence != nil {
			t.Errorf("an undated import got a grant time %s or evidence %+v", c.GrantedAt, c.Evidence)
		}
		var ev struct {
			Events []struct {
				Details struct {
					Evidence *json.RawMessage `json:"evidence"`
					Import   struct {
						File string `json:"file"`
						Line int    `json:"line"`
						At   string `json:"at"`
					} `json:"import"`
				} `json:"details"`
			} `json:"events"`
		}
		s.call(t, readToken, "GET", "/api/v1/events?subject=old@example.com", "", &ev)
		if len(ev.Events) != 1 || ev.Events[0].Details.Import.File != "klanten maart.csv" || ev.Events[0].Details.Import.Line != 2 ||
			ev.Events[0].Details.Import.At == "" || ev.Events[0].Details.Evidence != nil {
			t.Errorf("the undated import's event: %+v", ev.Events)
		}
		s.call(t, readToken, "GET", "/api/v1/subjects/gone@example.com", "", &subj)
		if subj.Consents[0].Status != "withdrawn" {
			t.Errorf("an undated import undid a withdrawal: %+v", subj.Consents[0])
		}
		var rep struct {
			Consents []struct {
				Email   string   `json:"email"`
				Missing []string `json:"missing"`
			} `json:"consents"`
			NextCursor string `json:"next_cursor"`
		}
		if code, raw := s.call(t, readToken, "GET", "/api/v1/reports/no-proof", "", &rep); code != 200 || rep.NextCursor != "" {
			t.Fatalf("report: %d %s", code, raw)
		}
		got := map[string]string{}
		for _, r := range rep.Consents {
			got[r.Email] = strings.Join(r.Missing, ",")
		}
		want := map[string]string{"old@example.com": "granted_at,policy_version,evidence", "dated@example.com": "policy_version"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("no-proof report: %v, want %v", got, want)
		}
	})
}

// TestImportShortRows: a row may leave its trailing optional columns off
// (a spreadsheet drops empty trailing cells); a row without a required
// column is refused with the column's name and its line.
func TestImportShortRows(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		csv := "email,purpose,status,basis,source,granted_at,policy_version,ip\n" +
			"anna@example.com,newsletter,granted,consent,import\n" +
			"bob@example.com,newsletter,granted,consent,import,2026-01-10\n" +
			"carl@example.com,newsletter,granted\n" +
			"dora@example.com,newsletter,granted,consent,import,,,,extra\n"
		var ans importResult
		code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", csv, &ans)
		if code != 200 || ans.Rows != 4 || ans.Applied != 2 || ans.Bad != 2 {
			t.Fatalf("import: %d %s", code, raw)
		}
		if ans.BadRows[0].Line != 4 || ans.BadRows[0].Error != "missing column basis: 3 fields, the header has 8; only granted_at, policy_version and ip may be left off" {
			t.Errorf("the row without basis: %+v", ans.BadRows[0])
		}
		if ans.BadRows[1].Line != 5 || ans.BadRows[1].Error != "9 fields, the header has 8" {
			t.Errorf("the row with an extra field: %+v", ans.BadRows[1])
		}
		var subj subjectAnswer
		s.call(t, readToken, "GET", "/api/v1/subjects/bob@example.com", "", &subj)
		if len(subj.Consents) != 1 || !subj.Consents[0].GrantedAt.Equal(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("the short dated row: %+v", subj.Consents)
		}
	})
}

// TestImportSemicolons: Excel set to Dutch saves "CSV" with semicolons, a
// byte order mark and CRLF line ends; the import reads it as it is.
func TestImportSemicolons(t *testing.T) {
	body, err := os.ReadFile("testdata/import-semicolon.csv")
	if err != nil {
		t.Fatal(err)
	}
	eachStore(t, func(t *testing.T, s *apiServer) {
		var ans importResult
		code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", string(body), &ans)
		if code != 200 || ans.Rows != 3 || ans.Applied != 3 || ans.Bad != 0 {
			t.Fatalf("import: %d %s", code, raw)
		}
		var subj subjectAnswer
		s.call(t, readToken, "GET", "/api/v1/subjects/anna@example.com", "", &subj)
		if len(subj.Consents) != 1 || subj.Consents[0].Evidence == nil || subj.Consents[0].Evidence.PolicyVersion != "2025-06, juni" ||
			!subj.Consents[0].GrantedAt.Equal(time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("anna: %+v", subj.Consents)
		}
		s.call(t, readToken, "GET", "/api/v1/subjects/piet@example.com", "", &subj)
		if len(subj.Consents) != 1 || subj.Consents[0].Source != "webformulier" ||
			subj.Consents[0].Evidence == nil || subj.Consents[0].Evidence.PolicyVersion != "v3; juni" {
			t.Errorf("the quoted policy version with a semicolon: %+v", subj.Consents)
		}
		// A separator the import does not read gets a hint, not only
		// "unknown column".
		code, raw = s.call(t, adminToken, "POST", "/api/v1/imports", "email\tpurpose\tstatus\tbasis\tsource\nx\ty\n", nil)
		if code != 400 || !strings.Contains(raw, "separate its columns with commas or semicolons: save the file as CSV") {
			t.Errorf("a tab-separated file: %d %s", code, raw)
		}
	})
}

type importResult struct {
	Rows, Applied, Ignored, Bad int
	BadRows                     []struct {
		Line  int
		Error string
	} `json:"bad_rows"`
}
