package admin_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"optinproxy/admin"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// loadOpenAPI reads openapi.json as an OpenAPI 3 document and validates
// it (references resolve, schemas are well-formed, every operation has
// responses), as a client generator would.
func loadOpenAPI(t *testing.T) (*openapi3.T, []byte) {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json does not load as OpenAPI 3: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	return doc, raw
}

// TestOpenAPIDocument: the document is valid OpenAPI 3, is served byte for
// byte as it is in the repository, describes the bearer tokens and their
// scopes, and gives each route the scope the API enforces, its
// authentication errors, an answer with a body, and the error shape for
// every error.
func TestOpenAPIDocument(t *testing.T) {
	doc, raw := loadOpenAPI(t)

	s := newAPI(t, teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db")))
	resp, err := http.Get(s.url + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(served, raw) {
		t.Errorf("GET /api/v1/openapi.json: %d %q, %d bytes; want 200 application/json and the %d bytes of admin/openapi.json",
			resp.StatusCode, resp.Header.Get("Content-Type"), len(served), len(raw))
	}

	scheme := doc.Components.SecuritySchemes["bearer"]
	if scheme == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" {
		t.Fatal("no http bearer security scheme named bearer")
	}
	for _, scope := range []string{admin.ScopeRead, admin.ScopeWrite, admin.ScopeErase} {
		if !strings.Contains(scheme.Value.Description, "`"+scope+"`") {
			t.Errorf("the bearer scheme's description does not explain the scope `%s`", scope)
		}
	}

	for route, scope := range admin.RouteScopes() {
		method, path, _ := strings.Cut(route, " ")
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s: not in the document", route)
			continue
		}
		op := item.GetOperation(method)
		if op.Security == nil || len(*op.Security) != 1 || !slices.Equal((*op.Security)[0]["bearer"], []string{scope}) {
			t.Errorf("%s: security %v, want bearer with the scope %s", route, op.Security, scope)
		}
		if op.Summary == "" {
			t.Errorf("%s: no summary", route)
		}
		ok := false
		for code, r := range op.Responses.Map() {
			if strings.HasPrefix(code, "2") {
				ok = ok || len(r.Value.Content) > 0
				continue
			}
			mt := r.Value.Content.Get("application/json")
			if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
				t.Errorf("%s: the %s answer is not the error shape", route, code)
			}
		}
		if !ok {
			t.Errorf("%s: no 2xx answer with a body", route)
		}
		for _, code := range []string{"401", "403"} {
			if op.Responses.Value(code) == nil {
				t.Errorf("%s: no %s answer", route, code)
			}
		}
	}
}

// testOutbox serves the outbox routes from the store's delivery records,
// as the dispatcher does; a replay answers the record it finds.
type testOutbox struct{ store optin.Store }

func (o testOutbox) Deliveries(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error) {
	return o.store.Deliveries(ctx, q)
}

func (o testOutbox) Replay(ctx context.Context, id string) (optin.OutboxDelivery, error) {
	target, event, ok := strings.Cut(id, ".")
	if !ok {
		return optin.OutboxDelivery{}, optin.ErrNotFound
	}
	return o.store.Delivery(ctx, target, event)
}

