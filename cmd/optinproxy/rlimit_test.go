//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"syscall"
	"testing"
)

// ensureFileLimit raises a low soft limit to the hard one, quietly when
// that is enough, and warns with both numbers when it is not.
func TestEnsureFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Max < 1024 || orig.Max == math.MaxUint64 {
		t.Skipf("needs a finite hard limit of at least 1024 open files, have %d", orig.Max)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := syscall.Rlimit{Cur: 512, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	ensureFileLimit(600, log)
	var now syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	if now.Cur != orig.Max {
		t.Errorf("soft limit %d after ensureFileLimit, want the hard limit %d", now.Cur, orig.Max)
	}
	if bytes.Contains(buf.Bytes(), []byte(`"level":"WARN"`)) {
		t.Errorf("warned although the hard limit is enough:\n%s", buf.Bytes())
	}

	buf.Reset()
	ensureFileLimit(orig.Max+1, log)
	var line struct {
		Level         string
		Limit, Needed uint64
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Level != "WARN" || line.Limit != orig.Max || line.Needed != orig.Max+1 {
		t.Errorf("over the hard limit: %s, want a warning naming %d and %d", buf.Bytes(), orig.Max, orig.Max+1)
	}
}
