package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optinproxy/admin"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// backends are the two stores every API test runs against.
var backends = []struct {
	name string
	open func(t *testing.T) optin.Store
}{
	{"file", func(t *testing.T) optin.Store { return teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")) }},
	{"redis", func(t *testing.T) optin.Store { return teststore.Redis(t, redistest.Start(t)) }},
}

// eachStore runs f against a server on each store.
func eachStore(t *testing.T, f func(t *testing.T, api *apiServer)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, newAPI(t, b.open(t))) })
	}
}

const (
	adminToken = "admin-secret-token"
	readToken  = "read-only-token"
)

// apiServer is the admin API on a real HTTP listener.
type apiServer struct {
	url    string
	ledger *optin.Ledger
	api    *admin.API
}

func newAPI(t testing.TB, store optin.Store) *apiServer {
	t.Helper()
	return newAPIWith(t, store, nil)
}

// newAPIWith is newAPI with options changed by adjust before New.
func newAPIWith(t testing.TB, store optin.Store, adjust func(*admin.Options)) *apiServer {
	t.Helper()
	ledger, err := optin.NewLedger(optin.LedgerOptions{
		Store: store,
		Purposes: optin.Purposes{
			"newsletter":    {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Retention: 730 * 24 * time.Hour, Unsubscribe: true},
			"events":        {Name: "events", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, DoubleOptIn: true},
			"transactional": {Name: "transactional", Basis: optin.BasisContract, Category: optin.CategoryTransactional},
		},
		PolicyVersion: "2026-01",
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := admin.Options{
		Ledger: ledger,
		Tokens: []admin.Token{
			{Name: "admin", SHA256: admin.HashToken(adminToken), Scopes: []string{"read", "write", "erase"}},
			{Name: "dashboard", SHA256: admin.HashToken(readToken), Scopes: []string{"read"}},
		},
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
		MaxBodyBytes: 4096,
	}
	if adjust != nil {
		adjust(&opts)
	}
	api, err := admin.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &apiServer{url: srv.URL, ledger: ledger, api: api}
}

// call makes a request and decodes a JSON answer into out (when not nil).
func (s *apiServer) call(t *testing.T, token, method, path, body string, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// errorCode reads the stable error shape.
func errorCode(t *testing.T, raw string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not the error shape: %s", raw)
	}
	return e.Error.Code
}
