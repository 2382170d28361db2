package admin_test

import (
	"path/filepath"
	"testing"

	"optinproxy/internal/teststore"
)

// TestOutboxNotConfigured: without outbound targets or a Mailchimp key
// the routes say what is missing instead of a bare 404.
func TestOutboxNotConfigured(t *testing.T) {
	s := newAPI(t, teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")))
	for _, tc := range []struct{ method, path, token string }{
		{"GET", "/api/v1/outbox/dead", readToken},
		{"POST", "/api/v1/outbox/dead/hook-1.x/replay", adminToken},
		{"POST", "/api/v1/sync/mailchimp", adminToken},
	} {
		code, raw := s.call(t, tc.token, tc.method, tc.path, "", nil)
		if code != 409 || errorCode(t, raw) != "not_configured" {
			t.Errorf("%s %s: %d %s, want 409 not_configured", tc.method, tc.path, code, raw)
		}
	}
	if code, _ := s.call(t, readToken, "POST", "/api/v1/outbox/dead/hook-1.x/replay", "", nil); code != 403 {
		t.Errorf("replay with a read token: %d, want 403", code)
	}
}
