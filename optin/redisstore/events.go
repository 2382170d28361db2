package redisstore

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

const (
	// scanBudget bounds the events one Events call examines, so a filter
	// that matches rarely cannot walk the whole log in one request: when
	// it runs out, the page ends early with a NextCursor to go on from.
	scanBudget = 100 * optin.MaxPageSize
	// filterBatch is how many events a filtered page reads at a time.
	filterBatch = 256
)

// streamID is the form of a stream entry id, the global feed's cursor.
var streamID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// Events pages through the log oldest first. Without a subject it walks
// the global feed (the cursor is a stream entry id); with one, the
// subject's own list (the cursor is an index in it). Type and Since
// (inclusive) are applied while paging: a page is full unless it is the
// last, or scanBudget events were examined; NextCursor is "" only on the
// last page. A cursor that does not decode is an error wrapping
// optin.ErrBadInput.
func (s *Store) Events(ctx context.Context, q optin.EventQuery) (optin.EventPage, error) {
	pg := pager{s: s, q: q, limit: optin.PageSize(q.Limit), keys: map[string][]byte{}}
	var err error
	if q.Subject.IsZero() {
		err = pg.feed(ctx)
	} else {
		err = pg.chain(ctx)
	}
	if err != nil {
		return optin.EventPage{}, err
	}
	return pg.page, nil
}

// pager collects one page of events.
type pager struct {
	s     *Store
	q     optin.EventQuery
	limit int
	// keys caches subject keys by subject id; nil when erased.
	keys     map[string][]byte
	examined int
	page     optin.EventPage
}

func (pg *pager) filtered() bool { return pg.q.Type != "" || !pg.q.Since.IsZero() }

// batch is how many events to read next: one more than the page needs
// (to know whether another page follows) or, with a filter, more.
func (pg *pager) batch() int {
	n := pg.limit - len(pg.page.Events) + 1
	if pg.filtered() {
		n = max(n, filterBatch)
	}
	return n
}

func (pg *pager) matches(e *optin.SealedEvent) bool {
	return (pg.q.Type == "" || e.Type == pg.q.Type) && !e.Time.Before(pg.q.Since)
}

// offer considers one stored event, adding it to the page when it
// matches; full reports that the page has no room for it (it is not
// consumed then).
func (pg *pager) offer(sid, raw string) (full bool, err error) {
	if len(pg.page.Events) == pg.limit {
		return true, nil
	}
	pg.examined++
	se, err := decodeEvent(sid, raw)
	if err != nil {
		return false, fmt.Errorf("redisstore: events: %w", err)
	}
	if !pg.matches(&se) {
		return false, nil
	}
	e, err := optin.Open(pg.keys[sid], se)
	if err != nil {
		return false, fmt.Errorf("redisstore: events: %w", err)
	}
	pg.page.Events = append(pg.page.Events, e)
	return false, nil
}

// chain pages over one subject's list.
func (pg *pager) chain(ctx context.Context) error {
	s := pg.s
	var start int64
	if pg.q.Cursor != "" {
		var err error
		if start, err = strconv.ParseInt(pg.q.Cursor, 10, 64); err != nil || start < 0 {
			return fmt.Errorf("redisstore: events: %w: cursor %q", optin.ErrBadInput, pg.q.Cursor)
		}
	}
	sid := s.sid(pg.q.Subject)
	for first := true; ; first = false {
		n := int64(pg.batch())
		var keyCmd *redis.StringCmd
		var listCmd *redis.StringSliceCmd
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if first {
				keyCmd = p.HGet(ctx, s.keys.state(sid), fieldKey)
			}
			listCmd = p.LRange(ctx, s.keys.events(sid), start, start+n-1)
			return nil
		})
		if err = pipeErr(cmds, err); err != nil {
			return wrap("events", err)
		}
		if first {
			if k := keyCmd.Val(); k != "" {
				pg.keys[sid] = []byte(k)
			}
		}
		raws := listCmd.Val()
		for _, raw := range raws {
			full, err := pg.offer(sid, raw)
			if err != nil {
				return err
			}
			if full {
				pg.page.NextCursor = strconv.FormatInt(start, 10)
				return nil
			}
			start++
		}
		if int64(len(raws)) < n {
			return nil // the end of the list
		}
		if pg.examined >= scanBudget {
			pg.page.NextCursor = strconv.FormatInt(start, 10)
			return nil
		}
	}
}

