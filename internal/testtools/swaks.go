package testtools

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// Swaks runs the swaks SMTP client with args (installing it when
// missing) and returns its exit code and its transcript, standard output
// and error together. A run is bounded to 30 seconds; one that takes
// longer, or swaks that cannot be started, fails the test.
func Swaks(t testing.TB, args ...string) (int, string) {
	t.Helper()
	bin := Need(t, "swaks", "swaks")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("swaks did not finish in 30s:\n%s", out.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("swaks: %v", err)
	}
	return code, out.String()
}
