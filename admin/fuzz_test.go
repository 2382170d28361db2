package admin_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"optinproxy/internal/teststore"
)

// FuzzImportCSV: whatever the body, an import answers 200 with counts
// that add up, or 400 or 413 in the error shape; never a 500, never
// anything but JSON.
func FuzzImportCSV(f *testing.F) {
	for _, s := range []string{
		"email,purpose,status,basis,source\nanna@example.com,newsletter,granted,consent,import\n",
		"email,purpose,status,basis,source,granted_at,policy_version,ip\n=1+2@example.com,newsletter,granted,consent,import,2026-01-10,=v1,192.0.2.1\n",
		"email,purpose,status,basis,source\n-1@example.com,newsletter,withdrawn,consent,crm\n\"broken,quote\n",
		"\ufeffEMAIL,Purpose,STATUS,basis,source\n+x@example.com,events,pending,consent,import\n",
		"email,purpose\n",
		"",
		"\"",
	} {
		f.Add(s)
	}
	s := newAPIWith(f, teststore.File(f, filepath.Join(f.TempDir(), "optinproxy.db")), nil)
	f.Fuzz(func(t *testing.T, body string) {
		var ans struct {
			Rows, Applied, Ignored, Bad int
			Error                       *struct{ Code, Message string }
		}
		code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", body, nil)
		if err := json.Unmarshal([]byte(raw), &ans); err != nil {
			t.Fatalf("%d answer is not JSON: %v\n%s", code, err, raw)
		}
		switch code {
		case 200:
			if ans.Rows != ans.Applied+ans.Ignored+ans.Bad {
				t.Fatalf("counts do not add up: %s", raw)
			}
		case 400, 413:
			if ans.Error == nil || ans.Error.Code == "" || ans.Error.Message == "" {
				t.Fatalf("%d not in the error shape: %s", code, raw)
			}
		default:
			t.Fatalf("status %d: %s", code, raw)
		}
	})
}
