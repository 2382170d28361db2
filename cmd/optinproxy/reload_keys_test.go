package main

import (
	"slices"
	"testing"

	"optinproxy/config"
)

// changedKeys names each changed key as the file writes it; a reloadable
// key taken over is no change, and a secret read from a file is named by
// its file key.
func TestChangedKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *config.Config)
		want []string
	}{
		{"nothing", func(c *config.Config) {}, nil},
		{"a listen address", func(c *config.Config) { c.SMTP.Listen = "127.0.0.1:2600" }, []string{"smtp.listen"}},
		{"a nested key", func(c *config.Config) { c.Store.Redis.Sentinel.Master = "m" }, []string{"store.redis.sentinel.master"}},
		{"a list, as a whole", func(c *config.Config) { c.SMTP.TrustedNetworks = []string{"10.0.0.0/8"} }, []string{"smtp.trusted_networks"}},
		{"a secret from its file", func(c *config.Config) { c.Upstream.Password = "new" }, []string{"upstream.password_file"}},
		{"two keys, sorted", func(c *config.Config) { c.Policy.Mode = "monitor"; c.HTTP.PublicURL = "https://x.example/" },
			[]string{"http.public_url", "policy.mode"}},
		{"reloadable keys only", func(c *config.Config) {
			c.SMTP.Users = []config.User{{Username: "sales"}}
			c.Purposes = map[string]config.Purpose{}
			c.Policy.DefaultPurpose = "transactional"
			c.Policy.RoleAddresses.Add = []string{"webteam"}
			c.Unsubscribe.Templates = map[string]config.FooterTemplate{"nl": {Text: "x {{unsubscribe_url}}"}}
			c.Unsubscribe.Footer = false
			c.Webhooks.Outbound = []config.Outbound{{URL: "http://127.0.0.1:1/"}}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running, next := config.Default(), config.Default()
			tc.edit(next)
			candidate := *running
			takeReloadable(&candidate, next)
			if got := changedKeys(&candidate, next); !slices.Equal(got, tc.want) {
				t.Errorf("changed %q, want %q", got, tc.want)
			}
		})
	}
}
