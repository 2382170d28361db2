package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"optinproxy/admin"
	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// BenchmarkCheckRedis: the list check through the HTTP API on a private
// redis-server holding 100,000 subjects with a newsletter consent: one
// POST /api/v1/check of 10,000 addresses per iteration, half of them
// stored, half not. Reports addresses per second.
//
//	go test -run '^$' -bench CheckRedis -benchtime 20x ./admin/
func BenchmarkCheckRedis(b *testing.B) {
	const stored = 100_000
	s := newAPI(b, teststore.Redis(b, redistest.Start(b)))
	for start := 0; start < stored; start += 1000 {
		changes := make([]optin.Change, 0, 1000)
		for i := start; i < start+1000; i++ {
			a, err := optin.ParseAddress(fmt.Sprintf("subject%d@example.com", i))
			if err != nil {
				b.Fatal(err)
			}
			ch, err := s.ledger.GrantChange(a, "newsletter", optin.ConsentChange{Source: "form"})
			if err != nil {
				b.Fatal(err)
			}
			changes = append(changes, ch)
		}
		if _, err := s.ledger.Apply(b.Context(), changes); err != nil {
			b.Fatal(err)
		}
	}
	emails := make([]string, admin.MaxCheck)
	for i := range emails {
		if i%2 == 0 {
			emails[i] = fmt.Sprintf("subject%d@example.com", (i*7919)%stored)
		} else {
			emails[i] = fmt.Sprintf("stranger%d@example.com", i)
		}
	}
	body, _ := json.Marshal(map[string]any{"purpose": "newsletter", "emails": emails})
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		req, _ := http.NewRequest("POST", s.url+"/api/v1/check", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var ans struct {
			Results []struct{ Decision string }
		}
		err = json.NewDecoder(resp.Body).Decode(&ans)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(ans.Results) != admin.MaxCheck || ans.Results[0].Decision != "allow" || ans.Results[1].Decision != "block" {
			b.Fatalf("check: %d %v", resp.StatusCode, err)
		}
	}
	b.ReportMetric(float64(b.N*admin.MaxCheck)/time.Since(start).Seconds(), "addrs/s")
}
