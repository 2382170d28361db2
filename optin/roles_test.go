package optin

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNewRoleAddressesRejects(t *testing.T) {
	tests := []struct {
		add, remove []string
		want        []string // parts of the error, one per problem
	}{
		// An empty entry.
		{[]string{""}, nil, []string{"policy.role_addresses.add[0]", "is empty"}},
		// A whole address instead of a local part.
		{[]string{"info", "info@example.com"}, nil, []string{"policy.role_addresses.add[1]", "without @"}},
		// Uppercase: the error says how to write it.
		{[]string{"Verkoop"}, nil, []string{`must be lowercase ("verkoop")`}},
		// A plus-tag could never match: roles are compared before the tag.
		{[]string{"info+crm"}, nil, []string{"must not contain '+'"}},
		// A quoted local part is never a role address.
		{[]string{`"info"`}, nil, []string{"must not be quoted"}},
		// Whitespace is not part of a local part.
		{[]string{" info"}, nil, []string{"is not a local part", "a space"}},
		// A leading dot is not a local part.
		{[]string{".info"}, nil, []string{"starts or ends with a dot"}},
		// Only separators leave nothing to compare.
		{[]string{"-_-"}, nil, []string{"nothing but"}},
		// Removing what is not built in is most likely a typo.
		{nil, []string{"infoo"}, []string{"policy.role_addresses.remove[0]", `"infoo" is not a built-in role address`}},
		// One mailbox both added and removed, here as separator variants.
		{[]string{"verkoop-nl"}, []string{"verkoop_nl"}, []string{"policy.role_addresses.remove[0]", "is also added"}},
		// A character that normalization would turn into ASCII: the
		// Kelvin sign is no K.
		{[]string{"\u212Aantoor-nl"}, nil, []string{"policy.role_addresses.add[0]", "U+212A"}},
		// İ is not lowercase i: the entry would match only İ.
		{[]string{"\u0130nkoop"}, nil, []string{"must be lowercase"}},
		// Bad entries on the remove side are checked too.
		{nil, []string{"Info"}, []string{"policy.role_addresses.remove[0]", "must be lowercase"}},
		// Every problem is reported at once.
		{[]string{"A", "b@c"}, []string{"", "nope"}, []string{"add[0]", "add[1]", "remove[0]", "remove[1]"}},
	}
	for _, tt := range tests {
		r, err := NewRoleAddresses(tt.add, tt.remove)
		if err == nil {
			t.Errorf("NewRoleAddresses(%q, %q) = %v, want an error", tt.add, tt.remove, r.List())
			continue
		}
		if !errors.Is(err, ErrBadInput) {
			t.Errorf("NewRoleAddresses(%q, %q): %v does not wrap ErrBadInput", tt.add, tt.remove, err)
		}
		for _, part := range tt.want {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("NewRoleAddresses(%q, %q): %q lacks %q", tt.add, tt.remove, err, part)
			}
		}
	}
}

func TestNewRoleAddressesAccepts(t *testing.T) {
	tests := []struct {
		add, remove []string
		is, isNot   []string // addresses that are and are not role addresses
	}{
		// The built-in list alone.
		{nil, nil, []string{"info@x.nl", "kantoor@x.nl", "postmaster@x.nl"}, []string{"verkoop-nl@x.nl", "jan@x.nl"}},
		// Adding what is built in, twice, is harmless.
		{[]string{"info", "info"}, nil, []string{"info@x.nl"}, nil},
		// Removing a variant spelling removes the listed mailbox with all its
		// spellings; the one without a separator is another entry.
		{nil, []string{"no_reply"}, []string{"info@x.nl", "noreply@x.nl"}, []string{"no-reply@x.nl", "no.reply@x.nl"}},
		// Separators are alike but not nothing: initials are no role address.
		{nil, nil, []string{"hr@x.nl", "pr@x.nl"}, []string{"h.r@x.nl", "p-r@x.nl"}},
		// A non-ASCII entry, lowercase, matches the NFC address.
		{[]string{"financiën"}, nil, []string{"financiën@x.nl", "FINANCIËN@x.nl"}, nil},
		// A decomposed entry (e + U+0308) matches the composed address.
		{[]string{"financie\u0308n"}, nil, []string{"financiën@x.nl"}, nil},
		// Adding and removing different mailboxes at once.
		{[]string{"verkoop-nl"}, []string{"info", "sales"}, []string{"verkoop_nl@x.nl", "support@x.nl"}, []string{"info@x.nl", "sales@x.nl"}},
	}
	for _, tt := range tests {
		r, err := NewRoleAddresses(tt.add, tt.remove)
		if err != nil {
			t.Errorf("NewRoleAddresses(%q, %q): %v", tt.add, tt.remove, err)
			continue
		}
		for _, want := range []bool{true, false} {
			addrs := tt.is
			if !want {
				addrs = tt.isNot
			}
			for _, s := range addrs {
				a, err := ParseAddress(s)
				if err != nil {
					t.Fatalf("ParseAddress(%q): %v", s, err)
				}
				if got := r.Is(a); got != want {
					t.Errorf("add %q remove %q: Is(%s) = %v, want %v", tt.add, tt.remove, s, got, want)
				}
			}
		}
	}
}

