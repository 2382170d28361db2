package redisstore_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"optinproxy/internal/redistest"
	"optinproxy/internal/testtools"
	"optinproxy/optin/redisstore"
)

// TestClientLogIsJSON: when Redis cannot be reached, go-redis's own log
// lines arrive as JSON warnings, with the URL's password left out.
func TestClientLogIsJSON(t *testing.T) {
	var out testtools.LogBuffer
	redisstore.SetLogger(slog.New(slog.NewJSONHandler(&out, nil)))
	t.Cleanup(func() { redisstore.SetLogger(slog.Default()) })
	srv := redistest.Start(t)
	srv.Stop()
	url := strings.Replace(srv.URL(), "redis://", "redis://user:hunter2@", 1) + "?dial_timeout=200ms"
	c, err := redisstore.NewClient(url, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("a stopped Redis answered")
	}
	text := out.String()
	if !strings.Contains(text, "failed to dial") {
		t.Fatalf("go-redis logged nothing of the failed dial here:\n%s", text)
	}
	for line := range strings.Lines(text) {
		var m struct{ Level, Msg, Detail string }
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.Level != "WARN" || m.Msg != "redis client" {
			t.Errorf("not a JSON warning: %q", line)
		}
		if strings.Contains(line, "hunter2") {
			t.Errorf("the password is in the log: %q", line)
		}
	}
}
