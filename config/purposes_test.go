package config

import (
	"strings"
	"testing"
	"time"
)

// TestPurposesMerge: a purposes block adds to the built-in purposes by
// name; an entry named like a built-in changes only the fields it sets;
// enabled: false removes a purpose, a built-in one too. The environment
// does the same.
func TestPurposesMerge(t *testing.T) {
	builtin := Default().Purposes
	yes := true
	tests := []struct {
		name, text string
		env        []string
		want       func(map[string]Purpose) // edits the built-ins into the wanted set
	}{{
		name: "a block naming only promotions keeps the built-ins",
		text: "purposes:\n  promotions: {basis: consent, category: marketing, description: Offers}\n",
		want: func(m map[string]Purpose) {
			m["promotions"] = Purpose{Basis: "consent", Category: "marketing", Description: "Offers"}
		},
	}, {
		name: "a built-in's name overrides its fields one by one",
		text: "purposes:\n  newsletter: {retention: 365d, double_opt_in: true}\n",
		want: func(m map[string]Purpose) {
			n := m["newsletter"]
			n.Retention, n.DoubleOptIn = Duration(365*day), true
			m["newsletter"] = n // basis, category and description stay
		},
	}, {
		name: "an empty string clears a built-in's field",
		text: "purposes:\n  newsletter: {description: \"\"}\n",
		want: func(m map[string]Purpose) {
			n := m["newsletter"]
			n.Description = ""
			m["newsletter"] = n
		},
	}, {
		name: "enabled: false removes a built-in",
		text: "purposes:\n  transactional: {enabled: false}\n",
		want: func(m map[string]Purpose) { delete(m, "transactional") },
	}, {
		name: "enabled: false removes the default purpose when another is named",
		text: "policy: {default_purpose: promotions}\npurposes:\n  newsletter: {enabled: false}\n  promotions: {basis: consent, category: marketing}\n",
		want: func(m map[string]Purpose) {
			delete(m, "newsletter")
			m["promotions"] = Purpose{Basis: "consent", Category: "marketing"}
		},
	}, {
		name: "enabled: false removes a purpose of the file, unvalidated",
		text: "purposes:\n  old: {basis: whim, enabled: false}\n",
		want: func(map[string]Purpose) {},
	}, {
		name: "enabled: true keeps it",
		text: "purposes:\n  transactional: {enabled: true}\n",
		want: func(m map[string]Purpose) {
			tr := m["transactional"]
			tr.Enabled = &yes
			m["transactional"] = tr
		},
	}, {
		name: "the environment removes a built-in",
		env:  []string{"OPTINPROXY_PURPOSES_TRANSACTIONAL_ENABLED=false"},
		want: func(m map[string]Purpose) { delete(m, "transactional") },
	}, {
		name: "the environment adds to the file's purposes and the built-ins",
		text: "purposes:\n  promotions: {basis: consent, category: marketing}\n",
		env:  []string{"OPTINPROXY_PURPOSES_ORDERS_BASIS=contract", "OPTINPROXY_PURPOSES_ORDERS_CATEGORY=transactional"},
		want: func(m map[string]Purpose) {
			m["promotions"] = Purpose{Basis: "consent", Category: "marketing"}
			m["orders"] = Purpose{Basis: "contract", Category: "transactional"}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Default().Purposes
			tt.want(want)
			eq(t, mustLoad(t, tt.text, tt.env...).Purposes, want)
		})
	}
	// Loading never changes the defaults themselves.
	eq(t, Default().Purposes, builtin)
	if builtin["newsletter"].Retention != Duration(730*24*time.Hour) {
		t.Fatal("the built-in newsletter changed")
	}
}

// TestDisabledPurposeNamed: a key naming a purpose that enabled: false
// removed is a problem at the key's line (or its default), saying where
// the purpose was disabled, and every such key is reported at once.
func TestDisabledPurposeNamed(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "mc.key", "0123456789abcdef-us6\n")
	_, errs := loadYAML(t, lines(
		"purposes:",          // 1
		"  newsletter:",      // 2
		"    enabled: false", // 3
		"  promotions: {basis: consent, category: marketing}", // 4
		"smtp:",               // 5
		"  users:",            // 6
		"    - username: crm", // 7
		"      password_hash: \""+testHash(t)+"\"", // 8
		"      default_purpose: newsletter",        // 9
		"      purposes: [promotions, newsletter]", // 10
		"webhooks:",                              // 11
		"  mailchimp:",                           // 12
		"    secret: abcdefghijklmnopqrstuvwxyz", // 13
		"    lists:",                             // 14
		"      abc123: newsletter",               // 15
		"  mailchimp_api: {api_key_file: "+key+", list_id: l1}", // 16: purpose defaults to newsletter
	))
	for _, want := range []struct {
		key  string
		line int
	}{
		{"policy.default_purpose", 0}, // the default, newsletter
		{"smtp.users[0].default_purpose", 9},
		{"smtp.users[0].purposes[1]", 10},
		{"webhooks.mailchimp.lists.abc123", 15},
		{"webhooks.mailchimp_api.purpose", 16},
	} {
		p := findProblem(t, errs, want.key, want.line)
		if !strings.Contains(p.Msg, `purpose "newsletter" is disabled by purposes.newsletter.enabled: false (line 3)`) {
			t.Errorf("%s: %q does not say where newsletter was disabled", want.key, p.Msg)
		}
	}

	// Disabled from the environment, the problem names the variable.
	_, errs = loadYAML(t, "", "OPTINPROXY_PURPOSES_NEWSLETTER_ENABLED=false")
	p := findProblem(t, errs, "policy.default_purpose", 0)
	if !strings.Contains(p.Msg, "enabled: false (OPTINPROXY_PURPOSES_NEWSLETTER_ENABLED)") {
		t.Errorf("%q does not name the variable", p.Msg)
	}

	// A name never configured keeps its own words.
	_, errs = loadYAML(t, "policy: {default_purpose: nope}\n")
	if p := findProblem(t, errs, "policy.default_purpose", 1); !strings.Contains(p.Msg, `no purpose "nope" is configured (have: newsletter, transactional)`) {
		t.Errorf("got %q", p.Msg)
	}
}
