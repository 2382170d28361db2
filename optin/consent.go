package optin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status is the state of one consent record.
type Status string

const (
	StatusGranted   Status = "granted"
	StatusPending   Status = "pending" // awaiting double opt-in
	StatusWithdrawn Status = "withdrawn"
	StatusExpired   Status = "expired"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	return s == StatusGranted || s == StatusPending || s == StatusWithdrawn || s == StatusExpired
}

// Sources a consent change can come from; others are allowed.
const (
	SourceForm        = "form"
	SourceDoubleOptIn = "double_opt_in"
	SourceImport      = "import"
	SourceAPI         = "api"
	SourceCRM         = "crm"
	SourceMailchimp   = "mailchimp"
	SourcePortal      = "portal"
	SourceUnsubscribe = "unsubscribe"
)

// Consent is the current state of one (subject, purpose).
//
// The evidence of a consent lives in the event that recorded it (EventID):
// the audit log is the proof, and the current state stays small.
type Consent struct {
	Subject Address `json:"-"`
	Purpose string  `json:"purpose"`
	Status  Status  `json:"status"`
	Basis   Basis   `json:"basis"`
	Source  string  `json:"source"`
	// Evidence is filled from the recording event when read for display;
	// stores do not keep it in the current state.
	Evidence *Evidence `json:"evidence,omitempty"`
	// GrantedAt is when it was last granted (or renewed); zero if never.
	GrantedAt time.Time `json:"granted_at,omitzero"`
	// UpdatedAt is when the change happened (its occurred_at, not when it
	// was stored): it orders changes, and the newest wins.
	UpdatedAt time.Time `json:"updated_at"`
	// ExpiresAt is GrantedAt + the purpose's retention; zero for never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// EventID is the event that recorded this state.
	EventID string `json:"event_id"`
	// Gaps say what the proof of a granted or pending record lacks; the
	// no-proof report lists the records that have any.
	Gaps ProofGaps `json:"proof_gaps,omitzero"`
	// PolicyVersion is the privacy-policy version the consent was given
	// under (its evidence's), kept in the record so that the
	// outdated-policy report need not open every event.
	PolicyVersion string `json:"policy_version,omitempty"`
	// NoticedAt is when the consent.expiring event of the current grant
	// was recorded; zero until then. A renewal clears it.
	NoticedAt time.Time `json:"noticed_at,omitzero"`
}

// ProofGaps are what a consent's proof lacks: a grant whose
// time is unknown, no privacy-policy version, or no evidence at all.
type ProofGaps uint8

const (
	GapGrantTime     ProofGaps = 1 << iota // imported without granted_at
	GapPolicyVersion                       // no privacy-policy version
	GapEvidence                            // no evidence given at all
)

var gapNames = []string{"granted_at", "policy_version", "evidence"}

// Names lists the gaps by the field that is missing.
func (g ProofGaps) Names() []string {
	var out []string
	for i, name := range gapNames {
		if g&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// MarshalJSON writes the names, as in ["granted_at", "policy_version"].
func (g ProofGaps) MarshalJSON() ([]byte, error) { return json.Marshal(g.Names()) }

// UnmarshalJSON reads the names back.
func (g *ProofGaps) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	*g = 0
	for _, n := range names {
		i := slices.Index(gapNames, n)
		if i < 0 {
			return fmt.Errorf("%w: proof gap %q", ErrBadInput, n)
		}
		*g |= 1 << i
	}
	return nil
}

// Active reports whether the record allows mail at now: granted and not
// past its expiry.
func (c *Consent) Active(now time.Time) bool {
	return c != nil && c.Status == StatusGranted && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt))
}

// Evidence is how a consent was given (GDPR Art. 7(1)): when, from where,
// under which policy version, what the subject saw, and free key/values.
type Evidence struct {
	Time          time.Time
	IP            string
	UserAgent     string
	PolicyVersion string
	Text          string
	Extra         map[string]string
}

// MarshalJSON writes the named fields and Extra side by side, as in the
// API's {"ip": ..., "user_agent": ..., "campaign": ...}.
func (e Evidence) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(e.Extra)+5)
	for k, v := range e.Extra {
		m[k] = v
	}
	if !e.Time.IsZero() {
		m["time"] = e.Time.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range map[string]string{"ip": e.IP, "user_agent": e.UserAgent, "policy_version": e.PolicyVersion, "text": e.Text} {
		if v != "" {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the named fields and keeps every other string as
// Extra. Non-string extra values are refused: evidence is text.
func (e *Evidence) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*e = Evidence{}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: evidence %q must be a string", ErrBadInput, k)
		}
		switch k {
		case "time":
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return fmt.Errorf("%w: evidence time %q is not RFC 3339", ErrBadInput, s)
			}
			e.Time = t
		case "ip":
			e.IP = s
		case "user_agent":
			e.UserAgent = s
		case "policy_version":
			e.PolicyVersion = s
		case "text":
			e.Text = s
		default:
			if e.Extra == nil {
				e.Extra = map[string]string{}
			}
			e.Extra[k] = s
		}
	}
	return nil
}

// IsZero reports whether nothing is recorded.
func (e Evidence) IsZero() bool {
	return e.Time.IsZero() && e.IP == "" && e.UserAgent == "" && e.PolicyVersion == "" && e.Text == "" && len(e.Extra) == 0
}

// SuppressionReason says why an address is blocked as a whole.
type SuppressionReason string

const (
	SuppressUnsubscribedAll SuppressionReason = "unsubscribed_all"
	SuppressHardBounce      SuppressionReason = "hard_bounce"
	SuppressComplaint       SuppressionReason = "complaint"
	SuppressErased          SuppressionReason = "erased"
	SuppressManual          SuppressionReason = "manual"
)

// SuppressionReasons are the known reasons, for an error that lists them.
var SuppressionReasons = []SuppressionReason{SuppressUnsubscribedAll, SuppressHardBounce, SuppressComplaint, SuppressErased, SuppressManual}

// badReason is the error for an unknown reason, naming the valid ones.
func badReason(r SuppressionReason) error {
	names := make([]string, len(SuppressionReasons))
	for i, v := range SuppressionReasons {
		names[i] = string(v)
	}
	return fmt.Errorf("%w: unknown suppression reason %q; the reasons are: %s", ErrBadInput, r, strings.Join(names, ", "))
}

// Valid reports whether r is a known reason.
func (r SuppressionReason) Valid() bool {
	switch r {
	case SuppressUnsubscribedAll, SuppressHardBounce, SuppressComplaint, SuppressErased, SuppressManual:
		return true
	}
	return false
}

// Suppression is an address-level block.
type Suppression struct {
	Subject   Address           `json:"email"`
	Reason    SuppressionReason `json:"reason"`
	CreatedAt time.Time         `json:"created_at"`
}
