package webhooks

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestExponentialBackoff(t *testing.T) {
	low := ExponentialBackoff(10*time.Second, time.Hour, func() float64 { return 0 })
	high := ExponentialBackoff(10*time.Second, time.Hour, func() float64 { return 0.999999 })
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 5 * time.Second, 10 * time.Second},
		{2, 10 * time.Second, 20 * time.Second},
		{4, 40 * time.Second, 80 * time.Second},
		{10, 30 * time.Minute, time.Hour},  // capped
		{100, 30 * time.Minute, time.Hour}, // no overflow
	} {
		if got := low(tt.attempt); got != tt.min {
			t.Errorf("low(%d) = %s, want %s", tt.attempt, got, tt.min)
		}
		if got := high(tt.attempt); got < tt.max-time.Second || got > tt.max {
			t.Errorf("high(%d) = %s, want about %s", tt.attempt, got, tt.max)
		}
	}
}

func TestFullJitter(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0.5, 50 * time.Millisecond},
		{1, 0.5, 100 * time.Millisecond},
		{3, 1, 800 * time.Millisecond},
		{5, 1, 2 * time.Second},  // capped at max
		{80, 1, 2 * time.Second}, // no overflow
		{3, 0, 0},                // full jitter reaches 0
	} {
		if got := fullJitter(100*time.Millisecond, 2*time.Second, tt.attempt, func() float64 { return tt.r }); got != tt.want {
			t.Errorf("fullJitter(%d, %v) = %s, want %s", tt.attempt, tt.r, got, tt.want)
		}
	}
	// The client's Backoff waits what Retry-After says for 429 and 503.
	b := jitterBackoff(func() float64 { return 0 })
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3"}}}
	if got := b(time.Millisecond, time.Second, 0, resp); got != 3*time.Second {
		t.Errorf("backoff with Retry-After = %s", got)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		status int
		value  string
		want   time.Duration
		ok     bool
	}{
		{429, "7", 7 * time.Second, true},
		{503, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{503, now.Add(-time.Hour).Format(http.TimeFormat), 0, true}, // past: now
		{429, "", 0, false},
		{429, "-1", 0, false},
		{429, "soon", 0, false},
		{429, "99999999999", 24 * time.Hour, true}, // absurd: capped
		{500, "7", 0, false},                       // only 429 and 503 name a wait
	} {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
		if tt.value != "" {
			resp.Header.Set("Retry-After", tt.value)
		}
		got, ok := retryAfterHeader(resp, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfterHeader(%d, %q) = %s, %v; want %s, %v", tt.status, tt.value, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassifyResponse(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		status int
		after  string
		retry  bool
		failed bool
		later  bool
	}{
		{200, "", false, false, false},
		{204, "", false, false, false},
		{301, "", false, true, false},
		{400, "", false, true, false},
		{404, "", false, true, false},
		{429, "", true, true, false},
		{429, "30", true, true, true},
		{500, "", true, true, false},
		{501, "", false, true, false},
		{502, "", true, true, false},
		{503, "30", true, true, true},
	} {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
		if tt.after != "" {
			resp.Header.Set("Retry-After", tt.after)
		}
		retry, err := classifyResponse(resp, now)
		var le *LaterError
		if retry != tt.retry || (err != nil) != tt.failed || errors.As(err, &le) != tt.later {
			t.Errorf("classifyResponse(%d, %q) = %v, %v", tt.status, tt.after, retry, err)
		}
	}
}

func TestParseID(t *testing.T) {
	target, ev, err := ParseID(DeliveryID("hook-0123abcd", "01hzabc"))
	if err != nil || target != "hook-0123abcd" || ev != "01hzabc" {
		t.Errorf("ParseID = %q, %q, %v", target, ev, err)
	}
	for _, id := range []string{"", "hook", "hook.", ".ev", "Hook.ev", "a b.ev"} {
		if _, _, err := ParseID(id); !errors.Is(err, ErrBadDeliveryID) {
			t.Errorf("ParseID(%q) = %v", id, err)
		}
	}
}
