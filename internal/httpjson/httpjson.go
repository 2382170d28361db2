// Package httpjson writes the JSON answers of optinproxy's HTTP APIs (the
// admin API and the webhooks) in one shape, so that a client reads every
// error alike: {"error": {"code": "...", "message": "..."}}.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Error is the body of every error answer.
type Error struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Write answers v as indented JSON with status. Answers are never cached:
// they hold personal data or the state of the moment.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError answers an error: code is a stable word a program can
// compare, msg a sentence for a person.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	var b Error
	b.Error.Code, b.Error.Message = code, msg
	Write(w, status, b)
}
