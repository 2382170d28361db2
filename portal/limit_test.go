package portal

import (
	"testing"
	"time"
)

// A window counts per key up to its limit, holds at most max keys, and
// starts afresh when it turns.
func TestWindow(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	w := &window{limit: 2, length: time.Hour, max: 2}
	for _, step := range []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", time.Minute, true},
		{"a", 2 * time.Minute, false},  // over its limit
		{"b", 3 * time.Minute, true},   // the second key
		{"c", 4 * time.Minute, false},  // a third key: full until the window turns
		{"b", 5 * time.Minute, true},   // known keys keep counting
		{"a", time.Hour, true},         // a new window
		{"c", time.Hour, true},         // with room again
		{"a", -time.Hour, true},        // a clock set back starts afresh
		{"a", -time.Hour + 1, true},    //
		{"a", -time.Hour + 2, false},   //
		{"a", 3 * time.Hour / 2, true}, // forward again: a new window
	} {
		if got := w.allow(step.key, start.Add(step.at)); got != step.want {
			t.Errorf("%s at %v: %v, want %v", step.key, step.at, got, step.want)
		}
	}
}

// Clients are counted by IPv4 address, or by the /64 of an IPv6 one.
func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":               "192.0.2.1",
		"::ffff:192.0.2.1":        "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":    "2001:db8:1:2::/64",
		"not an ip (a unix sock)": "not an ip (a unix sock)",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
