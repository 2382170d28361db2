package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// The purposes map: the file's entries are added to the built-in ones by
// the decode (decode.go), then dropDisabled removes those with
// enabled: false before validation, so that a key naming a removed
// purpose is a problem that says why.

var purposeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// dropDisabled removes the purposes whose enabled is false, remembering
// where each was disabled.
func (l *loader) dropDisabled(c *Config) {
	for name, p := range c.Purposes {
		if p.Enabled != nil && !*p.Enabled {
			delete(c.Purposes, name)
			l.disabled[name] = l.origins["purposes."+name+".enabled"]
		}
	}
}

// checkPurposeName adds a problem unless name is a configured purpose.
func (l *loader) checkPurposeName(key, name string, purposes map[string]Purpose) {
	if _, ok := purposes[name]; ok {
		return
	}
	if name == "" {
		l.invalid(key, "must name a purpose")
		return
	}
	if o, ok := l.disabled[name]; ok {
		l.invalid(key, fmt.Sprintf("purpose %q is disabled by purposes.%s.enabled: false (%s); name another purpose", name, name, o))
		return
	}
	l.invalid(key, fmt.Sprintf("no purpose %q is configured (have: %s)", name, strings.Join(slices.Sorted(maps.Keys(purposes)), ", ")))
}

func (l *loader) checkPurposes(purposes map[string]Purpose) {
	if len(purposes) == 0 {
		l.invalid("purposes", "no purpose is left: every one has enabled: false")
	}
	for _, name := range slices.Sorted(maps.Keys(purposes)) {
		p, key := purposes[name], "purposes."+name
		if !purposeNameRE.MatchString(name) {
			l.invalid(key, "a purpose name is lower-case letters, digits, '-' and '_', starting with a letter or digit")
		}
		if !oneOf(p.Basis, bases) {
			l.invalid(key+".basis", mustBeOneOf(p.Basis, bases))
		}
		if !oneOf(p.Category, categories) {
			l.invalid(key+".category", mustBeOneOf(p.Category, categories))
		}
		if p.Retention < 0 {
			l.invalid(key+".retention", "must not be negative")
		}
		if p.RoleAddresses != "" && p.RoleAddresses != RoleAddressesAllow && p.RoleAddresses != RoleAddressesRequireConsent {
			l.invalid(key+".role_addresses", mustBeOneOf(p.RoleAddresses, []string{RoleAddressesAllow, RoleAddressesRequireConsent}))
		}
	}
}
