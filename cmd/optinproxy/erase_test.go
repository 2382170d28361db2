package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"optinproxy/internal/teststore"
	"optinproxy/optin"
)

// TestEraseCommand: erase, as a user types it, against a running server
// on each store: schedule, cancel, cancel none, erase now, what is left
// shown, a grant and an import row refused, the erased suppression lifted, granted again.
func TestEraseCommand(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			s := serveOn(t, store, dir)
			cli := cliOf(t, dir, s)
			mustOut(t, cli("consent", "grant", "Gone@Example.com", "newsletter", "--ip", "192.0.2.1"), "granted")
			later := time.Now().Add(72 * time.Hour).UTC().Format("2006-01-02")
			mustOut(t, cli("erase", "gone@example.com", "--at", later), "erasure scheduled for "+later+"T00:00:00Z")
			mustOut(t, cli("erase", "--cancel", "gone@example.com"), "gone@example.com: cancelled")
			failsWith(t, cli("erase", "gone@example.com", "--cancel"), 1, "not_found (HTTP 404)")
			mustOut(t, cli("erase", "gone@example.com"), "gone@example.com: erased")
			mustOut(t, cli("erase", "gone@example.com"), "erased already")
			failsWith(t, cli("consent", "grant", "gone@example.com", "newsletter"), 1, "erased (HTTP 409)")
			// What the erasure left shows: the history, unreadable.
			shown := mustOut(t, cli("consent", "show", "gone@example.com"), "gone@example.com (erased: its history is kept, but can no longer be read)")
			if !strings.Contains(shown, "subject.erased") || !strings.Contains(shown, "(erased)") || !strings.Contains(shown, "suppressed: erased since") {
				t.Errorf("consent show of the erased subject:\n%s", shown)
			}
			os.WriteFile(filepath.Join(dir, "in.csv"), []byte("email,purpose,status,basis,source\nGONE@example.com,newsletter,granted,consent,import\n"), 0o600)
			if r := cli("import", "in.csv"); r.code != 1 || !strings.Contains(r.stdout, "in.csv:2: erased") || strings.Contains(r.stdout, "gone@") {
				t.Errorf("importing the erased address: %d %s %s", r.code, r.stdout, r.stderr)
			}
			if r := cli("suppress", "list"); strings.Contains(r.stdout, "gone@") {
				t.Errorf("suppress list names the erased address: %s", r.stdout)
			}
			mustOut(t, cli("verify"), "every chain is intact")
			mustOut(t, cli("suppress", "remove", "gone@example.com", "--reason", "erased"), "removed [erased]")
			mustOut(t, cli("consent", "grant", "gone@example.com", "newsletter"), "granted")

			failsWith(t, cli("erase"), 2, "want EMAIL")
			failsWith(t, cli("erase", "x@example.com", "--at", "soon"), 2, "--at")
			failsWith(t, cli("erase", "x@example.com", "--at", "2020-01-01"), 2, "--at 2020-01-01T00:00:00Z is in the past; to erase now, leave --at out")
			failsWith(t, cli("erase", "x@example.com", "--at", later, "--cancel"), 2, "--cancel")
			for _, line := range buffered(s.logs) {
				if strings.Contains(strings.ToLower(fmt.Sprint(line)), "gone@example.com") {
					t.Errorf("the server logged the address: %v", line)
				}
			}
		})
	}
}

// buffered returns the log lines the tail holds now, without waiting.
func buffered(l *logTail) []map[string]any {
	var out []map[string]any
	for {
		select {
		case m, ok := <-l.lines:
			if !ok {
				return out
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

// TestSweepErasures: the server's sweeper carries out a scheduled
// erasure once it is due, not before, and counts it (a fake clock: the
// sweep runs every minute).
func TestSweepErasures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := teststore.File(t, filepath.Join(t.TempDir(), "optinproxy.db"))
		ledger, err := optin.NewLedger(optin.LedgerOptions{Store: store, Purposes: optin.Purposes{
			"newsletter": {Name: "newsletter", Basis: optin.BasisConsent, Category: optin.CategoryMarketing, Unsubscribe: true}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		a, _ := optin.ParseAddress("later@example.com")
		if _, err := ledger.Erase(ctx, a, optin.ErasureRequest{At: time.Now().Add(90 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		swept := prometheus.NewCounter(prometheus.CounterOpts{Name: "swept"})
		done := make(chan struct{})
		go func() {
			sweepErasures(ctx, store, ledger, false, swept, slog.New(slog.DiscardHandler))
			close(done)
		}()
		time.Sleep(sweepEvery + time.Second) // one sweep: not due yet
		synctest.Wait()
		if v, err := store.Subject(ctx, a, 0); err != nil || v.Erased || testutil.ToFloat64(swept) != 0 {
			t.Fatalf("after one sweep: %+v, %v, swept %v; want not erased yet", v, err, testutil.ToFloat64(swept))
		}
		time.Sleep(sweepEvery) // the next: due
		synctest.Wait()
		if v, err := store.Subject(ctx, a, 0); err != nil || !v.Erased || testutil.ToFloat64(swept) != 1 {
			t.Errorf("after the next sweep: %+v, %v, swept %v; want erased, 1", v, err, testutil.ToFloat64(swept))
		}
		cancel()
		<-done
	})
}