// TestOpenAPIAnswersMatch: real requests to every route, on a server with
// its optional parts configured, and their real answers (successes and
// errors) are valid against the operation the document gives them:
// request bodies, parameters, status codes and JSON answers alike. So a
// client generated from the document can read what the API says.
func TestOpenAPIAnswersMatch(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	store := teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
	now := time.Now().UTC().Truncate(time.Second)
	dead := optin.OutboxDelivery{Target: "hook-1a2b3c4d", EventID: "01jd2k3m4n5p6q7r8s9t0v1w2x", EventType: optin.EventConsentWithdrawn,
		Pos: "1", SubjectID: "s", Status: optin.DeliveryDead, Attempts: 3, Created: now, LastAt: now, LastError: "HTTP 503", DoneAt: now}
	if err := store.SaveDeliveries(context.Background(), dead.Target, []optin.OutboxDelivery{dead}, ""); err != nil {
		t.Fatal(err)
	}
	s := newAPIWith(t, store, func(o *admin.Options) {
		o.Outbox = testOutbox{store}
		o.MailchimpSync = func(context.Context) (any, error) {
			return map[string]int{"members": 2, "granted": 1, "withdrawn": 1}, nil
		}
		o.PortalLink = func(optin.Address) (string, time.Time) {
			return "https://optin.example/p/TOKEN", now.Add(24 * time.Hour)
		}
		o.Processing = admin.Processing{Controller: admin.Controller{Name: "Shop BV"}}
		o.PolicyVersion = "2026-02"
	})
	soon := now.Add(48 * time.Hour).Format(time.RFC3339)
	since := now.Add(-time.Hour).Format(time.RFC3339)
	until := now.Add(time.Hour).Format(time.RFC3339)
	calls := []struct {
		token, method, route, path, body string
		want                             int
	}{
		{adminToken, "PUT", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/jan%40example.com/consents/newsletter",
			`{"basis": "consent", "source": "form", "evidence": {"ip": "192.0.2.7", "user_agent": "Firefox", "text": "Yes", "campaign": "spring"}, "occurred_at": "` + since + `"}`, 200},
		{adminToken, "PUT", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/piet%40example.com/consents/events", "", 200},
		{adminToken, "PUT", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/jan%40example.com/consents/promo", "", 404},
		{adminToken, "PUT", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/jan%40example.com/consents/newsletter", `{"basis": 3}`, 400},
		{readToken, "PUT", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/jan%40example.com/consents/newsletter", "", 403},
		{"", "GET", "/api/v1/subjects/{email}", "/api/v1/subjects/jan%40example.com", "", 401},
		{readToken, "GET", "/api/v1/subjects/{email}", "/api/v1/subjects/jan%40example.com", "", 200},
		{readToken, "GET", "/api/v1/subjects/{email}", "/api/v1/subjects/nobody%40example.com", "", 404},
		{readToken, "GET", "/api/v1/subjects/{email}/export", "/api/v1/subjects/jan%40example.com/export?format=json", "", 200},
		{adminToken, "POST", "/api/v1/subjects/{email}/portal-link", "/api/v1/subjects/jan%40example.com/portal-link", "", 200},
		{readToken, "GET", "/api/v1/events", "/api/v1/events?subject=jan%40example.com&limit=10", "", 200},
		{readToken, "GET", "/api/v1/events", "/api/v1/events?limit=x", "", 400},
		{readToken, "GET", "/api/v1/verify", "/api/v1/verify", "", 200},
		{adminToken, "POST", "/api/v1/suppressions", "/api/v1/suppressions", `{"email": "bounce@example.com", "reason": "hard_bounce"}`, 201},
		{adminToken, "POST", "/api/v1/suppressions", "/api/v1/suppressions", `{"email": "bounce@example.com", "reason": "spam"}`, 400},
		{readToken, "GET", "/api/v1/suppressions", "/api/v1/suppressions?limit=5", "", 200},
		{adminToken, "DELETE", "/api/v1/suppressions/{email}", "/api/v1/suppressions/bounce%40example.com?reason=hard_bounce", "", 200},
		{adminToken, "POST", "/api/v1/imports", "/api/v1/imports?file=list.csv",
			"email,purpose,status,basis,source,granted_at,policy_version,ip\nkees@example.com,newsletter,granted,consent,import,2026-01-02,2026-01,192.0.2.8\nbad,newsletter,granted,consent,import,,,\n", 200},
		{readToken, "GET", "/api/v1/reports/no-proof", "/api/v1/reports/no-proof", "", 200},
		{readToken, "GET", "/api/v1/reports/no-basis", "/api/v1/reports/no-basis?since=" + since + "&until=" + until, "", 200},
		{readToken, "GET", "/api/v1/reports/expiring", "/api/v1/reports/expiring?days=800", "", 200},
		{readToken, "GET", "/api/v1/reports/outdated-policy", "/api/v1/reports/outdated-policy", "", 200},
		{readToken, "GET", "/api/v1/reports/processing", "/api/v1/reports/processing?format=json", "", 200},
		{readToken, "GET", "/api/v1/reports/affected", "/api/v1/reports/affected?since=" + since + "&until=" + until, "", 200},
		{readToken, "GET", "/api/v1/reports/affected", "/api/v1/reports/affected", "", 400},
		{readToken, "POST", "/api/v1/check", "/api/v1/check", `{"purpose": "newsletter", "emails": ["jan@example.com", "info@example.com", "not an address"]}`, 200},
		{readToken, "GET", "/api/v1/outbox/{status}", "/api/v1/outbox/dead", "", 200},
		{readToken, "GET", "/api/v1/outbox/{status}", "/api/v1/outbox/lost", "", 404},
		{adminToken, "POST", "/api/v1/outbox/dead/{id}/replay", "/api/v1/outbox/dead/" + dead.ID() + "/replay", "", 200},
		{adminToken, "POST", "/api/v1/outbox/dead/{id}/replay", "/api/v1/outbox/dead/hook-0.none/replay", "", 404},
		{adminToken, "POST", "/api/v1/sync/mailchimp", "/api/v1/sync/mailchimp", "", 200},
		{adminToken, "DELETE", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/jan%40example.com/consents/newsletter", `{"source": "unsubscribe"}`, 200},
		{adminToken, "POST", "/api/v1/subjects/{email}/erasure", "/api/v1/subjects/piet%40example.com/erasure", `{"at": "` + soon + `"}`, 202},
		{adminToken, "DELETE", "/api/v1/subjects/{email}/erasure", "/api/v1/subjects/piet%40example.com/erasure", "", 200},
		{adminToken, "DELETE", "/api/v1/subjects/{email}/erasure", "/api/v1/subjects/piet%40example.com/erasure", "", 404},
		{adminToken, "POST", "/api/v1/subjects/{email}/erasure", "/api/v1/subjects/jan%40example.com/erasure", "", 200},
		{adminToken, "PUT", "/api/v1/subjects/{email}/consents/{purpose}", "/api/v1/subjects/jan%40example.com/consents/newsletter", "", 409},
		{adminToken, "POST", "/api/v1/suppressions", "/api/v1/suppressions", `{"email": "` + strings.Repeat("a", 4096) + `@example.com"}`, 413},
		{"", "GET", "/api/v1/openapi.json", "/api/v1/openapi.json", "", 200},
	}
	checked := map[string]bool{}
	for _, c := range calls {
		name := c.method + " " + c.path
		route := c.method + " " + c.route
		item := doc.Paths.Value(c.route)
		if item == nil || item.GetOperation(c.method) == nil {
			t.Errorf("%s: %s is not in the document", name, route)
			continue
		}
		checked[route] = true
		req, err := http.NewRequest(c.method, s.url+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
			if strings.HasSuffix(c.route, "/imports") {
				req.Header.Set("Content-Type", "text/csv")
			}
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		input := &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams(c.route, req.URL.Path),
			Route:      &routers.Route{Spec: doc, Path: c.route, PathItem: item, Method: c.method, Operation: item.GetOperation(c.method)},
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true},
		}
		// A request the test means to be bad need not fit the document;
		// the others must, or the document refuses what the API takes.
		if c.want < 400 {
			if err := openapi3filter.ValidateRequest(context.Background(), input); err != nil {
				t.Errorf("%s: the request does not fit the document: %v", name, err)
			}
			req.Body = io.NopCloser(strings.NewReader(c.body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d: %.300s", name, resp.StatusCode, c.want, body)
			continue
		}
		err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(body)), Options: input.Options,
		})
		if err != nil {
			var me openapi3.MultiError
			if errors.As(err, &me) {
				err = me
			}
			t.Errorf("%s: the %d answer does not fit the document: %v\n%.500s", name, resp.StatusCode, err, body)
		}
	}
	for _, route := range append(admin.Routes(), "GET /api/v1/openapi.json") {
		if !checked[route] {
			t.Errorf("%s: no call checks its answers", route)
		}
	}
}

// pathParams reads the {name} parts of a route template from a path.
func pathParams(template, path string) map[string]string {
	out := map[string]string{}
	tp, pp := strings.Split(template, "/"), strings.Split(path, "/")
	for i, part := range tp {
		if i < len(pp) && strings.HasPrefix(part, "{") {
			out[strings.Trim(part, "{}")] = pp[i]
		}
	}
	return out
}
