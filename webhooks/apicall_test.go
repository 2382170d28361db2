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
		{"999999999999", maxRetryAfter, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
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

func TestNewMailchimpClient(t *testing.T) {
	c, err := NewMailchimpClient(MailchimpClientOptions{APIKey: "0123abcd-us6"})
	if err != nil || c.base != "https://us6.api.mailchimp.com/3.0" || cap(c.api.sem) != MaxAPIConns {
		t.Errorf("key -us6: %+v, %v", c, err)
	}
	c, err = NewMailchimpClient(MailchimpClientOptions{APIKey: "k", BaseURL: "http://127.0.0.1:9/", MaxConns: 3})
	if err != nil || c.base != "http://127.0.0.1:9/3.0" || cap(c.api.sem) != 3 {
		t.Errorf("base URL: %+v, %v", c, err)
	}
	for _, opts := range []MailchimpClientOptions{
		{},                        // no key
		{APIKey: "0123abcd"},      // no data centre
		{APIKey: "0123-us6/../x"}, // not a data centre
		{APIKey: "k-us6", MaxConns: 11},
		{APIKey: "k-us6", BaseURL: "ftp://example.com"},
	} {
		if _, err := NewMailchimpClient(opts); err == nil {
			t.Errorf("%+v accepted", opts)
		}
	}
}
