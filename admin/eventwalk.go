package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"optinproxy/optin"
)

// The no-basis and affected reports read the event log (receipts
// included) through Store.Events with a type and a since, in store pages.
// Neither store seeks by time, so a walk reads the log from its start;
// each report page is bounded (walkEvents) and ends with a cursor.

// window is a report's time window: Since inclusive, Until exclusive.
type window struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

func (w window) holds(t time.Time) bool { return !t.Before(w.Since) && t.Before(w.Until) }

// parseWindow reads ?since= and ?until= (RFC 3339). Without them the
// window is the last fallback before now, or, when fallback is 0, both
// are required. false when it answered 400.
func (a *API) parseWindow(w http.ResponseWriter, q url.Values, fallback time.Duration) (window, bool) {
	var win window
	now := a.opts.Now().UTC()
	for _, f := range []struct {
		name string
		to   *time.Time
		def  time.Time
	}{{"since", &win.Since, now.Add(-fallback)}, {"until", &win.Until, now}} {
		s := q.Get(f.name)
		if s == "" {
			if fallback == 0 {
				badRequest(w, f.name+" is required: an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
				return window{}, false
			}
			*f.to = f.def
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			badRequest(w, f.name+" must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
			return window{}, false
		}
		*f.to = t.UTC()
	}
	if !win.Since.Before(win.Until) {
		badRequest(w, "since must be before until")
		return window{}, false
	}
	return win, true
}

// walkCursor is where an event report goes on: its phase (a report may
// walk more than one event type), its window (so that a default window
// does not move between pages) and the store's cursor. Its text form is
// "phase~since~until~store", times in Unix nanoseconds.
type walkCursor struct {
	phase string
	win   window
	store string
}

func (c walkCursor) String() string {
	return fmt.Sprintf("%s~%d~%d~%s", c.phase, c.win.Since.UnixNano(), c.win.Until.UnixNano(), c.store)
}

// parseWalkCursor reads a cursor of one of phases.
func parseWalkCursor(s string, phases ...string) (walkCursor, error) {
	f := strings.SplitN(s, "~", 4)
	bad := fmt.Errorf("%w: cursor %q is not one of this report's", optin.ErrBadInput, s)
	if len(f) != 4 {
		return walkCursor{}, bad
	}
	since, err1 := strconv.ParseInt(f[1], 10, 64)
	until, err2 := strconv.ParseInt(f[2], 10, 64)
	ok := false
	for _, p := range phases {
		ok = ok || f[0] == p
	}
	if err1 != nil || err2 != nil || !ok || since >= until {
		return walkCursor{}, bad
	}
	return walkCursor{phase: f[0], win: window{time.Unix(0, since).UTC(), time.Unix(0, until).UTC()}, store: f[3]}, nil
}

// reportCalls bounds the store pages one report page reads: each
// examines up to the store's own budget of events (100,000), so a report
// page over a log with few events in its window still answers in time.
const reportCalls = 10

// walkBudget is what one report page has used of its bounds, over every
// walk it makes.
type walkBudget struct {
	calls, visited int
}

func (b *walkBudget) spent() bool { return b.calls >= reportCalls || b.visited >= reportBudget }

// walkEvents pages through the events of type typ ("" for every type)
// from the store cursor c.store, and calls visit for each one in c.win,
// until the log ends (it returns ""), the budget is spent (reportCalls
// store pages, or reportBudget events in the window), or full reports
// that the report page holds enough. It returns the store cursor to go
// on from. Whole store pages are visited, so that cursor is never inside
// one. It reads at least one store page, so that "" always means the end.
func (a *API) walkEvents(ctx context.Context, typ optin.EventType, c walkCursor, b *walkBudget, full func() bool, visit func(e *optin.Event)) (string, error) {
	cursor := c.store
	for first := true; first || !b.spent() && !full(); first = false {
		b.calls++
		page, err := a.store.Events(ctx, optin.EventQuery{Type: typ, Since: c.win.Since, Cursor: cursor, Limit: optin.MaxPageSize})
		if err != nil {
			return "", err
		}
		for i := range page.Events {
			if e := &page.Events[i]; c.win.holds(e.Time) {
				b.visited++
				visit(e)
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return cursor, nil
}

// startCursor is the first page's cursor, or the one the client sent;
// false when it answered 400.
func (a *API) startCursor(w http.ResponseWriter, q url.Values, first string, fallback time.Duration, phases ...string) (walkCursor, bool) {
	if s := q.Get("cursor"); s != "" {
		c, err := parseWalkCursor(s, phases...)
		if err != nil {
			badRequest(w, err.Error())
			return walkCursor{}, false
		}
		return c, true
	}
	win, ok := a.parseWindow(w, q, fallback)
	return walkCursor{phase: first, win: win}, ok
}
