package mailchimptest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func call(t *testing.T, s *Server, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth("anyone", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestServer(t *testing.T) {
	s := New(t, Options{APIKey: "k-us1"})
	s.AddMember("L1", Member{EmailAddress: "a@example.com", Status: "subscribed"})
	s.AddMember("L1", Member{EmailAddress: "b@example.com", Status: "subscribed"})
	hash := SubscriberHash("c@example.com")

	if code, p := call(t, s, "GET", "/3.0/lists/L1/members", "wrong", ""); code != 401 || p["title"] != "API Key Invalid" {
		t.Errorf("wrong key: %d %v", code, p)
	}
	if code, p := call(t, s, "GET", "/3.0/lists/L1/members?count=1&offset=1", "k-us1", ""); code != 200 || p["total_items"] != 2.0 ||
		len(p["members"].([]any)) != 1 || p["members"].([]any)[0].(map[string]any)["email_address"] != "b@example.com" {
		t.Errorf("page: %d %v", code, p)
	}
	if code, _ := call(t, s, "PATCH", "/3.0/lists/L1/members/"+hash, "k-us1", `{"status":"unsubscribed"}`); code != 404 {
		t.Errorf("PATCH of a non-member: %d", code)
	}
	if code, _ := call(t, s, "PUT", "/3.0/lists/L1/members/"+hash, "k-us1", `{"email_address":"c@example.com"}`); code != 400 {
		t.Errorf("PUT without status_if_new: %d", code)
	}
	if code, p := call(t, s, "PUT", "/3.0/lists/L1/members/"+hash, "k-us1", `{"email_address":"c@example.com","status_if_new":"unsubscribed"}`); code != 200 || p["status"] != "unsubscribed" {
		t.Errorf("PUT upsert: %d %v", code, p)
	}
	if code, _ := call(t, s, "POST", "/3.0/lists/L1/members/"+hash+"/actions/delete-permanent", "k-us1", ""); code != 204 {
		t.Errorf("delete-permanent: %d", code)
	}
	if _, ok := s.Member("L1", "c@example.com"); ok {
		t.Error("deleted member still there")
	}
	s.Fail429(1, 1500*1e6) // 1.5s: rounded up
	req, _ := http.NewRequest("GET", s.URL+"/3.0/lists/L1/members", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("Fail429: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := len(s.Calls()); n != 7 {
		t.Errorf("%d calls recorded, want 7", n)
	}
}
