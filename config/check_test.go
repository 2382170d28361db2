package config

import (
	"errors"
	"slices"
	"testing"
)

// A Check given to Load reports at the line of the key it names, beside
// the problems Load finds itself, and sees the decoded configuration.
func TestLoadChecks(t *testing.T) {
	text := "smtp:\n  listen: nowhere\ndkim:\n  - domain: example.com\n    selector: s1\n    key_file: k.pem\n"
	path := writeFile(t, t.TempDir(), "config.yaml", text)
	var seen []string
	check := func(c *Config, invalid func(key, msg string)) {
		for i, d := range c.DKIM {
			seen = append(seen, d.KeyFile)
			invalid(index("dkim", i)+".key_file", "does not load")
		}
		invalid("dkim[7].key_file", "placed at no line") // a key never written
	}
	cfg, err := Load(path, nil, check)
	var errs *Errors
	if !errors.As(err, &errs) || cfg != nil {
		t.Fatalf("Load = %v, %v; want the problems", cfg, err)
	}
	findProblem(t, errs, "smtp.listen", 2)
	if p := findProblem(t, errs, "dkim[0].key_file", 6); p.Msg != "does not load" {
		t.Errorf("message %q", p.Msg)
	}
	findProblem(t, errs, "dkim[7].key_file", 3) // its nearest written parent
	if !slices.Equal(seen, []string{"k.pem"}) {
		t.Errorf("the check saw %q", seen)
	}

	// A check that finds nothing leaves Load's result alone.
	if _, err := Load(path, nil, func(*Config, func(string, string)) {}); err == nil {
		t.Error("the bad listen was lost")
	}
	fine := writeFile(t, t.TempDir(), "config.yaml", "dkim: []\n")
	if cfg, err := Load(fine, nil, func(*Config, func(string, string)) {}); err != nil || cfg == nil {
		t.Errorf("Load = %v, %v", cfg, err)
	}
}
