// Package mailchimptest runs a local HTTP server that speaks the part of
// the Mailchimp Marketing API (v3) and of the Mailchimp Transactional
// (Mandrill) API that optinproxy uses: audience members paged, a member
// updated (PATCH, PUT), deleted for good, and an address added to
// Mandrill's rejection list. It checks the API keys, can be told to fail
// (429 with Retry-After, 500) or to be slow, and records every call and
// the most requests and connections it saw at once, for asserts. Only
// tests import it.
package mailchimptest

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure New.
type Options struct {
	// APIKey is the Marketing API key the server accepts (basic auth, any
	// user name); default "test-key-us1".
	APIKey string
	// MandrillKey is the Transactional API key it accepts (the "key"
	// field of the body); default "test-mandrill-key".
	MandrillKey string
	// Now stamps last_changed on updates; default time.Now.
	Now func() time.Time
}

// Server is the running server. Its methods are safe for concurrent use.
type Server struct {
	// URL is the Marketing API's base URL (paths start /3.0/), for the
	// client's base URL option.
	URL string
	// MandrillURL is the Transactional API's base URL (paths start
	// /rejects/).
	MandrillURL string

	opts   Options
	srv    *httptest.Server
	routes *http.ServeMux

	mu       sync.Mutex
	lists    map[string]*list
	calls    []Call
	rejects  []Reject
	fail429  int
	after    time.Duration
	fail500  int
	delay    time.Duration
	inFlight int
	maxReqs  int
	conns    int
	maxConns int
}

type list struct {
	order   []string // subscriber hashes, in the order added
	members map[string]*Member
}

// Member is an audience member as the API shows it (the fields optinproxy
// reads). An unknown time or IP is an empty string, as Mailchimp shows
// it.
type Member struct {
	ID                   string       `json:"id"`
	EmailAddress         string       `json:"email_address"`
	Status               string       `json:"status"`
	StatusIfNew          string       `json:"status_if_new,omitempty"`
	TimestampSignup      string       `json:"timestamp_signup"`
	IPSignup             string       `json:"ip_signup"`
	TimestampOpt         string       `json:"timestamp_opt"`
	IPOpt                string       `json:"ip_opt"`
	LastChanged          string       `json:"last_changed"`
	MarketingPermissions []Permission `json:"marketing_permissions,omitempty"`
	ListID               string       `json:"list_id"`
}

// Permission is one GDPR marketing permission of a member.
type Permission struct {
	ID      string `json:"marketing_permission_id"`
	Text    string `json:"text"`
	Enabled bool   `json:"enabled"`
}

// Call is one request the server got.
type Call struct {
	Method string
	Path   string
	Query  string
	Body   []byte
	// Status is what the server answered.
	Status int
}

// Reject is one address added to the rejection list.
type Reject struct {
	Email      string `json:"email"`
	Comment    string `json:"comment"`
	Subaccount string `json:"subaccount"`
}

// New starts a server on 127.0.0.1 and stops it when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.APIKey == "" {
		opts.APIKey = "test-key-us1"
	}
	if opts.MandrillKey == "" {
		opts.MandrillKey = "test-mandrill-key"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, lists: map[string]*list{}}
	s.routes = s.mux()
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = s.connState
	s.srv.Start()
	tb.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.MandrillURL = s.srv.URL + "/api/1.0"
	return s
}

// SubscriberHash is Mailchimp's member id: the lowercase hex MD5 of the
// lowercased address.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// AddMember adds (or replaces) a member of listID; its ID is computed
// from its address.
func (s *Server) AddMember(listID string, m Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(listID, m)
}

func (s *Server) addLocked(listID string, m Member) {
	l := s.lists[listID]
	if l == nil {
		l = &list{members: map[string]*Member{}}
		s.lists[listID] = l
	}
	m.ID = SubscriberHash(m.EmailAddress)
	m.ListID = listID
	if _, had := l.members[m.ID]; !had {
		l.order = append(l.order, m.ID)
	}
	l.members[m.ID] = &m
}

// Member returns the member of listID with that address.
func (s *Server) Member(listID, email string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lists[listID]; l != nil {
		if m := l.members[SubscriberHash(email)]; m != nil {
			return *m, true
		}
	}
	return Member{}, false
}

// Fail429 answers the next n requests with 429 and, when retryAfter is
// not 0, a Retry-After in whole seconds (rounded up).
func (s *Server) Fail429(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail429, s.after = n, retryAfter
}

// Fail500 answers the next n requests with 500.
func (s *Server) Fail500(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail500 = n
}

// SetDelay makes every request wait d before it is answered, so that
// concurrent requests overlap.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// MaxConcurrent is the most requests the server was handling at once.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxReqs
}

// MaxConns is the most connections that were open at once.
func (s *Server) MaxConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxConns
}

// Calls returns every request so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	copy(out, s.calls)
	return out
}

// Rejects returns the addresses added to the rejection list, oldest
// first.
func (s *Server) Rejects() []Reject {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Reject, len(s.rejects))
	copy(out, s.rejects)
	return out
}

func (s *Server) connState(_ net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns++
		s.maxConns = max(s.maxConns, s.conns)
	case http.StateClosed, http.StateHijacked:
		s.conns--
	}
}

// keyOK compares in constant time, as a real API would.
func keyOK(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
