package config

// The words the file allows for its enumerated keys. Validation accepts
// exactly these; the server compares against the same constants.
const (
	ModeEnforce = "enforce" // policy.mode: block what may not be sent
	ModeMonitor = "monitor" // policy.mode: record decisions, relay to all

	StartTLSOpportunistic = "opportunistic" // upstream.starttls: use when offered
	StartTLSRequired      = "required"      // upstream.starttls: refuse plain text

	CategoryMarketing     = "marketing"
	CategoryTransactional = "transactional"
	CategoryLegal         = "legal"

	RoleAddressesAllow          = "allow"
	RoleAddressesRequireConsent = "require_consent"
)

// Lawful bases of GDPR art. 6(1), as purposes.*.basis spells them.
var bases = []string{
	"consent", "contract", "legal_obligation",
	"vital_interests", "public_task", "legitimate_interests",
}

var (
	categories = []string{CategoryMarketing, CategoryTransactional, CategoryLegal}
	modes      = []string{ModeEnforce, ModeMonitor}
	startTLS   = []string{StartTLSOpportunistic, StartTLSRequired}
	languages  = []string{"nl", "en"}
	scopes     = []string{"read", "write", "erase"}
)
