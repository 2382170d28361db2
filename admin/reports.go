package admin

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"optinproxy/optin"
)

// reportBudget bounds the subjects (or events) one report page reads, so
// that a store with few findings among many subjects answers in pages
// too.
const reportBudget = 10_000

// reportLimit reads ?limit= (default optin.DefaultPageSize, capped at
// optin.MaxPageSize); false when it answered 400.
func reportLimit(w http.ResponseWriter, q url.Values) (int, bool) {
	limit := optin.DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			badRequest(w, "limit must be a positive number")
			return 0, false
		}
		limit = optin.PageSize(n)
	}
	return limit, true
}

// walkSubjects pages through Store.Subjects from cursor and calls visit
// for each subject, until the store has no more, reportBudget subjects
// were read, or full reports that the page holds enough. It returns the
// cursor to go on from, "" when every subject was read. An error of
// visit stops the walk and is returned.
func (a *API) walkSubjects(ctx context.Context, cursor string, full func() bool, visit func(v *optin.SubjectView) error) (string, error) {
	read := 0
	for {
		page, err := a.store.Subjects(ctx, cursor, optin.MaxPageSize)
		if err != nil {
			return "", err
		}
		read += len(page.Subjects)
		for i := range page.Subjects {
			if err := visit(&page.Subjects[i]); err != nil {
				return "", err
			}
		}
		cursor = page.NextCursor
		if cursor == "" || full() || read >= reportBudget {
			return cursor, nil
		}
	}
}

// current reports whether a consent counts in the reports on consents in
// force: granted or pending.
func current(c *optin.Consent) bool {
	return c.Status == optin.StatusGranted || c.Status == optin.StatusPending
}

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
// something: imported without a grant time or a policy version,
// or given with no evidence at all. ?cursor=&limit= page through the
// subjects; a page reads up to reportBudget subjects and may hold fewer
// consents than limit, or none, while next_cursor is not empty.
func (a *API) reportNoProof(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, ok := reportLimit(w, q)
	if !ok {
		return
	}
	ans := noProofJSON{Consents: []noProofRow{}}
	next, err := a.walkSubjects(r.Context(), q.Get("cursor"), func() bool { return len(ans.Consents) >= limit }, func(v *optin.SubjectView) error {
		for _, c := range v.Consents {
			if c.Gaps != 0 && current(&c) {
				ans.Consents = append(ans.Consents, noProofRow{Email: v.Address.String(), Purpose: c.Purpose,
					Status: c.Status, Source: c.Source, GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt, Missing: c.Gaps.Names()})
			}
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
