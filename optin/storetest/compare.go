package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"optinproxy/optin"
)

// checkChain checks that each event names the one before it, the first
// none.
func checkChain(tb testing.TB, events []optin.Event) {
	tb.Helper()
	checkChainFrom(tb, events, "")
}

// checkChainFrom checks a subject's history whose receipt chain starts
// after the receipt whose hash is receiptPrev (its pruned stretch): the
// main chain and the receipt chain each link every event to the one
// before of its own chain.
func checkChainFrom(tb testing.TB, events []optin.Event, receiptPrev string) {
	tb.Helper()
	prev := map[bool]string{false: "", true: receiptPrev}
	for i, e := range events {
		r := e.Type.IsReceipt()
		if e.Prev != prev[r] {
			tb.Errorf("event %d (%s %s): Prev %q, want the hash of the event before in its chain, %q", i, e.Type, e.ID, e.Prev, prev[r])
			return
		}
		if e.Hash == "" || e.Hash == prev[r] {
			tb.Errorf("event %d (%s %s): Hash %q", i, e.Type, e.ID, e.Hash)
			return
		}
		prev[r] = e.Hash
	}
}

// sameEvent compares an event read back with the one Apply returned.
func sameEvent(tb testing.TB, what string, got, want optin.Event) {
	tb.Helper()
	switch {
	case got.ID != want.ID, got.Type != want.Type, got.Subject != want.Subject, got.Purpose != want.Purpose,
		got.Actor != want.Actor, got.Prev != want.Prev, got.Hash != want.Hash, got.Erased != want.Erased,
		!got.Time.Equal(want.Time), !jsonEqual(got.Details, want.Details):
		tb.Errorf("%s:\n got %s\nwant %s", what, describe(got), describe(want))
	}
}

func sameEvents(tb testing.TB, what string, got, want []optin.Event) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Errorf("%s: %d events, want %d\n got %v\nwant %v", what, len(got), len(want), ids(got), ids(want))
		return
	}
	for i := range got {
		sameEvent(tb, fmt.Sprintf("%s: event %d", what, i), got[i], want[i])
	}
}

func describe(e optin.Event) string {
	return fmt.Sprintf("{%s %s %s %s purpose=%q actor=%q details=%s prev=%.8s hash=%.8s erased=%v}",
		e.ID, e.Time.Format(time.RFC3339Nano), e.Type, e.Subject, e.Purpose, e.Actor, e.Details, e.Prev, e.Hash, e.Erased)
}

func ids(events []optin.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func resultEvents(rs []optin.Result) []optin.Event {
	out := make([]optin.Event, len(rs))
	for i, r := range rs {
		out[i] = r.Event
	}
	return out
}

// jsonEqual reports whether two JSON texts (empty meaning none) hold the
// same value.
func jsonEqual(a, b []byte) bool {
	if len(bytes.TrimSpace(a)) == 0 || len(bytes.TrimSpace(b)) == 0 {
		return len(bytes.TrimSpace(a)) == len(bytes.TrimSpace(b))
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// sameRecord compares a stored consent record with the one wanted,
// evidence aside.
func sameRecord(tb testing.TB, what string, got, want *optin.Consent) {
	tb.Helper()
	switch {
	case got == nil && want == nil:
		return
	case got == nil || want == nil:
		tb.Errorf("%s: record %+v, want %+v", what, got, want)
	case got.Purpose != want.Purpose, got.Status != want.Status, got.Basis != want.Basis, got.Source != want.Source,
		got.EventID != want.EventID, !got.GrantedAt.Equal(want.GrantedAt), !got.UpdatedAt.Equal(want.UpdatedAt),
		!got.ExpiresAt.Equal(want.ExpiresAt), got.PolicyVersion != want.PolicyVersion, !got.NoticedAt.Equal(want.NoticedAt):
		tb.Errorf("%s:\n got %s\nwant %s", what, describeRecord(got), describeRecord(want))
	}
}

func describeRecord(c *optin.Consent) string {
	return fmt.Sprintf("{%s %s basis=%s source=%s granted=%s updated=%s expires=%s event=%s policy=%q noticed=%s}", c.Purpose, c.Status, c.Basis, c.Source,
		c.GrantedAt.Format(time.RFC3339Nano), c.UpdatedAt.Format(time.RFC3339Nano), c.ExpiresAt.Format(time.RFC3339Nano), c.EventID,
		c.PolicyVersion, c.NoticedAt.Format(time.RFC3339Nano))
}

// reasons returns suppression reasons sorted, for comparing as sets.
func reasons(rs []optin.SuppressionReason) []optin.SuppressionReason {
	out := append([]optin.SuppressionReason{}, rs...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sameReasons(got, want []optin.SuppressionReason) bool {
	g, w := reasons(got), reasons(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i] != w[i] {
			return false
		}
	}
	return true
}

// noPanic runs fn and turns a panic into a test error.
func noPanic(tb testing.TB, what string, fn func()) {
	tb.Helper()
	defer func() {
		if r := recover(); r != nil {
			tb.Errorf("%s panicked: %v", what, r)
		}
	}()
	fn()
}
