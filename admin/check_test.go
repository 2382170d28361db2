package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"optinproxy/admin"
	"optinproxy/optin"
)

type checkAnswer struct {
	Purpose string `json:"purpose"`
	Mode    string `json:"mode"`
	Results []struct {
		Email    string `json:"email"`
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
		Error    string `json:"error"`
	} `json:"results"`
}

func checkBody(purpose string, emails ...string) string {
	b, _ := json.Marshal(map[string]any{"purpose": purpose, "emails": emails})
	return string(b)
}

// TestCheck: each address gets the relay's decision and reason for the
// purpose, in the order given, a repeated one each time, an unparseable
// one invalid_address with the parse error; nothing is recorded.
func TestCheck(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		day := 24 * time.Hour
		s.grant(t, "jan@example.com", "newsletter", optin.ConsentChange{})
		s.grant(t, "piet@example.com", "newsletter", optin.ConsentChange{})
		if _, err := s.ledger.Withdraw(t.Context(), addr(t, "piet@example.com"), "newsletter", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		s.grant(t, "old@example.com", "newsletter", optin.ConsentChange{At: time.Now().Add(-800 * day)})
		s.grant(t, "pending@example.com", "events", optin.ConsentChange{})
		s.grant(t, "bounced@example.com", "newsletter", optin.ConsentChange{})
		if _, err := s.ledger.Suppress(t.Context(), addr(t, "bounced@example.com"), optin.SuppressHardBounce, "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ledger.Withdraw(t.Context(), addr(t, "info@shop.example"), "events", optin.ConsentChange{}); err != nil {
			t.Fatal(err)
		}
		before := s.eventCount(t)

		for _, tc := range []struct {
			purpose string
			emails  []string
			want    string
		}{
			{"newsletter", []string{"Jan@Example.com", "piet@example.com", "old@example.com", "nobody@example.com",
				"info@bakkerij.example", "bounced@example.com", "not an address", "jan@example.com"},
				"Jan@Example.com allow consent; piet@example.com block withdrawn; old@example.com block expired; " +
					"nobody@example.com block no_consent; info@bakkerij.example allow role_address; " +
					"bounced@example.com block suppressed:hard_bounce; not an address block invalid_address; jan@example.com allow consent"},
			// A withdrawal beats a role address; a pending double opt-in blocks.
			{"events", []string{"info@shop.example", "pending@example.com", "jan@example.com"},
				"info@shop.example block withdrawn; pending@example.com block pending_confirmation; jan@example.com block no_consent"},
			// Transactional mail reaches all but the bounced.
			{"transactional", []string{"piet@example.com", "bounced@example.com"},
				"piet@example.com allow transactional; bounced@example.com block suppressed:hard_bounce"},
			{"newsletter", []string{}, ""},
		} {
			var ans checkAnswer
			code, raw := s.call(t, readToken, "POST", "/api/v1/check", checkBody(tc.purpose, tc.emails...), &ans)
			if code != 200 || ans.Mode != "enforce" || ans.Purpose != tc.purpose {
				t.Fatalf("check %s: %d %s", tc.purpose, code, raw)
			}
			var got []string
			for _, r := range ans.Results {
				got = append(got, r.Email+" "+r.Decision+" "+r.Reason)
				if (r.Reason == admin.ReasonInvalidAddress) != (r.Error != "") {
					t.Errorf("%q: reason %s, error %q", r.Email, r.Reason, r.Error)
				}
			}
			if g := strings.Join(got, "; "); g != tc.want {
				t.Errorf("check %s:\n%s\nwant\n%s", tc.purpose, g, tc.want)
			}
		}
		if after := s.eventCount(t); after != before {
			t.Errorf("the check recorded something: %d events before, %d after", before, after)
		}

		for _, tc := range []struct {
			body      string
			code      int
			errCode   string
			inMessage string
		}{
			{checkBody("nieuwsbrief", "a@example.com"), 400, "unknown_purpose", "events, newsletter, transactional"},
			{checkBody("", "a@example.com"), 400, "unknown_purpose", "purpose is required; the purposes are: events, newsletter, transactional"},
			{checkBody("NEWSLETTER", "a@example.com"), 400, "unknown_purpose", `(purpose names are lower case: \"newsletter\"); the purposes are: events`},
			{`{"purpose": "newsletter"}`, 400, "bad_request", "no emails list"},
			{`{"purpose": "newsletter", "email": ["a@example.com"]}`, 400, "bad_request", "unknown field email"},
			{`{"purpose": "newsletter", "emails": "a@example.com"}`, 400, "bad_request", "emails"},
			{`{"purpose": "newsletter", "emails": [1]}`, 400, "bad_request", "emails[0]"},
			{`{"purpose": "newsletter", "emails": []} {}`, 400, "bad_request", "after the object"},
			{checkBody("newsletter", make([]string, admin.MaxCheck+1)...), 413, "too_many", "at most 10000 addresses"},
		} {
			code, raw := s.call(t, readToken, "POST", "/api/v1/check", tc.body, nil)
			if code != tc.code || errorCode(t, raw) != tc.errCode || !strings.Contains(raw, tc.inMessage) {
				t.Errorf("%.60s: %d %s; want %d %s naming %q", tc.body, code, raw, tc.code, tc.errCode, tc.inMessage)
			}
		}
	})
}

