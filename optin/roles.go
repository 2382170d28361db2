package optin

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// builtinRoles is the built-in list of role addresses: generic
// local parts of business mailboxes, English and Dutch, taken from the
// conservative core of the common role-address lists (the Dutch
// Telecommunicatiewet art. 11.7 and the AVG treat such a mailbox as a
// business's, not a natural person's). Marketing mail to
// them may go without prior opt-in where a purpose allows it, so the list
// is deliberately narrow: it is a legal allowance, not a detector of shared
// mailboxes. The much wider Mixmax list is not shipped. Dutch "werk" is left
// out for the reason that list is: like "work", it is too broad. '-', '_'
// and '.' are alike (no-reply, no_reply and no.reply are one mailbox), but
// a separator is not nothing: noreply and no-reply are both listed.
var builtinRoles = []string{
	// English: the company as a whole.
	"info", "information", "contact", "contactus", "hello", "hi", "office",
	"general", "mail", "email", "post", "all", "everyone", "list", "team", "staff",
	// English: administration and money.
	"admin", "administrator", "administration", "accounts", "accounting",
	"billing", "invoice", "invoices", "finance", "payments", "purchasing",
	"procurement",
	// English: customers.
	"sales", "marketing", "support", "help", "helpdesk", "service", "services",
	"customerservice", "care", "feedback", "enquiries", "enquiry", "inquiries",
	"inquiry", "orders", "order", "shop", "store", "bookings", "booking",
	"reservations", "reception", "frontdesk", "returns",
	// English: people, press and partners.
	"hr", "jobs", "careers", "recruitment", "press", "media", "pr", "news",
	"newsletter", "events", "partners", "partnerships",
	// English: management.
	"management", "board", "director", "secretary",
	// English: legal, privacy and security.
	"legal", "compliance", "privacy", "dpo", "gdpr", "security", "abuse",
	// English: mail and systems.
	"postmaster", "hostmaster", "webmaster", "noreply", "no-reply", "donotreply", "do-not-reply",
	"mailer-daemon", "unsubscribe", "root", "sysadmin", "it", "tech", "noc",
	"operations", "ops",
	// English: goods.
	"logistics", "shipping", "warehouse",

	// Dutch (contact, privacy and service are listed above).
	"algemeen", "kantoor", "receptie", "secretariaat", "directie", "bestuur",
	"administratie", "boekhouding", "debiteuren", "crediteuren", "facturen",
	"factuur", "facturatie", "financien", "verkoop", "inkoop",
	"klantenservice", "bestellingen", "bestelling", "reserveringen", "winkel",
	"retouren", "magazijn", "expeditie", "bedrijfsbureau", "planning",
	"personeelszaken", "vacatures", "sollicitatie", "communicatie", "pers",
	"redactie", "juridisch", "beveiliging",
}

// RoleAddresses is the set of role addresses in force: the built-in list
// with the configured additions and removals (policy.role_addresses.add and
// .remove). Build it with NewRoleAddresses; the zero value holds no role
// addresses. It is not changed after construction, so it is safe for
// concurrent use.
type RoleAddresses struct {
	// byKey maps an entry's key (roleKey) to its spelling, for List.
	byKey map[string]string
}

