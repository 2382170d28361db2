package admin_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// formulaStarts are the first characters a spreadsheet reads as the start
// of a formula (OWASP's CSV injection list).
const formulaStarts = "=+-@\t\r"

// TestExportCSVNeutralisesFormulas: an address may start with = + or -,
// and a spreadsheet that opens the CSV export would run it as a formula.
// Every such cell leaves with a leading single quote; read back with
// encoding/csv no cell starts a formula, and the XLSX export, whose cells
// are typed as text, keeps the address as it is.
func TestExportCSVNeutralisesFormulas(t *testing.T) {
	s := newAPI(t, backends[0].open(t))
	for _, addr := range []string{"=1+2@example.com", "+31612345678@example.com", "-2+3@example.com"} {
		if code, raw := s.call(t, adminToken, "PUT", "/api/v1/subjects/"+url.PathEscape(addr)+"/consents/newsletter",
			`{"evidence": {"text": "=HYPERLINK(\"http://example.com\")"}}`, nil); code != 200 {
			t.Fatalf("grant %s: %d %s", addr, code, raw)
		}
		code, raw := s.call(t, readToken, "GET", "/api/v1/subjects/"+url.PathEscape(addr)+"/export?format=csv", "", nil)
		if code != 200 {
			t.Fatalf("export %s: %d %s", addr, code, raw)
		}
		cr := csv.NewReader(strings.NewReader(raw))
		cr.FieldsPerRecord = -1
		rows, err := cr.ReadAll()
		if err != nil {
			t.Fatalf("export %s is not CSV: %v", addr, err)
		}
		for i, row := range rows {
			for j, cell := range row {
				if cell != "" && strings.ContainsRune(formulaStarts, rune(cell[0])) {
					t.Errorf("%s: row %d cell %d starts a formula: %q", addr, i+1, j+1, cell)
				}
			}
		}
		if len(rows) < 2 || len(rows[1]) < 2 || rows[1][1] != "'"+addr {
			t.Errorf("%s: subject row %q, want the address behind a single quote", addr, rows[1])
		}

		req, _ := http.NewRequest("GET", s.url+"/api/v1/subjects/"+url.PathEscape(addr)+"/export?format=xlsx", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		f, err := excelize.OpenReader(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("xlsx does not open: %v", err)
		}
		got, _ := f.GetCellValue("Subject", "A2")
		formula, _ := f.GetCellFormula("Subject", "A2")
		if got != addr || formula != "" {
			t.Errorf("xlsx subject cell %q (formula %q), want the address as text", got, formula)
		}
	}
}

// TestImportTakesFormulaLikeValues: values a spreadsheet would read as
// formulas are ordinary input to the import: such addresses are stored,
// and such evidence is kept as given.
func TestImportTakesFormulaLikeValues(t *testing.T) {
	s := newAPI(t, backends[0].open(t))
	body := "email,purpose,status,basis,source,granted_at,policy_version,ip\n" +
		"=1+2@example.com,newsletter,granted,consent,import,2026-01-10,=v1,192.0.2.1\n" +
		"+31612345678@example.com,newsletter,granted,consent,import,2026-01-10,+v2,192.0.2.2\n" +
		"-2+3@example.com,newsletter,granted,consent,import,2026-01-10,-3,192.0.2.3\n" +
		"'=1+2@example.com,newsletter,granted,consent,import,2026-01-10,@v4,192.0.2.4\n" +
		"a@example.com,newsletter,granted,consent,import,2026-01-10,\"\r=v5\",192.0.2.5\n"
	var ans struct{ Rows, Applied, Bad int }
	if code, raw := s.call(t, adminToken, "POST", "/api/v1/imports", body, &ans); code != 200 || ans.Rows != 5 || ans.Applied != 5 || ans.Bad != 0 {
		t.Fatalf("import: %d %s", code, raw)
	}
	var subj subjectAnswer
	if code, raw := s.call(t, readToken, "GET", "/api/v1/subjects/"+url.PathEscape("=1+2@example.com"), "", &subj); code != 200 ||
		len(subj.Consents) != 1 || subj.Consents[0].Evidence == nil || subj.Consents[0].Evidence.PolicyVersion != "=v1" {
		t.Errorf("imported =1+2@example.com: %d %s", code, raw)
	}
}
