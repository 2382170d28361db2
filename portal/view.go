package portal

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"optinproxy/internal/export"
	"optinproxy/optin"
)

// historyRows caps the rows of one history table: the download has them
// all.
const historyRows = 20

// stamp is a time as the pages show it, with its machine form for <time>.
type stamp struct{ ISO, Text string }

func newStamp(t time.Time) *stamp {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &stamp{ISO: t.Format(time.RFC3339), Text: t.Format("2006-01-02 15:04 UTC")}
}

// row is one line of a history table.
type row struct {
	When     *stamp
	What     string
	Via      string
	sortTime time.Time
}

// purposeView is one purpose on the portal: its state for the subject,
// what the subject may do about it, and its history.
type purposeView struct {
	Name, Title, Description string
	Basis                    string
	State, StateText         string
	Since, Expires           *stamp
	// Changeable purposes (marketing) get a form; Withdraw says whether
	// its button withdraws or grants.
	Changeable, Withdraw bool
	// Blocked: a suppression stops this purpose's mail whatever its state.
	Blocked  bool
	History  []row
	Older    int
	Messages string
}

// suppressionView is one block on the address, in words.
type suppressionView struct {
	Text  string
	Since *stamp
}

// view is the portal of one subject.
type view struct {
	Address        string
	Purposes       []purposeView
	Suppressions   []suppressionView
	AddressHistory []row
	AddressOlder   int
}

// categoryOrder lists marketing, which the subject can change, first.
var categoryOrder = map[optin.Category]int{optin.CategoryMarketing: 0, optin.CategoryTransactional: 1, optin.CategoryLegal: 2}

// buildView turns what is stored into what the page shows, in t's words.
func buildView(t text, ex *export.Export, purposes optin.Purposes, now time.Time) view {
	v := view{Address: ex.Email}
	for _, s := range ex.Suppressions {
		v.Suppressions = append(v.Suppressions, suppressionView{Text: t.Suppressions[s.Reason], Since: newStamp(s.CreatedAt)})
	}
	consents := map[string]*optin.Consent{}
	for i := range ex.Consents {
		consents[ex.Consents[i].Purpose] = &ex.Consents[i]
	}
	byPurpose := map[string][]optin.Event{}
	var others []optin.Event
	for _, e := range ex.Events {
		if e.Purpose == "" {
			others = append(others, e)
		} else {
			byPurpose[e.Purpose] = append(byPurpose[e.Purpose], e)
		}
	}
	for _, p := range purposes {
		v.Purposes = append(v.Purposes, purposeOf(t, p, consents[p.Name], byPurpose[p.Name], len(ex.Suppressions) > 0, now))
	}
	slices.SortFunc(v.Purposes, func(a, b purposeView) int {
		pa, pb := purposes[a.Name], purposes[b.Name]
		return cmp.Or(cmp.Compare(categoryOrder[pa.Category], categoryOrder[pb.Category]), cmp.Compare(a.Name, b.Name))
	})
	var rows []row
	for _, e := range others {
		rows = append(rows, addressRow(t, e))
	}
	v.AddressHistory, v.AddressOlder = newestFirst(rows)
	return v
}

func purposeOf(t text, p optin.Purpose, c *optin.Consent, events []optin.Event, suppressed bool, now time.Time) purposeView {
	pv := purposeView{Name: p.Name, Title: title(p), Description: p.Description, Basis: t.Bases[p.Basis],
		State: state(c, now), Changeable: p.Category == optin.CategoryMarketing}
	pv.StateText = t.States[pv.State]
	if c != nil {
		pv.Since = newStamp(c.UpdatedAt)
		if pv.State == "granted" || pv.State == "pending" || pv.State == "expired" {
			pv.Expires = newStamp(c.ExpiresAt)
		}
	}
	// What the one button does: stop what may send mail now (or, for a
	// legitimate interest, object before anything is recorded); else
	// agree.
	pv.Withdraw = pv.State == "granted" || pv.State == "pending" ||
		(pv.State == "none" && p.Basis == optin.BasisLegitimateInterests)
	pv.Blocked = pv.Changeable && suppressed
	var rows []row
	var sent, held int
	var last time.Time
	for _, e := range events {
		switch e.Type {
		case optin.EventMessageRelayed:
			sent++
		case optin.EventMessageBlocked:
			held++
		default:
			rows = append(rows, row{When: newStamp(e.Time), What: eventWords(t, e.Type), Via: sourceWords(t, e), sortTime: e.Time})
			continue
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	pv.History, pv.Older = newestFirst(rows)
	if sent+held > 0 {
		pv.Messages = fmt.Sprintf(t.Messages, sent, held, newStamp(last).Text)
	}
	return pv
}

// title names a purpose to the subject: its description, else its
// configured name.
func title(p optin.Purpose) string {
	if p.Description != "" {
		return p.Description
	}
	return p.Name
}

// state is the subject's standing for a purpose in one word: granted,
// pending, withdrawn, expired (also a grant past its end the sweeper has
// not marked yet) or none.
func state(c *optin.Consent, now time.Time) string {
	switch {
	case c == nil:
		return "none"
	case c.Status == optin.StatusGranted && !c.Active(now):
		return "expired"
	}
	return string(c.Status)
}

func eventWords(t text, typ optin.EventType) string {
	if s, ok := t.Events[typ]; ok {
		return s
	}
	return string(typ)
}

// sourceWords names where a consent change came from.
func sourceWords(t text, e optin.Event) string {
	var d optin.ConsentDetails
	if json.Unmarshal(e.Details, &d) != nil || d.Source == "" {
		return ""
	}
	if s, ok := t.Sources[d.Source]; ok {
		return s
	}
	return d.Source
}

// addressRow words an event about the address as a whole.
func addressRow(t text, e optin.Event) row {
	r := row{When: newStamp(e.Time), What: eventWords(t, e.Type), sortTime: e.Time}
	var d struct {
		NewEmail string                  `json:"new_email"`
		OldEmail string                  `json:"old_email"`
		Reason   optin.SuppressionReason `json:"reason"`
	}
	if json.Unmarshal(e.Details, &d) != nil {
		return r
	}
	switch {
	case d.NewEmail != "":
		r.What = fmt.Sprintf(t.MovedTo, d.NewEmail)
	case d.OldEmail != "":
		r.What = fmt.Sprintf(t.MovedFrom, d.OldEmail)
	case d.Reason != "" && t.Suppressions[d.Reason] != "":
		r.What += ": " + t.Suppressions[d.Reason]
	}
	return r
}

// newestFirst orders rows newest first and keeps historyRows of them,
// returning how many older ones it left out.
func newestFirst(rows []row) ([]row, int) {
	slices.SortStableFunc(rows, func(a, b row) int { return b.sortTime.Compare(a.sortTime) })
	if len(rows) > historyRows {
		return rows[:historyRows], len(rows) - historyRows
	}
	return rows, 0
}
