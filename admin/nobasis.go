package admin

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"optinproxy/optin"
)

// noBasisRow is one subject and purpose of the no-basis report: the mail
// someone tried to send it without a basis, within one report page.
type noBasisRow struct {
	Email   string `json:"email"`
	Purpose string `json:"purpose"`
	// Reasons are the block reasons of its receipts, sorted.
	Reasons []optin.Reason `json:"reasons"`
	// Attempts counts the blocked decisions; RelayedAnyway how many of
	// them went out all the same, because policy.mode was monitor.
	Attempts      int       `json:"attempts"`
	RelayedAnyway int       `json:"relayed_anyway"`
	LastAttempt   time.Time `json:"last_attempt"`
}

type noBasisJSON struct {
	window
	Subjects []noBasisRow `json:"subjects"`
	// Erased counts blocked decisions on subjects erased since: their
	// receipts can no longer be read, so they are not named.
	Erased     int    `json:"erased"`
	NextCursor string `json:"next_cursor"`
}

// The no-basis report walks message.blocked receipts first, then
// message.relayed ones: in policy.mode monitor a blocked decision is
// relayed all the same, and its receipt is a message.relayed one that
// says decision block, mode monitor.
const (
	phaseBlocked = "blocked"
	phaseRelayed = "relayed"
)

// reportNoBasis lists the subjects someone tried to mail without a basis
// for processing: per subject and purpose, the reasons of the blocked
// decisions in ?since= to ?until= (default the last 30 days), how many,
// how many went out anyway in monitor mode, and the last. A page reads
// up to reportCalls store pages of receipts in all; a subject and
// purpose may appear on more than one page, each with its own counts:
// the CLI adds them up. Until next_cursor is "", there is more.
func (a *API) reportNoBasis(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, ok := reportLimit(w, q)
	if !ok {
		return
	}
	c, ok := a.startCursor(w, q, phaseBlocked, 30*24*time.Hour, phaseBlocked, phaseRelayed)
	if !ok {
		return
	}
	ans := noBasisJSON{window: c.win}
	type key struct{ email, purpose string }
	rows := map[key]*noBasisRow{}
	full := func() bool { return len(rows) >= limit }
	visit := func(e *optin.Event) {
		if e.Erased {
			if e.Type == optin.EventMessageBlocked {
				ans.Erased++
			}
			return // a relayed one cannot tell whether it was blocked
		}
		var d optin.ReceiptDetails
		if json.Unmarshal(e.Details, &d) != nil || d.Decision != "block" {
			return
		}
		k := key{e.Subject.String(), e.Purpose}
		row := rows[k]
		if row == nil {
			row = &noBasisRow{Email: k.email, Purpose: k.purpose}
			rows[k] = row
		}
		row.Attempts++
		if e.Type == optin.EventMessageRelayed {
			row.RelayedAnyway++
		}
		if !slices.Contains(row.Reasons, d.Reason) {
			row.Reasons = append(row.Reasons, d.Reason)
		}
		if e.Time.After(row.LastAttempt) {
			row.LastAttempt = e.Time
		}
	}
	var budget walkBudget
	for {
		typ := optin.EventMessageBlocked
		if c.phase == phaseRelayed {
			typ = optin.EventMessageRelayed
		}
		next, err := a.walkEvents(r.Context(), typ, c, &budget, full, visit)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		c.store = next
		if next != "" {
			ans.NextCursor = c.String()
			break
		}
		if c.phase == phaseRelayed {
			break // both walked: the last page
		}
		c.phase = phaseRelayed
		if full() || budget.spent() {
			ans.NextCursor = c.String()
			break
		}
	}
	ans.Subjects = make([]noBasisRow, 0, len(rows))
	for _, row := range rows {
		slices.Sort(row.Reasons)
		ans.Subjects = append(ans.Subjects, *row)
	}
	slices.SortFunc(ans.Subjects, func(x, y noBasisRow) int {
		return cmp.Or(cmp.Compare(x.Email, y.Email), cmp.Compare(x.Purpose, y.Purpose))
	})
	writeJSON(w, http.StatusOK, ans)
}
