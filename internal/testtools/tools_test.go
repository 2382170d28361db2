package testtools

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNeedFindsInstalled: a program already on PATH is returned as is.
func TestNeedFindsInstalled(t *testing.T) {
	path := Need(t, "sh", "dash")
	if !filepath.IsAbs(path) {
		t.Errorf("Need(sh) = %q, want an absolute path", path)
	}
}

// TestNeedSwaks: swaks, which the SMTP tests drive, is there or gets
// installed, and runs.
func TestNeedSwaks(t *testing.T) {
	out, err := exec.Command(Need(t, "swaks", "swaks"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(strings.ToLower(string(out)), "swaks") {
		t.Fatalf("swaks --version: %v: %s", err, out)
	}
}

// TestLockFileExcludes: a second holder waits until the first lets go.
func TestLockFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		second, err := lockFile(path)
		if err != nil {
			t.Error(err)
			second = func() {}
		}
		got <- second
	}()
	select {
	case second := <-got:
		second()
		t.Fatal("second lock taken while the first was held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case second := <-got:
		second()
	case <-time.After(10 * time.Second):
		t.Fatal("second lock not taken after the first was released")
	}
}
