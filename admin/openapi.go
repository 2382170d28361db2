package admin

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's description, written by hand; a test checks that
// it names every route the API serves and nothing else.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}
