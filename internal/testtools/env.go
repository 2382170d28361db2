package testtools

import (
	"os"
	"strings"
)

// Environ is the test process's environment without the variables whose
// names start with prefix, so that a program a test starts sees only the
// settings the test gives it, not a developer's own.
func Environ(without string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, without) {
			env = append(env, kv)
		}
	}
	return env
}