// eventCount counts every event of the log.
func (s *apiServer) eventCount(t *testing.T) int {
	t.Helper()
	n := 0
	for cursor := ""; ; {
		page, err := s.ledger.Store().Events(t.Context(), optin.EventQuery{Cursor: cursor, Limit: optin.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Events)
		if cursor = page.NextCursor; cursor == "" {
			return n
		}
	}
}

// TestCheckMonitorMode: in monitor mode the answer says so, and the
// decisions are the same: the relay records them as blocked.
func TestCheckMonitorMode(t *testing.T) {
	s := newAPIWith(t, backends[0].open(t), func(o *admin.Options) { o.Monitor = true })
	var ans checkAnswer
	if code, raw := s.call(t, readToken, "POST", "/api/v1/check", checkBody("newsletter", "nobody@example.com"), &ans); code != 200 ||
		ans.Mode != "monitor" || len(ans.Results) != 1 || ans.Results[0].Decision != "block" {
		t.Errorf("check in monitor mode: %d %s", code, raw)
	}
}

// TestCheckRoleAddressesAsConfigured: the check uses the relay's role
// addresses, with the configuration's additions and removals.
func TestCheckRoleAddressesAsConfigured(t *testing.T) {
	roles, err := optin.NewRoleAddresses([]string{"verkoop-nl"}, []string{"info"})
	if err != nil {
		t.Fatal(err)
	}
	s := newAPIWith(t, backends[0].open(t), func(o *admin.Options) { o.Roles = roles })
	var ans checkAnswer
	s.call(t, readToken, "POST", "/api/v1/check", checkBody("newsletter", "info@shop.example", "verkoop-nl@shop.example"), &ans)
	if got := fmt.Sprint(ans.Results); got != "[{info@shop.example block no_consent } {verkoop-nl@shop.example allow role_address }]" {
		t.Errorf("role addresses as configured: %s", got)
	}
}

// TestCheckRoleAddressesReloaded: after SetRoles (a configuration
// reload) the check decides with the new role addresses, as the relay
// does.
func TestCheckRoleAddressesReloaded(t *testing.T) {
	s := newAPI(t, backends[0].open(t))
	body := checkBody("newsletter", "info@shop.example", "verkoop-nl@shop.example")
	var ans checkAnswer
	s.call(t, readToken, "POST", "/api/v1/check", body, &ans)
	if got := fmt.Sprint(ans.Results); got != "[{info@shop.example allow role_address } {verkoop-nl@shop.example block no_consent }]" {
		t.Errorf("built-in role addresses: %s", got)
	}
	roles, err := optin.NewRoleAddresses([]string{"verkoop-nl"}, []string{"info"})
	if err != nil {
		t.Fatal(err)
	}
	s.api.SetRoles(roles)
	ans = checkAnswer{}
	s.call(t, readToken, "POST", "/api/v1/check", body, &ans)
	if got := fmt.Sprint(ans.Results); got != "[{info@shop.example block no_consent } {verkoop-nl@shop.example allow role_address }]" {
		t.Errorf("role addresses after SetRoles: %s", got)
	}
}

// countingStore is a real store that counts the Lookup calls made
// through it.
type countingStore struct {
	optin.Store
	lookups atomic.Int64
}

func (c *countingStore) Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error) {
	c.lookups.Add(1)
	return c.Store.Lookup(ctx, q)
}

// TestCheckOneLookup: a check of 10,000 addresses makes one Store.Lookup,
// on each store.
func TestCheckOneLookup(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := &countingStore{Store: b.open(t)}
			s := newAPI(t, store)
			s.grant(t, "person7@example.com", "newsletter", optin.ConsentChange{})
			emails := make([]string, admin.MaxCheck)
			for i := range emails {
				emails[i] = fmt.Sprintf("person%d@example.com", i%9000) // with repeats
			}
			store.lookups.Store(0)
			var ans checkAnswer
			if code, raw := s.call(t, readToken, "POST", "/api/v1/check", checkBody("newsletter", emails...), &ans); code != 200 {
				t.Fatalf("check: %d %.300s", code, raw)
			}
			if n := store.lookups.Load(); n != 1 {
				t.Errorf("a check of %d addresses made %d Lookup calls, want 1", len(emails), n)
			}
			if len(ans.Results) != admin.MaxCheck || ans.Results[7].Reason != "consent" || ans.Results[9007].Reason != "consent" || ans.Results[8].Reason != "no_consent" {
				t.Errorf("results: %d, [7] %+v, [9007] %+v", len(ans.Results), ans.Results[7], ans.Results[9007])
			}
		})
	}
}