func TestRoleAddressesIs(t *testing.T) {
	r, err := NewRoleAddresses(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		// The usual examples.
		{"info@example.com", true},
		{"sales@example.com", true},
		{"billing@example.com", true},
		// Dutch.
		{"klantenservice@example.nl", true},
		// The part before the first + decides.
		{"support+ticket+42@example.com", true},
		// A role word after the + does not make a role address.
		{"jan+info@example.com", false},
		// Separators anywhere are ignored: mailer_daemon is mailer-daemon.
		{"mailer_daemon@example.com", true},
		{"do-not-reply@example.com", true},
		{"do.not.reply@example.com", true},
		// A role word inside a longer name is not a role address.
		{"infodesk@example.com", false},
		{"jan.info@example.com", false},
		// A name is not a role address.
		{"jan.jansen@example.com", false},
		// Non-ASCII local parts are compared as they are.
		{"jürgen@example.com", false},
		// A quoted local part with a space never matches.
		{`"info "@example.com`, false},
		// The domain plays no part.
		{"info@[192.0.2.1]", true},
		// "work" and "werk" are not in the conservative core.
		{"work@example.com", false},
		{"werk@example.nl", false},
		// A look-alike that Unicode case mapping turns into ASCII is
		// not the role address: İ (U+0130) is no i.
		{"\u0130nfo@example.com", false},
		{"\u0130NFO@example.com", false},
		{"I\u0307nfo@example.com", false},
		{"adm\u0130n+x@example.com", false},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.addr)
		if err != nil {
			t.Fatalf("ParseAddress(%q): %v", tt.addr, err)
		}
		if got := r.Is(a); got != tt.want {
			t.Errorf("Is(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	// No list, no role addresses.
	var none *RoleAddresses
	if none.Is(mustParse(t, "info@example.com")) || (&RoleAddresses{}).Is(mustParse(t, "info@example.com")) {
		t.Error("a nil or zero RoleAddresses found a role address")
	}
	// The zero Address is no role address.
	if r.Is(Address{}) {
		t.Error("Is(Address{}) = true")
	}
}

func TestBuiltinRoles(t *testing.T) {
	// About a hundred: a narrow list, far from the thousand of the wide list.
	if n := len(builtinRoles); n < 90 || n > 160 {
		t.Errorf("%d built-in role addresses, want about a hundred", n)
	}
	seen := map[string]string{}
	for _, s := range builtinRoles {
		if problem := roleEntryProblem(s); problem != "" {
			t.Errorf("built-in %q %s", s, problem)
		}
		if other, dup := seen[roleKey(s)]; dup {
			t.Errorf("built-in %q and %q name one mailbox", s, other)
		}
		seen[roleKey(s)] = s
	}
	r, err := NewRoleAddresses(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	list := r.List()
	if !slices.IsSorted(list) || len(list) != len(builtinRoles) {
		t.Errorf("List() has %d entries, sorted %v; want %d, sorted", len(list), slices.IsSorted(list), len(builtinRoles))
	}
	// The most common ones.
	for _, s := range []string{"info", "sales", "support", "admin", "office", "contact", "hello", "billing", "noreply", "postmaster"} {
		if !slices.Contains(list, s) {
			t.Errorf("List() lacks %q", s)
		}
	}
}

func TestRoleAddressesList(t *testing.T) {
	r, err := NewRoleAddresses([]string{"verkoop-nl", "info"}, []string{"sales", "no-reply"})
	if err != nil {
		t.Fatal(err)
	}
	list := r.List()
	if !slices.IsSorted(list) {
		t.Errorf("List() is not sorted: %q", list)
	}
	for s, want := range map[string]bool{"verkoop-nl": true, "info": true, "sales": false, "noreply": true, "no-reply": false} {
		if got := slices.Contains(list, s); got != want {
			t.Errorf("List() has %q: %v, want %v", s, got, want)
		}
	}
	if got, want := len(list), len(builtinRoles)-2+1; got != want {
		t.Errorf("List() has %d entries, want %d", got, want)
	}
}
