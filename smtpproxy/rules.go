package smtpproxy

import (
	"fmt"

	"optinproxy/optin"
)

// Rules are the parts of a Server's configuration that Reload may change
// while it serves: who may log in and send what, the purposes a message
// may name, and the role addresses.
type Rules struct {
	Users []User
	// Purposes are the configured purposes; a message's purpose must be
	// one of them.
	Purposes optin.Purposes
	// DefaultPurpose is policy.default_purpose.
	DefaultPurpose string
	// Roles are the role addresses; nil means the built-in list.
	Roles *optin.RoleAddresses
}

// rules are Rules checked and indexed. A value is never changed once
// stored: Reload stores a new one, so that a transaction holding the old
// one decides with it to its end.
type rules struct {
	users          map[string]*User
	purposes       optin.Purposes
	defaultPurpose string
	roles          *optin.RoleAddresses
}

func newRules(r Rules) (*rules, error) {
	users, err := indexUsers(r.Users)
	if err != nil {
		return nil, err
	}
	if err := checkPurposes(r); err != nil {
		return nil, err
	}
	if r.Roles == nil {
		if r.Roles, err = optin.NewRoleAddresses(nil, nil); err != nil {
			return nil, err
		}
	}
	return &rules{users: users, purposes: r.Purposes, defaultPurpose: r.DefaultPurpose, roles: r.Roles}, nil
}

// checkPurposes finds purpose names that name nothing: the defaults and
// the users' purposes must be configured ones.
func checkPurposes(r Rules) error {
	known := func(what, name string) error {
		if _, ok := r.Purposes[name]; name != "" && !ok {
			return fmt.Errorf("smtpproxy: %s names unknown purpose %q", what, name)
		}
		return nil
	}
	if err := known("the default purpose", r.DefaultPurpose); err != nil {
		return err
	}
	for _, u := range r.Users {
		if err := known("user "+u.Name, u.DefaultPurpose); err != nil {
			return err
		}
		for _, p := range u.Purposes {
			if err := known("user "+u.Name, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reload checks r as New checks the same options and, when they are
// valid, puts them in force at once; otherwise it returns why and the
// rules in force stay. Safe to call while the server serves.
//
// A transaction keeps the rules that were in force at its MAIL FROM until
// it ends, so that its recipients and its message are decided alike; AUTH
// checks against the rules in force when it is given. A session whose user
// a reload removed is refused at its next MAIL FROM (530) and must
// reconnect; one whose user changed gets the new entry (purposes,
// from_domains) at its next MAIL FROM.
func (s *Server) Reload(r Rules) error {
	nr, err := newRules(r)
	if err != nil {
		return err
	}
	s.rules.Store(nr)
	return nil
}