// feed pages over the global feed: XRANGE, then the referenced events
// and their subjects' keys in one pipelined round trip.
func (pg *pager) feed(ctx context.Context) error {
	s := pg.s
	start := "-"
	if c := pg.q.Cursor; c != "" {
		if !streamID.MatchString(c) {
			return fmt.Errorf("redisstore: events: %w: cursor %q", optin.ErrBadInput, c)
		}
		start = "(" + c
	}
	for {
		n := pg.batch()
		entries, err := s.rdb.XRangeN(ctx, s.keys.feed(), start, "+", int64(n)).Result()
		if err != nil {
			return wrap("events", err)
		}
		// Without a filter the last entry only tells that more follow.
		fetch := entries
		if !pg.filtered() && len(fetch) == n {
			fetch = fetch[:n-1]
		}
		refs := make([]feedRef, len(fetch))
		for i, en := range fetch {
			sid, _ := en.Values[feedFieldSubject].(string)
			idx, err := strconv.ParseInt(fmt.Sprint(en.Values[feedFieldIndex]), 10, 64)
			if sid == "" || err != nil {
				return fmt.Errorf("redisstore: events: %w: feed entry %s", optin.ErrCorrupt, en.ID)
			}
			refs[i] = feedRef{sid: sid, index: idx}
		}
		raws, err := pg.fetch(ctx, refs)
		if err != nil {
			return err
		}
		for i, en := range entries {
			if i == len(fetch) {
				pg.page.NextCursor = pg.lastID(start)
				return nil
			}
			if raws[i] == nil {
				continue // not (or no longer) in the subject's list
			}
			full, err := pg.offer(refs[i].sid, *raws[i])
			if err != nil {
				return err
			}
			if full {
				pg.page.NextCursor = pg.lastID(start)
				return nil
			}
			start = "(" + en.ID
		}
		if len(entries) < n {
			return nil // the end of the feed
		}
		if pg.examined >= scanBudget {
			pg.page.NextCursor = pg.lastID(start)
			return nil
		}
	}
}

// lastID turns an exclusive XRANGE start back into a cursor.
func (pg *pager) lastID(start string) string {
	if start == "-" {
		return ""
	}
	return start[1:]
}

// fetch reads the referenced events, and the keys of subjects not seen
// yet, in one round trip; a nil entry is an event the list lacks.
func (pg *pager) fetch(ctx context.Context, refs []feedRef) ([]*string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	s := pg.s
	events := make([]*redis.StringCmd, len(refs))
	keyCmds := map[string]*redis.StringCmd{}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ref := range refs {
			events[i] = p.LIndex(ctx, s.keys.events(ref.sid), ref.index)
			if _, known := pg.keys[ref.sid]; !known && keyCmds[ref.sid] == nil {
				keyCmds[ref.sid] = p.HGet(ctx, s.keys.state(ref.sid), fieldKey)
			}
		}
		return nil
	})
	if err = pipeErr(cmds, err); err != nil {
		return nil, wrap("events", err)
	}
	for sid, cmd := range keyCmds {
		if k := cmd.Val(); k != "" {
			pg.keys[sid] = []byte(k)
		} else {
			pg.keys[sid] = nil
		}
	}
	raws := make([]*string, len(refs))
	for i, cmd := range events {
		if cmd.Err() == nil {
			v := cmd.Val()
			raws[i] = &v
		}
	}
	return raws, nil
}
