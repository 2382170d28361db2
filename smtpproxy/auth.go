package smtpproxy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"
)

// User is an SMTP account (smtp.users).
type User struct {
	Name string
	// PasswordHash is a bcrypt hash.
	PasswordHash   string
	DefaultPurpose string
	// Purposes the user may send for; empty means all.
	Purposes []string
	// FromDomains the user may use in MAIL FROM; empty means any.
	FromDomains []string
}

// dummyHash is compared against when the user name is unknown, so that a
// wrong name and a wrong password take the same time.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("optinproxy-no-such-user"), bcrypt.DefaultCost)

func indexUsers(users []User) (map[string]*User, error) {
	m := make(map[string]*User, len(users))
	for i := range users {
		u := &users[i]
		if u.Name == "" {
			return nil, errors.New("smtpproxy: user without a name")
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return nil, fmt.Errorf("smtpproxy: user %q: password_hash is not a bcrypt hash", u.Name)
		}
		if _, dup := m[u.Name]; dup {
			return nil, fmt.Errorf("smtpproxy: user %q listed twice", u.Name)
		}
		m[u.Name] = u
	}
	return m, nil
}

// authenticate checks a name and password against the users in force, in
// constant time with respect to whether the name exists.
func (s *Server) authenticate(name, password string) *User {
	u := s.rules.Load().users[name]
	hash := dummyHash
	if u != nil {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || u == nil {
		return nil
	}
	return u
}

// mayUseFrom reports whether u may send with the envelope sender from.
func (u *User) mayUseFrom(from string) bool {
	if len(u.FromDomains) == 0 {
		return true
	}
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return false
	}
	domain := strings.ToLower(from[at+1:])
	for _, d := range u.FromDomains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// mayGetDSN reports whether from, the envelope sender of u's message, may
// be sent a DSN: only when u is a user (not a client trusted by network)
// whose from_domains name its domain.
func (u *User) mayGetDSN(from string) bool {
	return u != nil && len(u.FromDomains) > 0 && u.mayUseFrom(from)
}

// loginServer is the server side of the AUTH LOGIN exchange
// (draft-murchison-sasl-login), which go-sasl does not provide: it asks
// for the user name, then the password, each in a 334 challenge.
type loginServer struct {
	username string
	step     int
	check    func(username, password string) error
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response holds the user name
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.username, string(response))
	}
}

var _ sasl.Server = (*loginServer)(nil)
