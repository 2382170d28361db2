// Package export is everything stored about one subject (the rights of access
// and portability): its consent records, suppressions and whole event
// history, as JSON, CSV or XLSX. The admin API and the personal portal
// both serve it, so a subject gets from the portal exactly what an
// administrator gets from the API. Of the project it imports optin only.
package export

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"optinproxy/optin"
)

// Format is how an export is encoded.
type Format string

const (
	JSON Format = "json"
	CSV  Format = "csv"
	XLSX Format = "xlsx"
)

// Formats lists the formats in the order pages and usage texts name them.
var Formats = []Format{JSON, CSV, XLSX}

// ErrFormat means a format name is none of Formats.
var ErrFormat = errors.New("format must be json, csv or xlsx")

// ParseFormat reads a ?format= value; "" is JSON. Errors are ErrFormat.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case "":
		return JSON, nil
	case JSON, CSV, XLSX:
		return f, nil
	}
	return "", ErrFormat
}

// Reader is what Collect reads; optin.Store is one.
type Reader interface {
	Subject(ctx context.Context, a optin.Address, recent int) (*optin.SubjectView, error)
	Events(ctx context.Context, q optin.EventQuery) (optin.EventPage, error)
}

// Export is everything stored about one subject. Its JSON is the admin
// API's export answer.
type Export struct {
	Email        string          `json:"email"`
	Consents     []optin.Consent `json:"consents"`
	Suppressions []Suppression   `json:"suppressions"`
	Events       []optin.Event   `json:"events"`
	ExportedAt   time.Time       `json:"exported_at"`
}

// Suppression is one suppression of the subject.
type Suppression struct {
	Reason    optin.SuppressionReason `json:"reason"`
	CreatedAt time.Time               `json:"created_at"`
}

// Collect reads the subject and pages through all of its events. Errors
// are the store's: optin.ErrNotFound when nothing is stored.
func Collect(ctx context.Context, r Reader, a optin.Address, now time.Time) (*Export, error) {
	v, err := r.Subject(ctx, a, 0)
	if err != nil {
		return nil, err
	}
	ex := &Export{Email: v.Address.String(), Consents: v.Consents, ExportedAt: now.UTC(),
		Suppressions: make([]Suppression, 0, len(v.Suppressions)), Events: []optin.Event{}}
	if ex.Consents == nil {
		ex.Consents = []optin.Consent{}
	}
	for _, s := range v.Suppressions {
		ex.Suppressions = append(ex.Suppressions, Suppression{Reason: s.Reason, CreatedAt: s.CreatedAt})
	}
	q := optin.EventQuery{Subject: a, Limit: optin.MaxPageSize}
	for {
		page, err := r.Events(ctx, q)
		if err != nil {
			return nil, err
		}
		ex.Events = append(ex.Events, page.Events...)
		if page.NextCursor == "" {
			return ex, nil
		}
		q.Cursor = page.NextCursor
	}
}

// Filename names the download: the address's short hash, never the
// address, so that it does not land in download lists and logs.
func (ex *Export) Filename(f Format) string {
	a, err := optin.ParseAddress(ex.Email)
	if err != nil {
		return "optinproxy-export." + string(f)
	}
	return "optinproxy-export-" + a.Hash() + "." + string(f)
}

// Encode returns ex in format f.
func (ex *Export) Encode(f Format) ([]byte, error) {
	var b bytes.Buffer
	switch f {
	case JSON:
		// As internal/httpjson writes every answer of the API.
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			return nil, err
		}
		// Details and evidence hold JSON stored HTML-escaped; a reader
		// of the download wants <id@host>, not \u003cid@host\u003e.
		return unescapeHTML(b.Bytes()), nil
	case CSV:
		cw := csv.NewWriter(&b)
		for _, row := range ex.rows() {
			cw.Write(csvRow(row))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil, err
		}
	case XLSX:
		if err := ex.writeWorkbook(&b); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w, not %q", ErrFormat, f)
	}
	return b.Bytes(), nil
}

var contentTypes = map[Format]string{
	JSON: "application/json",
	CSV:  "text/csv; charset=utf-8",
	XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

// Serve answers ex in format f as a download. It encodes first, so an
// error means nothing was written and the caller answers it; a failed
// write after that is the client's hang-up and is not reported.
func (ex *Export) Serve(w http.ResponseWriter, f Format) error {
	b, err := ex.Encode(f)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[f])
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Content-Disposition", `attachment; filename="`+ex.Filename(f)+`"`)
	// Personal data: never kept by a cache on the way.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}
