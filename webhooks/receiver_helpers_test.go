package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"optinproxy/internal/httpjson"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

var testPurposes = optin.Purposes{
	"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true},
	"offers":     {Name: "offers", Basis: optin.BasisLegitimateInterests, Category: optin.CategoryMarketing, Unsubscribe: true},
	"orders":     {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional},
}

const (
	testList          = "a6b5da1054"
	testMailchimpPath = "/webhooks/mailchimp/s3cr3t-path-segment-0123456789"
	testMandrillKey   = "mandrill-webhook-key-0123456789"
	testCRMSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// fixture is a receiver on a real HTTP server over a real store.
type fixture struct {
	t      *testing.T
	store  optin.Store
	ledger *optin.Ledger
	marks  Marks
	rc     *Receiver
	reg    *prometheus.Registry
	logs   *testtools.LogBuffer
	url    string
}

// fileStore opens the embedded store in the test's folder.
func fileStore(t *testing.T) optin.Store {
	return teststore.File(t, filepath.Join(t.TempDir(), "ledger.db"))
}

// storeOpeners open each real store: the embedded one, and Redis on a
// redis-server of the test's own.
var storeOpeners = map[string]func(t *testing.T) optin.Store{
	"file":  fileStore,
	"redis": func(t *testing.T) optin.Store { return teststore.Redis(t, redistest.Start(t)) },
}

// newFixture serves a receiver on store, with every sender configured;
// mod changes the options before the receiver is made.
func newFixture(t *testing.T, store optin.Store, mod func(*ReceiverOptions)) *fixture {
	t.Helper()
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: testPurposes, PolicyVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, ledger: ledger, marks: store, reg: prometheus.NewRegistry(), logs: &testtools.LogBuffer{}}
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	f.url = srv.URL
	opts := ReceiverOptions{
		Ledger:    ledger,
		Marks:     f.marks,
		Mailchimp: MailchimpOptions{Secret: strings.TrimPrefix(testMailchimpPath, "/webhooks/mailchimp/"), Lists: map[string]string{testList: "newsletter"}},
		Mandrill:  MandrillOptions{Key: testMandrillKey, URL: srv.URL + "/webhooks/mandrill"},
		CRM:       CRMOptions{Secret: testCRMSecret},
		Metrics:   f.reg,
		Logger:    slog.New(slog.NewJSONHandler(f.logs, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	f.rc, err = NewReceiver(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = f.rc.Handler()
	return f
}

// failingMarks fails every call, as a store that cannot be reached.
type failingMarks struct{}

func (failingMarks) Seen(context.Context, string) (bool, error) {
	return false, optin.ErrUnavailable
}
func (failingMarks) Mark(context.Context, string, time.Time) error {
	return optin.ErrUnavailable
}

// reply is an answer read whole.
type reply struct {
	status int
	body   string
}

func (f *fixture) do(method, path, contentType string, body []byte, header http.Header) reply {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return reply{resp.StatusCode, string(b)}
}

const formType = "application/x-www-form-urlencoded"

// sample reads a testdata file, surrounding space trimmed.
func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// eventCount is how many events the store holds in all.
func (f *fixture) eventCount() int {
	f.t.Helper()
	n := 0
	q := optin.EventQuery{Limit: optin.MaxPageSize}
	for range 100 {
		page, err := f.store.Events(context.Background(), q)
		if err != nil {
			f.t.Fatal(err)
		}
		n += len(page.Events)
		if page.NextCursor == "" {
			return n
		}
		q.Cursor = page.NextCursor
	}
	f.t.Fatal("more than 100 pages of events")
	return 0
}

// subject is what the store holds about s, nil when nothing.
func (f *fixture) subject(s string) *optin.SubjectView {
	f.t.Helper()
	a, err := optin.ParseAddress(s)
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := f.store.Subject(context.Background(), a, optin.MaxPageSize)
	if errors.Is(err, optin.ErrNotFound) {
		return nil
	} else if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// consent is s's record for purpose, nil when none.
func (f *fixture) consent(s, purpose string) *optin.Consent {
	f.t.Helper()
	v := f.subject(s)
	if v == nil {
		return nil
	}
	for i := range v.Consents {
		if v.Consents[i].Purpose == purpose {
			return &v.Consents[i]
		}
	}
	return nil
}

// suppressions lists s's suppression reasons.
func (f *fixture) suppressions(s string) []optin.SuppressionReason {
	f.t.Helper()
	v := f.subject(s)
	if v == nil {
		return nil
	}
	var out []optin.SuppressionReason
	for _, sup := range v.Suppressions {
		out = append(out, sup.Reason)
	}
	return out
}

// metric is the value of the counter or gauge name with labels.
func (f *fixture) metric(name string, labels map[string]string) float64 {
	f.t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			if matches(m, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

// errorMessage is the message of an error answer.
func errorMessage(t *testing.T, body string) string {
	t.Helper()
	var b httpjson.Error
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("error answer %q: %v", body, err)
	}
	return b.Error.Message
}

// errorCode is the code of an error answer.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var b httpjson.Error
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("error answer %q: %v", body, err)
	}
	return b.Error.Code
}
