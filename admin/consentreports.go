package admin

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"time"

	"optinproxy/optin"
)

// expiringRow is one consent of the expiring report.
type expiringRow struct {
	Email     string    `json:"email"`
	Purpose   string    `json:"purpose"`
	Source    string    `json:"source"`
	GrantedAt time.Time `json:"granted_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at"`
	// NoticedAt is when the consent.expiring event went out, if it did.
	NoticedAt time.Time `json:"noticed_at,omitzero"`
}

type expiringJSON struct {
	Days       int           `json:"days"`
	Until      time.Time     `json:"until"`
	Consents   []expiringRow `json:"consents"`
	NextCursor string        `json:"next_cursor"`
}

// maxExpiringDays bounds ?days= at about a century: any retention fits.
const maxExpiringDays = 36_500

// reportExpiring lists the granted consents whose expires_at is after
// now and within ?days= (default 30) of it, soonest first within a page:
// whom to ask for renewal. Paged through the subjects like
// the no-proof report.
func (a *API) reportExpiring(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, ok := reportLimit(w, q)
	if !ok {
		return
	}
	days := 30
	if s := q.Get("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxExpiringDays {
			badRequest(w, "days must be a whole number of days from 1 to "+strconv.Itoa(maxExpiringDays))
			return
		}
		days = n
	}
	now := a.opts.Now().UTC()
	ans := expiringJSON{Days: days, Until: now.Add(time.Duration(days) * 24 * time.Hour), Consents: []expiringRow{}}
	next, err := a.walkSubjects(r.Context(), q.Get("cursor"), func() bool { return len(ans.Consents) >= limit }, func(v *optin.SubjectView) error {
		for _, c := range v.Consents {
			if c.Status == optin.StatusGranted && c.ExpiresAt.After(now) && !c.ExpiresAt.After(ans.Until) {
				ans.Consents = append(ans.Consents, expiringRow{Email: v.Address.String(), Purpose: c.Purpose, Source: c.Source,
					GrantedAt: c.GrantedAt, ExpiresAt: c.ExpiresAt, NoticedAt: c.NoticedAt})
			}
		}
		return nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	slices.SortStableFunc(ans.Consents, func(x, y expiringRow) int {
		return cmp.Or(x.ExpiresAt.Compare(y.ExpiresAt), cmp.Compare(x.Email, y.Email), cmp.Compare(x.Purpose, y.Purpose))
	})
	ans.NextCursor = next
	writeJSON(w, http.StatusOK, ans)
}

// unknownVersion stands for a consent recorded without a policy version.
const unknownVersion = "unknown"

// outdatedRow is one consent of the outdated-policy report.
type outdatedRow struct {
	Email   string       `json:"email"`
	Purpose string       `json:"purpose"`
	Status  optin.Status `json:"status"`
	// PolicyVersion is the version the consent was given under, or
	// "unknown".
	PolicyVersion string    `json:"policy_version"`
	GrantedAt     time.Time `json:"granted_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at"`
}

type outdatedJSON struct {
	CurrentVersion string        `json:"current_version"`
	Consents       []outdatedRow `json:"consents"`
	NextCursor     string        `json:"next_cursor"`
}

// reportOutdatedPolicy lists the granted and pending consents given
// under a privacy-policy version other than policy.current_version, or
// under none known: whom to inform when the policy changes.
// Paged through the subjects like the no-proof report.
func (a *API) reportOutdatedPolicy(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, ok := reportLimit(w, q)
	if !ok {
		return
	}
	cur := a.opts.PolicyVersion
	if cur == "" {
		writeError(w, http.StatusConflict, "not_configured", "no current privacy-policy version is configured (policy.current_version)")
		return
	}
	ans := outdatedJSON{CurrentVersion: cur, Consents: []outdatedRow{}}
	next, err := a.walkSubjects(r.Context(), q.Get("cursor"), func() bool { return len(ans.Consents) >= limit }, func(v *optin.SubjectView) error {
		var evidence *optin.SubjectView // read once, for records older than their policy_version field
		for _, c := range v.Consents {
			if !current(&c) {
				continue
			}
			version := c.PolicyVersion
			if version == "" && c.Gaps&optin.GapPolicyVersion == 0 {
				// A record stored before records kept the version: its
				// evidence, in the event that recorded it, may name one.
				if evidence == nil {
					var err error
					if evidence, err = a.store.Subject(r.Context(), v.Address, 0); err != nil {
						return err
					}
				}
				version = evidenceVersion(evidence, c.Purpose)
			}
			if version == cur {
				continue
			}
			if version == "" {
				version = unknownVersion
			}
			ans.Consents = append(ans.Consents, outdatedRow{Email: v.Address.String(), Purpose: c.Purpose, Status: c.Status,
				PolicyVersion: version, GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt})
		}
		return nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ans.NextCursor = next
	writeJSON(w, http.StatusOK, ans)
}

// evidenceVersion is the policy version of purpose's evidence in v.
func evidenceVersion(v *optin.SubjectView, purpose string) string {
	for _, c := range v.Consents {
		if c.Purpose == purpose && c.Evidence != nil {
			return c.Evidence.PolicyVersion
		}
	}
	return ""
}
