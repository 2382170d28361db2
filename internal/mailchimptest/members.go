package mailchimptest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// statuses a member can be set to through the API.
var settable = map[string]bool{"subscribed": true, "unsubscribed": true, "cleaned": true, "pending": true, "transactional": true}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	count, offset := 10, 0
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problem(w, http.StatusBadRequest, "Invalid Resource", "count must be a positive integer")
			return
		}
		count = min(n, 1000) // the API's maximum
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problem(w, http.StatusBadRequest, "Invalid Resource", "offset must be a positive integer")
			return
		}
		offset = n
	}
	listID := r.PathValue("list")
	s.mu.Lock()
	l := s.lists[listID]
	members := []Member{}
	total := 0
	if l != nil {
		total = len(l.order)
		for i := offset; i < len(l.order) && len(members) < count; i++ {
			members = append(members, *l.members[l.order[i]])
		}
	}
	s.mu.Unlock()
	if l == nil {
		problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": members, "list_id": listID, "total_items": total})
}

func (s *Server) getMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	m := s.memberLocked(r)
	var out Member
	if m != nil {
		out = *m
	}
	s.mu.Unlock()
	if m == nil {
		notMember(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// memberUpdate is the body of PATCH and PUT.
type memberUpdate struct {
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
	StatusIfNew  string `json:"status_if_new"`
}

func readUpdate(w http.ResponseWriter, r *http.Request) (memberUpdate, bool) {
	var u memberUpdate
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		problem(w, http.StatusBadRequest, "JSON Parse Exception", "We encountered an unspecified JSON parsing error.")
		return u, false
	}
	for _, st := range []string{u.Status, u.StatusIfNew} {
		if st != "" && !settable[st] {
			problem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
			return u, false
		}
	}
	return u, true
}

func (s *Server) patchMember(w http.ResponseWriter, r *http.Request) {
	u, ok := readUpdate(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	m := s.memberLocked(r)
	var out Member
	if m != nil {
		if u.Status != "" {
			m.Status = u.Status
			m.LastChanged = s.stamp()
		}
		out = *m
	}
	s.mu.Unlock()
	if m == nil {
		notMember(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) putMember(w http.ResponseWriter, r *http.Request) {
	u, ok := readUpdate(w, r)
	if !ok {
		return
	}
	listID, hash := r.PathValue("list"), r.PathValue("hash")
	if u.EmailAddress == "" || SubscriberHash(u.EmailAddress) != hash {
		problem(w, http.StatusBadRequest, "Invalid Resource", "The email address does not match the subscriber hash.")
		return
	}
	out, err := s.upsert(r, listID, hash, u)
	if err != "" {
		problem(w, http.StatusBadRequest, "Invalid Resource", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// upsert applies a PUT; answers are written after the lock is released,
// since writing ends the request's bookkeeping, which takes it.
func (s *Server) upsert(r *http.Request, listID, hash string, u memberUpdate) (Member, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.memberLocked(r); m != nil {
		if u.Status != "" {
			m.Status = u.Status
			m.LastChanged = s.stamp()
		}
		return *m, ""
	}
	if u.StatusIfNew == "" && u.Status == "" {
		return Member{}, "The resource submitted could not be validated: status_if_new is required."
	}
	st := u.StatusIfNew
	if st == "" {
		st = u.Status
	}
	s.addLocked(listID, Member{EmailAddress: u.EmailAddress, Status: st, LastChanged: s.stamp()})
	return *s.lists[listID].members[hash], ""
}

func (s *Server) deletePermanent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	l := s.lists[r.PathValue("list")]
	hash := r.PathValue("hash")
	found := l != nil && l.members[hash] != nil
	if found {
		delete(l.members, hash)
		for i, h := range l.order {
			if h == hash {
				l.order = append(l.order[:i], l.order[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	if !found {
		notMember(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) memberLocked(r *http.Request) *Member {
	if l := s.lists[r.PathValue("list")]; l != nil {
		return l.members[r.PathValue("hash")]
	}
	return nil
}

func (s *Server) stamp() string { return s.opts.Now().UTC().Format(time.RFC3339) }

func notMember(w http.ResponseWriter) {
	problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
}

func (s *Server) rejectsAdd(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
		Reject
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		mandrillError(w, http.StatusInternalServerError, "ValidationError", "You must specify a key value")
		return
	}
	if !keyOK(req.Key, s.opts.MandrillKey) {
		mandrillError(w, http.StatusInternalServerError, "Invalid_Key", "Invalid API key")
		return
	}
	if req.Email == "" {
		mandrillError(w, http.StatusInternalServerError, "ValidationError", "Validation error: {\"email\":\"Please enter a value\"}")
		return
	}
	s.mu.Lock()
	s.rejects = append(s.rejects, req.Reject)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"email": req.Email, "added": true})
}
