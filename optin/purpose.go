package optin

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Basis is a lawful basis of GDPR Art. 6(1).
type Basis string

const (
	BasisConsent             Basis = "consent"
	BasisContract            Basis = "contract"
	BasisLegalObligation     Basis = "legal_obligation"
	BasisVitalInterests      Basis = "vital_interests"
	BasisPublicTask          Basis = "public_task"
	BasisLegitimateInterests Basis = "legitimate_interests"
)

// Bases lists the six lawful bases in the order of Art. 6(1).
var Bases = []Basis{BasisConsent, BasisContract, BasisLegalObligation, BasisVitalInterests, BasisPublicTask, BasisLegitimateInterests}

// Valid reports whether b is one of the six bases.
func (b Basis) Valid() bool {
	for _, v := range Bases {
		if b == v {
			return true
		}
	}
	return false
}

// Category says which rule of Decide decides a purpose's mail.
type Category string

const (
	CategoryMarketing     Category = "marketing"
	CategoryTransactional Category = "transactional"
	CategoryLegal         Category = "legal"
)

// Valid reports whether c is a known category.
func (c Category) Valid() bool {
	return c == CategoryMarketing || c == CategoryTransactional || c == CategoryLegal
}

// RoleRule says whether role addresses (info@, sales@) may get a
// purpose's marketing mail without a consent record.
type RoleRule string

const (
	RoleAllow          RoleRule = "allow"
	RoleRequireConsent RoleRule = "require_consent"
)

// Purpose is a configured reason for processing.
type Purpose struct {
	Name     string
	Basis    Basis
	Category Category
	// Retention is how long a consent lasts without renewal; 0 is for ever.
	Retention   time.Duration
	DoubleOptIn bool
	// Unsubscribe puts unsubscribe links into the purpose's mail.
	Unsubscribe   bool
	RoleAddresses RoleRule
	Description   string
}

var purposeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Validate checks a purpose as configured.
func (p Purpose) Validate() error {
	switch {
	case !purposeName.MatchString(p.Name):
		return fmt.Errorf("%w: name %q", ErrBadPurpose, p.Name)
	case !p.Basis.Valid():
		return fmt.Errorf("%w: %s: basis %q", ErrBadPurpose, p.Name, p.Basis)
	case !p.Category.Valid():
		return fmt.Errorf("%w: %s: category %q", ErrBadPurpose, p.Name, p.Category)
	case p.Retention < 0:
		return fmt.Errorf("%w: %s: negative retention", ErrBadPurpose, p.Name)
	case p.RoleAddresses != "" && p.RoleAddresses != RoleAllow && p.RoleAddresses != RoleRequireConsent:
		return fmt.Errorf("%w: %s: role_addresses %q", ErrBadPurpose, p.Name, p.RoleAddresses)
	}
	return nil
}

// Purposes is the configured set, by name.
type Purposes map[string]Purpose

// Get returns the named purpose or an error wrapping ErrUnknownPurpose.
func (ps Purposes) Get(name string) (Purpose, error) {
	p, ok := ps[name]
	if !ok {
		return Purpose{}, fmt.Errorf("%w: %s", ErrUnknownPurpose, ps.Unknown(name))
	}
	return p, nil
}

// Names lists the configured purposes, sorted.
func (ps Purposes) Names() []string { return slices.Sorted(maps.Keys(ps)) }

// Unknown says, for an error, that name is not a purpose and what would
// be valid. Names are matched exactly (case is not folded),
// so a name that differs from one only in case is told so.
func (ps Purposes) Unknown(name string) string {
	msg := fmt.Sprintf("%q", name)
	if _, ok := ps[strings.ToLower(name)]; ok && name != strings.ToLower(name) {
		msg += fmt.Sprintf(" (purpose names are lower case: %q)", strings.ToLower(name))
	}
	return msg + "; the purposes are: " + strings.Join(ps.Names(), ", ")
}
