package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"optinproxy/optin"
)

func TestUnescapeHTML(t *testing.T) {
	for in, want := range map[string]string{
		`{"message_id":"\u003cabc@example.com\u003e"}`: `{"message_id":"<abc@example.com>"}`,
		`{"a":"x \u0026 y","b":"\u003C"}`:              `{"a":"x & y","b":"<"}`,
		`{"a":"\\u003c"}`:                              `{"a":"\\u003c"}`,
		`{"a":"\\\u003e\"\u00e9"}`:                     `{"a":"\\>\"\u00e9"}`,
		`{"z":1,"a":1.50}`:                             `{"z":1,"a":1.50}`,
	} {
		got := unescapeHTML(json.RawMessage(in))
		if string(got) != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
		var a, b any
		if json.Unmarshal([]byte(in), &a) != nil || json.Unmarshal(got, &b) != nil {
			t.Errorf("%s: not JSON after unescaping: %s", in, got)
		}
	}
}

// A receipt's message id reads <id@host> in every format, not
// \u003cid@host\u003e as encoding/json stores it.
func TestExportShowsMessageIDs(t *testing.T) {
	details, err := json.Marshal(optin.ReceiptDetails{MessageID: "<lente.1@example.com>", Decision: "allow", Reason: "consent"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(details, []byte(`\u003c`)) {
		t.Fatalf("encoding/json no longer escapes <: %s", details)
	}
	ex := &Export{Email: "jan@example.com", ExportedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Consents: []optin.Consent{}, Suppressions: []Suppression{},
		Events: []optin.Event{{ID: "e1", Type: optin.EventMessageRelayed, Details: details}}}
	for _, f := range Formats {
		b, err := ex.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		var cell string
		switch f {
		case XLSX:
			wb, err := excelize.OpenReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			rows, _ := wb.GetRows("Events")
			cell = rows[1][5]
		case CSV:
			cr := csv.NewReader(bytes.NewReader(b))
			cr.FieldsPerRecord = -1 // a table per section
			rows, err := cr.ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			cell = rows[len(rows)-1][6]
		case JSON:
			cell = string(b)
			if !json.Valid(b) {
				t.Errorf("the JSON export is not JSON: %s", b)
			}
		}
		if !strings.Contains(cell, `"<lente.1@example.com>"`) || strings.Contains(cell, `\u003c`) {
			t.Errorf("%s: the details read %s, want the message id as <lente.1@example.com>", f, cell)
		}
	}
}
