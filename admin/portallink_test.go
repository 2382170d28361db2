package admin_test

import (
	"testing"
	"time"

	"optinproxy/admin"
	"optinproxy/optin"
)

// POST .../portal-link answers the link the portal makes, for a subject
// the ledger knows; 404 for one it does not, 403 without the write
// scope, 409 on a server that makes no links.
func TestPortalLink(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			expires := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			var asked []optin.Address
			s := newAPIWith(t, b.open(t), func(o *admin.Options) {
				o.PortalLink = func(a optin.Address) (string, time.Time) {
					asked = append(asked, a)
					return "https://optin.example/p/token-of-" + a.String(), expires
				}
			})
			code, raw := s.call(t, adminToken, "POST", "/api/v1/subjects/jan%40example.com/portal-link", "", nil)
			if code != 404 || errorCode(t, raw) != "not_found" {
				t.Errorf("unknown subject: %d %s", code, raw)
			}
			if code, raw := s.call(t, adminToken, "PUT", "/api/v1/subjects/jan%40example.com/consents/newsletter", "", nil); code != 200 {
				t.Fatalf("grant: %d %s", code, raw)
			}
			var ans struct {
				URL       string    `json:"url"`
				ExpiresAt time.Time `json:"expires_at"`
			}
			code, raw = s.call(t, adminToken, "POST", "/api/v1/subjects/JAN%40Example.com/portal-link", "", &ans)
			if code != 200 || ans.URL != "https://optin.example/p/token-of-jan@example.com" || !ans.ExpiresAt.Equal(expires) {
				t.Errorf("link: %d %s", code, raw)
			}
			code, raw = s.call(t, readToken, "POST", "/api/v1/subjects/jan%40example.com/portal-link", "", nil)
			if code != 403 || errorCode(t, raw) != "forbidden" {
				t.Errorf("read-only token: %d %s", code, raw)
			}
			if len(asked) != 1 || asked[0].String() != "jan@example.com" {
				t.Errorf("links made for %v, want one for the known subject", asked)
			}
		})
	}
	s := newAPI(t, backends[0].open(t))
	code, raw := s.call(t, adminToken, "POST", "/api/v1/subjects/jan%40example.com/portal-link", "", nil)
	if code != 409 || errorCode(t, raw) != "not_configured" {
		t.Errorf("without a portal: %d %s", code, raw)
	}
}
