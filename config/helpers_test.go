package config

import (
	"errors"
	"optinproxy/internal/testcert"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadYAML writes text to a config.yaml in a fresh directory and loads it.
func loadYAML(t *testing.T, text string, env ...string) (*Config, *Errors) {
	t.Helper()
	return loadPath(t, writeFile(t, t.TempDir(), "config.yaml", text), env...)
}

func loadPath(t *testing.T, path string, env ...string) (*Config, *Errors) {
	t.Helper()
	cfg, err := Load(path, env)
	if err == nil {
		if cfg == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
		return cfg, nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load error is %T, want *Errors: %v", err, err)
	}
	if cfg != nil {
		t.Fatal("Load returned a config with an error")
	}
	return nil, errs
}

// mustLoad fails the test on any problem.
func mustLoad(t *testing.T, text string, env ...string) *Config {
	t.Helper()
	cfg, errs := loadYAML(t, text, env...)
	if errs != nil {
		t.Fatalf("unexpected problems:\n%v", errs)
	}
	return cfg
}

// findProblem returns the problem for key, failing the test when there is
// none or it is not at line (line -1: any line).
func findProblem(t *testing.T, errs *Errors, key string, line int) Problem {
	t.Helper()
	if errs == nil {
		t.Fatalf("no problems, want one for %s", key)
	}
	for _, p := range errs.Problems {
		if p.Key == key && (line < 0 || p.Line == line) {
			return p
		}
	}
	t.Fatalf("no problem for %s at line %d in:\n%v", key, line, errs)
	return Problem{}
}

var (
	hashOnce sync.Once
	hash     string
)

// testHash is a real bcrypt hash, made once at the cheapest cost.
func testHash(t *testing.T) string {
	t.Helper()
	hashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		hash = string(h)
	})
	return hash
}

// writeKeyPair writes a self-signed certificate and its key into dir.
func writeKeyPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	return testcert.New(t, "relay.test").WriteFiles(t, dir)
}

// lines joins its arguments as the lines of a file, so that tests can
// count lines by position.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