// NewRoleAddresses returns the built-in role addresses plus add minus
// remove. Entries are local parts as a user writes them in the
// configuration: lowercase, without '@' or '+tag', no quotes, e.g. "info"
// or "verkoop-nl". Entries that differ only in '-', '_' and '.' name one
// mailbox, so removing "no_reply" removes the built-in "no-reply". Adding an
// entry that is already listed is harmless; removing one that is not in the
// built-in list is an error (it is most likely a typo, and would leave an
// allowance in force that the configuration meant to take away), and so is
// naming one mailbox in both add and remove. The error joins every problem
// found, each wrapping ErrBadInput and naming its key, such as
// policy.role_addresses.add[2].
func NewRoleAddresses(add, remove []string) (*RoleAddresses, error) {
	builtin := make(map[string]string, len(builtinRoles))
	for _, s := range builtinRoles {
		builtin[roleKey(s)] = s
	}
	var errs []error
	check := func(side string, i int, s string) (string, bool) {
		if problem := roleEntryProblem(s); problem != "" {
			errs = append(errs, fmt.Errorf("%w: policy.role_addresses.%s[%d]: %q %s", ErrBadInput, side, i, s, problem))
			return "", false
		}
		folded, _ := normalizeLocal(s)
		return roleKey(folded), true
	}

	added := map[string]string{}
	for i, s := range add {
		if k, ok := check("add", i, s); ok {
			if _, dup := added[k]; !dup {
				added[k] = norm.NFC.String(s)
			}
		}
	}
	removed := map[string]bool{}
	for i, s := range remove {
		k, ok := check("remove", i, s)
		switch {
		case !ok:
		case added[k] != "":
			errs = append(errs, fmt.Errorf("%w: policy.role_addresses.remove[%d]: %q is also added (as %q); keep it in one list", ErrBadInput, i, s, added[k]))
		case builtin[k] == "":
			errs = append(errs, fmt.Errorf("%w: policy.role_addresses.remove[%d]: %q is not a built-in role address", ErrBadInput, i, s))
		default:
			removed[k] = true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	r := &RoleAddresses{byKey: make(map[string]string, len(builtin)+len(added))}
	for k, s := range builtin {
		if !removed[k] {
			r.byKey[k] = s
		}
	}
	for k, s := range added {
		if _, listed := r.byKey[k]; !listed {
			r.byKey[k] = s
		}
	}
	return r, nil
}

// Is reports whether a is a role address: whether its local part before
// any +tag (Address.LocalBase) names a listed mailbox, compared without
// regard to case and with '-', '_' and '.' alike. So info+crm@, INFO@ and
// no_reply@ (for the listed no-reply) are role addresses; h.r@ is not hr@. A quoted local
// part never is: it is not a generic mailbox name (ParseAddress already
// unquotes the ones that need no quotes, so "info"@ is info@). The domain
// plays no part. A nil or zero RoleAddresses has none.
func (r *RoleAddresses) Is(a Address) bool {
	if r == nil {
		return false
	}
	base := a.LocalBase()
	if base == "" || strings.HasPrefix(base, `"`) {
		return false
	}
	// The local part is normalized already; lowercasing it again would
	// turn İnfo into info.
	k := roleKey(base)
	if k == "" {
		return false
	}
	_, ok := r.byKey[k]
	return ok
}

// List returns the role addresses in force, one spelling per mailbox,
// sorted: for documentation, check-config and tests.
func (r *RoleAddresses) List() []string {
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.byKey))
	for _, s := range r.byKey {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// roleKey is the form in which role addresses are compared: NFC, with
// '_' and '.' read as '-'. The separators are made alike, not dropped:
// dropping them would make h.r@ (a person's initials) the role address
// hr@, and the allowance is a legal one, so it errs on the narrow side.
// Callers normalize first (normalizeLocal).
func roleKey(s string) string {
	k := strings.Map(func(r rune) rune {
		if r == '_' || r == '.' {
			return '-'
		}
		return r
	}, norm.NFC.String(s))
	if strings.Trim(k, "-") == "" {
		return ""
	}
	return k
}

// roleEntryProblem says what is wrong with a configured entry, or "" when
// it is a usable local part.
func roleEntryProblem(s string) string {
	switch {
	case s == "":
		return "is empty; want a local part such as info"
	case strings.Contains(s, "@"):
		return "must be a local part without @, such as info"
	case strings.HasPrefix(s, `"`):
		return "must not be quoted: a quoted local part is never a role address"
	case strings.Contains(s, "+"):
		return "must not contain '+': role addresses are matched before any +tag"
	}
	if _, odd := normalizeLocal(s); odd != 0 {
		return fmt.Sprintf("contains U+%04X, which normalization would turn into ASCII", odd)
	}
	if strings.ToLower(s) != s {
		return fmt.Sprintf("must be lowercase (%q)", strings.ToLower(s))
	}
	if problem := dotAtomError(norm.NFC.String(s)); problem != "" {
		return "is not a local part: it " + problem
	}
	if roleKey(s) == "" {
		return "has nothing but '-', '_' and '.'"
	}
	return ""
}
