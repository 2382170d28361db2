package webhooks

import (
	"testing"
	"time"
)

func TestParseAPIRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{"0", 0, true},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true}, // in the past: now
		{"999999999999", maxAPIWait, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseAPIRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseAPIRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRedactAddresses(t *testing.T) {
	in := `jan@example.com is already a list member. Use PUT to insert or update list members ("x.y+z@bücher.de").`
	want := `<address> is already a list member. Use PUT to insert or update list members ("<address>").`
	if got := redactAddresses(in); got != want {
		t.Errorf("redactAddresses = %q\nwant %q", got, want)
	}
}
