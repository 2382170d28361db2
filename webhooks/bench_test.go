package webhooks

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// BenchmarkCRMRedis measures inbound events applied to Redis per second:
// one signed consent.granted per request, each for its own subject, from
// concurrent clients on keep-alive connections, each acknowledged only
// after Redis has the change and the dedup mark.
func BenchmarkCRMRedis(b *testing.B) {
	store := teststore.Redis(b, redistest.Start(b))
	ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: testPurposes, PolicyVersion: "v1"})
	if err != nil {
		b.Fatal(err)
	}
	rc, err := NewReceiver(ReceiverOptions{Ledger: ledger, CRM: CRMOptions{Secret: testCRMSecret}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rc.Handler())
	defer srv.Close()
	const clients = 32
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq atomic.Int64

	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			body := fmt.Sprintf(`{"type":"consent.granted","email":"bench-%s-%d@example.com","purpose":"newsletter","evidence":{"ip":"192.0.2.1"}}`, run, n)
			id := "msg_" + run + "_" + strconv.FormatInt(n, 10)
			now := time.Now()
			sig, err := SignStandard(testCRMSecret, id, now, []byte(body))
			if err != nil {
				b.Error(err)
				return
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/crm", bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(HeaderID, id)
			req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
			req.Header.Set(HeaderSignature, sig)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body) // read to the end, so the connection is kept
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
