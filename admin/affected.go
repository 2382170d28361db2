package admin

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"optinproxy/optin"
)

// affectedRow is one subject of the breach report, within one report
// page: what happened to it in the window, by event type.
type affectedRow struct {
	Email string `json:"email"`
	// Kinds counts its events by type: message.relayed (mail it was
	// sent) and the events of its main chain (its records changed).
	Kinds map[optin.EventType]int `json:"kinds"`
	First time.Time               `json:"first"`
	Last  time.Time               `json:"last"`
}

type affectedJSON struct {
	window
	Subjects []affectedRow `json:"subjects"`
	// Erased counts events of subjects erased since, who cannot be named
	// (nor reached).
	Erased     int    `json:"erased"`
	NextCursor string `json:"next_cursor"`
}

// phaseAffected is the affected report's only walk: every event.
const phaseAffected = "all"

// reportAffected is the breach report (GDPR art. 33 and 34): every
// subject that was mailed (message.relayed) or whose records changed (an
// event of its main chain) from ?since= to ?until= (both required), with
// counts per kind and the first and last time, so that whom to notify is
// known within the 72 hours. Blocked receipts are left out: nothing was
// sent and nothing changed. Paged and bounded like the no-basis report; a
// subject may appear on more than one page, each with its own counts.
func (a *API) reportAffected(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, ok := reportLimit(w, q)
	if !ok {
		return
	}
	c, ok := a.startCursor(w, q, phaseAffected, 0, phaseAffected)
	if !ok {
		return
	}
	ans := affectedJSON{window: c.win}
	rows := map[string]*affectedRow{}
	next, err := a.walkEvents(r.Context(), "", c, new(walkBudget), func() bool { return len(rows) >= limit }, func(e *optin.Event) {
		if e.Type == optin.EventMessageBlocked {
			return
		}
		if e.Erased {
			ans.Erased++
			return
		}
		email := e.Subject.String()
		row := rows[email]
		if row == nil {
			row = &affectedRow{Email: email, Kinds: map[optin.EventType]int{}, First: e.Time, Last: e.Time}
			rows[email] = row
		}
		row.Kinds[e.Type]++
		if e.Time.Before(row.First) {
			row.First = e.Time
		}
		if e.Time.After(row.Last) {
			row.Last = e.Time
		}
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if next != "" {
		c.store = next
		ans.NextCursor = c.String()
	}
	ans.Subjects = make([]affectedRow, 0, len(rows))
	for _, row := range rows {
		ans.Subjects = append(ans.Subjects, *row)
	}
	slices.SortFunc(ans.Subjects, func(x, y affectedRow) int { return cmp.Compare(x.Email, y.Email) })
	writeJSON(w, http.StatusOK, ans)
}
