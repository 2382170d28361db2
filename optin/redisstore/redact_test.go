package redisstore

import "testing"

func TestRedactAddresses(t *testing.T) {
	got := redactAddresses(`dial redis://user:pw@db:6379/0 failed for jan@example.com; key "jan@example.com"`)
	if want := `dial [redacted] failed for [redacted]; key "[redacted]"`; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
