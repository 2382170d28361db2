package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: whatever the file holds, Load returns a config or an *Errors
// with at least one problem, and never panics.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"smtp:\n  listen: 127.0.0.1:2525\n  lisen: x\n",
		"smtp: {max_recipients: abc, users: [{username: a}]}\n",
		"purposes:\n  a: {basis: consent, category: marketing, retention: 30d}\npolicy: {default_purpose: a}\n",
		"x-a: &a {basis: consent}\npurposes: {b: {<<: *a, category: legal}}\n",
		"a: &a [*a]\n",
		"smtp: [\n",
		"- 1\n- 2\n",
		"smtp: {trusted_networks: []}\nupstream: {url: \"file:///x\"}\n",
		"admin: {tokens: [{name: a, token_file: /dev/null, scopes: [read]}]}\n",
		"---\n---\n",
		"? [a]\n: b\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, []string{"OPTINPROXY_PURPOSES_NEWSLETTER_RETENTION=10d"})
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			_ = cfg.Warnings()
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Problems) == 0 || cfg != nil {
			t.Fatalf("Load returned %v, %T %v", cfg, err, err)
		}
		_ = errs.Error()
	})
}
