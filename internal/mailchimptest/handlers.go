package mailchimptest

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// maxBody caps request bodies, as the real APIs do.
const maxBody = 1 << 20

// statusWriter ends the request's bookkeeping (the call record, the
// in-flight count) before the status goes out, so that a client that has
// its answer sees its call recorded and no longer counted.
type statusWriter struct {
	http.ResponseWriter
	done func(status int)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.done != nil {
		w.done(code)
		w.done = nil
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.done != nil {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	s.mu.Lock()
	s.inFlight++
	s.maxReqs = max(s.maxReqs, s.inFlight)
	delay := s.delay
	fail := 0
	var after time.Duration
	switch {
	case s.fail429 > 0:
		s.fail429--
		fail, after = http.StatusTooManyRequests, s.after
	case s.fail500 > 0:
		s.fail500--
		fail = http.StatusInternalServerError
	}
	s.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w, done: func(status int) {
		s.mu.Lock()
		s.inFlight--
		s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, Status: status})
		s.mu.Unlock()
	}}
	defer func() {
		if sw.done != nil { // a handler that wrote nothing answers 200
			sw.WriteHeader(http.StatusOK)
		}
	}()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch {
	case fail == http.StatusTooManyRequests:
		if after > 0 {
			sw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
		}
		s.failure(sw, r, fail, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
	case fail != 0:
		s.failure(sw, r, fail, "Internal Server Error", "An unexpected internal error has occurred.")
	default:
		s.routes.ServeHTTP(sw, r)
	}
}

func (s *Server) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /3.0/lists/{list}/members", s.auth(s.listMembers))
	m.HandleFunc("GET /3.0/lists/{list}/members/{hash}", s.auth(s.getMember))
	m.HandleFunc("PATCH /3.0/lists/{list}/members/{hash}", s.auth(s.patchMember))
	m.HandleFunc("PUT /3.0/lists/{list}/members/{hash}", s.auth(s.putMember))
	m.HandleFunc("POST /3.0/lists/{list}/members/{hash}/actions/delete-permanent", s.auth(s.deletePermanent))
	m.HandleFunc("POST /api/1.0/rejects/add.json", s.rejectsAdd)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
	})
	return m
}

// failure answers as the API of the path would.
func (s *Server) failure(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	if len(r.URL.Path) >= 8 && r.URL.Path[:8] == "/api/1.0" {
		mandrillError(w, status, "GeneralError", detail)
		return
	}
	problem(w, status, title, detail)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, key, ok := r.BasicAuth()
		if !ok || !keyOK(key, s.opts.APIKey) {
			problem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
			return
		}
		h(w, r)
	}
}

// problem writes an RFC 7807 problem as the Marketing API does.
func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type":     "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":    title,
		"status":   status,
		"detail":   detail,
		"instance": "00000000-0000-0000-0000-000000000000",
	})
}

// mandrillError writes an error as the Transactional API does.
func mandrillError(w http.ResponseWriter, status int, name, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": "error", "code": -1, "name": name, "message": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
