package admin

import (
	"net/http"
	"strconv"
	"time"

	"optinproxy/optin"
)

// reportBudget bounds the subjects one report page reads, so that a
// store with few findings among many subjects answers in pages too.
const reportBudget = 10_000

// noProofRow is one consent of the no-proof report.
type noProofRow struct {
	Email     string       `json:"email"`
	Purpose   string       `json:"purpose"`
	Status    optin.Status `json:"status"`
	Source    string       `json:"source"`
	GrantedAt time.Time    `json:"granted_at,omitzero"`
	UpdatedAt time.Time    `json:"updated_at"`
	Missing   []string     `json:"missing"`
}

type noProofJSON struct {
	Consents   []noProofRow `json:"consents"`
	NextCursor string       `json:"next_cursor"`
}

// reportNoProof lists the granted and pending consents whose proof lacks
// something (SPEC §6): imported without a grant time or a policy version,
// or given with no evidence at all. ?cursor=&limit= page through the
// subjects; a page reads up to reportBudget subjects and may hold fewer
// consents than limit, or none, while next_cursor is not empty.
func (a *API) reportNoProof(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit := optin.DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			badRequest(w, "limit must be a positive number")
			return
		}
		limit = optin.PageSize(n)
	}
	ans := noProofJSON{Consents: []noProofRow{}}
	cursor, read := q.Get("cursor"), 0
	for {
		page, err := a.store.Subjects(r.Context(), cursor, optin.MaxPageSize)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		read += len(page.Subjects)
		for _, v := range page.Subjects {
			for _, c := range v.Consents {
				if c.Gaps != 0 && (c.Status == optin.StatusGranted || c.Status == optin.StatusPending) {
					ans.Consents = append(ans.Consents, noProofRow{Email: v.Address.String(), Purpose: c.Purpose,
						Status: c.Status, Source: c.Source, GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt, Missing: c.Gaps.Names()})
				}
			}
		}
		cursor = page.NextCursor
		if cursor == "" || len(ans.Consents) >= limit || read >= reportBudget {
			break
		}
	}
	ans.NextCursor = cursor
	writeJSON(w, http.StatusOK, ans)
}
