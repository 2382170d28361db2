package admin

import (
	"os"
	"strings"
	"testing"
)

// The OpenAPI document is read by people who have only the repository
// or the running server: it points at no internal specification.
func TestOpenAPIStandsAlone(t *testing.T) {
	doc, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"SPEC", "../shared"} {
		if strings.Contains(string(doc), bad) {
			t.Errorf("openapi.json mentions %q", bad)
		}
	}
}
