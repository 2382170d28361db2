package main

import (
	"slices"
	"strings"
	"testing"

	"optinproxy/internal/redistest"
)

// stores are the stores the end-to-end tests run on, each as a subtest.
var stores = []string{"embedded", "redis"}

// serveOn starts the server in dir on store with env added: "redis" gets
// a private redis-server of its own, "embedded" keeps the default.
func serveOn(t *testing.T, store, dir string, env ...string) *server {
	t.Helper()
	if store == "redis" {
		env = append(slices.Clip(env), "OPTINPROXY_STORE_REDIS_URL="+redistest.Start(t).URL())
	}
	return startServe(t, dir, env...)
}

// mustOut fails the test unless the command succeeded and printed want;
// it returns what it printed.
func mustOut(t *testing.T, r result, want string) string {
	t.Helper()
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("exit %d, want %q in:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	return r.stdout
}

// failsWith reports an error unless the command exited with code and
// said want on standard error.
func failsWith(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, want %d with %q in:\n%s%s", r.code, code, want, r.stdout, r.stderr)
	}
}

// cliOf runs the CLI in dir against s, as a user in the server's folder
// would: the token comes from ./data/admin.token.
func cliOf(t *testing.T, dir string, s *server) func(args ...string) result {
	return func(args ...string) result {
		t.Helper()
		return runCmd(t, dir, "", []string{"OPTINPROXY_ADDR=" + s.httpAddr}, args...)
	}
}
