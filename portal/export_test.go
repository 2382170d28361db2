package portal_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"optinproxy/internal/export"
)

// The download holds everything stored, in each format, as an
// attachment; each parses back.
func TestDownload(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		link := e.link(e.jan)
		events := len(e.view(e.jan).Events)
		get := func(format string) (*http.Response, string) {
			resp, body := e.get(link + "/export?format=" + format)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d\n%s", format, resp.StatusCode, body)
			}
			if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="optinproxy-export-`+e.jan.Hash()+"."+format) {
				t.Errorf("%s: Content-Disposition %q", format, cd)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: cacheable", format)
			}
			return resp, body
		}

		_, body := get("json")
		var ex export.Export
		if err := json.Unmarshal([]byte(body), &ex); err != nil {
			t.Fatalf("json: %v", err)
		}
		if ex.Email != "jan@example.com" || len(ex.Consents) != 1 || ex.Consents[0].Evidence == nil ||
			ex.Consents[0].Evidence.IP != "192.0.2.7" || len(ex.Events) != events {
			t.Errorf("json export %+v, want jan's record with its evidence and %d events", ex, events)
		}

		_, body = get("csv")
		cr := csv.NewReader(strings.NewReader(body))
		cr.FieldsPerRecord = -1 // a table per section
		rows, err := cr.ReadAll()
		if err != nil {
			t.Fatalf("csv: %v", err)
		}
		sections := map[string]int{}
		for _, r := range rows[1:] {
			sections[r[0]]++
		}
		// Each section has its header row (first cell "section"), then
		// its rows.
		if rows[1][1] != "jan@example.com" || sections["section"] != 3 || sections["consent"] != 1 || sections["event"] != events {
			t.Errorf("csv sections %v, subject row %q", sections, rows[1])
		}

		_, body = get("xlsx")
		f, err := excelize.OpenReader(bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatalf("xlsx: %v", err)
		}
		defer f.Close()
		if got := f.GetSheetList(); strings.Join(got, ",") != "Subject,Consents,Suppressions,Events" {
			t.Errorf("sheets %v", got)
		}
		if v, _ := f.GetCellValue("Subject", "A2"); v != "jan@example.com" {
			t.Errorf("Subject!A2 = %q", v)
		}
		if evRows, _ := f.GetRows("Events"); len(evRows) != events+1 {
			t.Errorf("%d event rows, want %d and the header", len(evRows), events)
		}

		resp, body := e.get(link + "/export?format=pdf")
		wantStatus(t, "pdf", resp, body, http.StatusBadRequest)
		if n := e.counted("export"); n != 3 {
			t.Errorf("exports counted: %v", n)
		}
	})
}
