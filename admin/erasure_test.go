package admin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"optinproxy/admin"
	"optinproxy/optin"
)

// erasureReply is the answer of the erasure routes.
type erasureReply struct {
	Email   string       `json:"email"`
	Status  string       `json:"status"`
	At      *time.Time   `json:"at"`
	Applied bool         `json:"applied"`
	Event   *optin.Event `json:"event"`
}

// erasedSubject is GET .../subjects/{email} of an erased subject.
type erasedSubject struct {
	Consents     []optin.Consent `json:"consents"`
	Suppressions []struct {
		Reason string `json:"reason"`
	} `json:"suppressions"`
	Events []struct {
		Type    string `json:"type"`
		Subject string `json:"subject"`
		Erased  bool   `json:"erased"`
	} `json:"events"`
	Erased    bool       `json:"erased"`
	ErasureAt *time.Time `json:"erasure_at"`
}

// TestErasure: POST .../erasure erases at once (200) or schedules (202),
// DELETE cancels (404 when none); the erase scope is needed; an erased
// subject shows only its erased state, its grants answer 409 "erased",
// its import rows are bad rows "erased", and lifting its erased
// suppression (erase scope) lets it be granted again.
func TestErasure(t *testing.T) {
	eachStore(t, func(t *testing.T, s *apiServer) {
		path := "/api/v1/subjects/" + "Erase.Me%40Example.com"
		if code, raw := s.call(t, adminToken, "PUT", path+"/consents/newsletter", `{"evidence": {"ip": "192.0.2.9"}}`, nil); code != 200 {
			t.Fatalf("grant: %d %s", code, raw)
		}
		if code, raw := s.call(t, readToken, "POST", path+"/erasure", "", nil); code != 403 || errorCode(t, raw) != "forbidden" {
			t.Errorf("erasure with a read token: %d %s; want 403", code, raw)
		}

		// Scheduled, moved, cancelled.
		at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		var ans erasureReply
		code, raw := s.call(t, adminToken, "POST", path+"/erasure", fmt.Sprintf(`{"at": %q}`, at.Format(time.RFC3339)), &ans)
		if code != 202 || ans.Status != "scheduled" || ans.At == nil || !ans.At.Equal(at) || !ans.Applied || ans.Email != "erase.me@example.com" {
			t.Fatalf("scheduling: %d %s", code, raw)
		}
		var subj erasedSubject
		s.call(t, readToken, "GET", path, "", &subj)
		if subj.Erased || subj.ErasureAt == nil || !subj.ErasureAt.Equal(at) || len(subj.Consents) != 1 {
			t.Errorf("the subject with an erasure scheduled: %+v", subj)
		}
		if code, raw := s.call(t, adminToken, "DELETE", path+"/erasure", "", &ans); code != 200 || ans.Status != "cancelled" {
			t.Errorf("cancelling: %d %s", code, raw)
		}
		if code, raw := s.call(t, adminToken, "DELETE", path+"/erasure", "", nil); code != 404 || errorCode(t, raw) != "not_found" {
			t.Errorf("cancelling none: %d %s; want 404", code, raw)
		}
		if code, raw := s.call(t, adminToken, "POST", path+"/erasure", `{"at": "tomorrow"}`, nil); code != 400 {
			t.Errorf("a bad time: %d %s; want 400", code, raw)
		}

		// At once.
		code, raw = s.call(t, adminToken, "POST", path+"/erasure", "", &ans)
		if code != 200 || ans.Status != "erased" || !ans.Applied || ans.Event == nil || ans.Event.Type != optin.EventSubjectErased {
			t.Fatalf("erasing: %d %s", code, raw)
		}
		if code, raw := s.call(t, adminToken, "POST", path+"/erasure", `{"at": "2020-01-01T00:00:00Z"}`, &ans); code != 200 || ans.Status != "erased" || ans.Applied {
			t.Errorf("erasing again (a past time is now): %d %s; want 200, erased, not applied", code, raw)
		}
		subj = erasedSubject{}
		if code, raw := s.call(t, readToken, "GET", path, "", &subj); code != 200 || !subj.Erased || len(subj.Consents) != 0 ||
			len(subj.Suppressions) != 1 || subj.Suppressions[0].Reason != "erased" || len(subj.Events) == 0 || strings.Contains(raw, "192.0.2.9") {
			t.Errorf("the erased subject: %d %s", code, raw)
		}
		for _, e := range subj.Events {
			if !e.Erased || e.Subject != "" {
				t.Errorf("an event of the erased subject reads: %+v", e)
			}
		}
		if code, raw := s.call(t, adminToken, "PUT", path+"/consents/newsletter", "", nil); code != 409 || errorCode(t, raw) != "erased" {
			t.Errorf("granting the erased address: %d %s; want 409 erased", code, raw)
		}
		var imp struct {
			Applied, Bad int
			BadRows      []struct {
				Line  int
				Error string
			} `json:"bad_rows"`
		}
		csv := "email,purpose,status,basis,source\nother@example.com,newsletter,granted,consent,import\nERASE.ME@example.com,newsletter,granted,consent,import\n"
		if code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", csv, &imp); code != 200 || imp.Applied != 1 || imp.Bad != 1 ||
			len(imp.BadRows) != 1 || imp.BadRows[0].Line != 3 || !strings.HasPrefix(imp.BadRows[0].Error, "erased") || strings.Contains(raw, "erase.me") {
			t.Errorf("importing the erased address: %d %s; want line 3 bad, erased, without the address", code, raw)
		}
		var list struct {
			Suppressions []struct{ Email, Reason string }
		}
		s.call(t, readToken, "GET", "/api/v1/suppressions", "", &list)
		if len(list.Suppressions) != 0 {
			t.Errorf("the suppressions listing names the erased address: %+v", list.Suppressions)
		}

		// The person comes back.
		if code, raw := s.call(t, adminToken, "DELETE", "/api/v1/suppressions/erase.me@example.com", "", nil); code != 404 {
			t.Errorf("lifting every reason but erased: %d %s; want 404 (nothing else to lift)", code, raw)
		}
		if code, raw := s.call(t, adminToken, "DELETE", "/api/v1/suppressions/erase.me@example.com?reason=erased", "", nil); code != 200 {
			t.Fatalf("lifting the erased suppression: %d %s", code, raw)
		}
		if code, raw := s.call(t, adminToken, "PUT", path+"/consents/newsletter", `{"evidence": {"ip": "192.0.2.10"}}`, nil); code != 200 {
			t.Errorf("granting after coming back: %d %s", code, raw)
		}
		subj = erasedSubject{}
		s.call(t, readToken, "GET", path, "", &subj)
		if subj.Erased || len(subj.Consents) != 1 || subj.Consents[0].Evidence == nil || subj.Consents[0].Evidence.IP != "192.0.2.10" {
			t.Errorf("after coming back: %+v", subj)
		}
	})
}

// TestLiftErasedNeedsEraseScope: a token without the erase scope cannot
// lift the erased suppression.
func TestLiftErasedNeedsEraseScope(t *testing.T) {
	s := newAPIWith(t, backends[0].open(t), func(o *admin.Options) {
		o.Tokens = append(o.Tokens, admin.Token{Name: "crm", SHA256: admin.HashToken("crm-token"), Scopes: []string{"read", "write"}})
	})
	if code, raw := s.call(t, adminToken, "POST", "/api/v1/subjects/gone%40example.com/erasure", "", nil); code != 200 {
		t.Fatalf("erasing: %d %s", code, raw)
	}
	if code, raw := s.call(t, "crm-token", "DELETE", "/api/v1/suppressions/gone@example.com?reason=erased", "", nil); code != 403 || errorCode(t, raw) != "forbidden" {
		t.Errorf("lifting the erased suppression with a write token: %d %s; want 403", code, raw)
	}
	if code, raw := s.call(t, "crm-token", "POST", "/api/v1/subjects/gone%40example.com/erasure", "", nil); code != 403 {
		t.Errorf("erasing with a write token: %d %s; want 403", code, raw)
	}
}
