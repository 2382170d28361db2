package redisstore

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

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

// Events pages through the log oldest first. Without a subject it walks
// the global feed (one entry per write, in the order of writes); with
// one, the subject's two lists, merged by time. Type and
// Since (inclusive) are applied while paging: a page is full unless it is
// the last, or scanBudget events were examined; NextCursor is "" only on
// the last page. A cursor that does not decode is an error wrapping
// optin.ErrBadInput.
func (s *Store) Events(ctx context.Context, q optin.EventQuery) (optin.EventPage, error) {
	pg := &pager{s: s, q: q, limit: optin.PageSize(q.Limit), subjects: map[string]*pagedSubject{}}
	var err error
	if q.Subject.IsZero() {
		err = pg.feed(ctx)
	} else {
		err = pg.chains(ctx)
	}
	if err != nil {
		return optin.EventPage{}, err
	}
	return pg.page, nil
}

// feedSkew is how far ahead of the Redis server's clock a proxy's may
// be for Events with a Since to find every event: the feed is entered at
// Since less this much.
const feedSkew = time.Hour

// pager collects one page of events.
type pager struct {
	s        *Store
	q        optin.EventQuery
	limit    int
	subjects map[string]*pagedSubject
	examined int
	page     optin.EventPage
}

// pagedSubject is what a page needs of a subject: its key and address
// to open its events, and where its receipt list starts.
type pagedSubject struct {
	key        []byte
	addr       optin.Address
	pruned     int64
	prunedHead string
	// keyFrom is where the events key opens start (record.keyFrom).
	keyFrom [2]int64
}

func (pg *pager) filtered() bool { return pg.q.Type != "" || !pg.q.Since.IsZero() }

// batch is how many events to read next: one more than the page needs
// (to know whether another page follows) or, with a filter, more.
func (pg *pager) batch() int64 {
	n := pg.limit - len(pg.page.Events) + 1
	if pg.filtered() {
		n = max(n, filterBatch)
	}
	return int64(n)
}

func (pg *pager) full() bool { return len(pg.page.Events) == pg.limit }

func (pg *pager) matches(e *optin.SealedEvent) bool {
	return (pg.q.Type == "" || e.Type == pg.q.Type) && !e.Time.Before(pg.q.Since)
}

// take considers one stored event, at index i of its subject's chain c
// (0 main, 1 receipts, absolute), adding it to the page when it
// matches.
func (pg *pager) take(se optin.SealedEvent, c int, i int64) error {
	pg.examined++
	if !pg.matches(&se) {
		return nil
	}
	sub := pg.subjects[se.SubjectID]
	var key []byte
	var a optin.Address
	if sub != nil {
		key, a = keyAt(sub.key, sub.keyFrom, c, i), sub.addr
	}
	e, err := optin.Open(key, se)
	if err != nil {
		return fmt.Errorf("redisstore: events: %w", err)
	}
	if se.Receipt && !e.Erased {
		e.Subject = a
	}
	pg.page.Events = append(pg.page.Events, e)
	return nil
}

// readSubjects reads the keys, addresses and receipt offsets of the
// subjects not read yet, in one round trip.
func (pg *pager) readSubjects(ctx context.Context, sids []string) error {
	s := pg.s
	var todo []string
	for _, sid := range sids {
		if _, ok := pg.subjects[sid]; !ok && !contains(todo, sid) {
			todo = append(todo, sid)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cmds := make([]*redis.SliceCmd, len(todo))
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range todo {
			cmds[i] = p.HMGet(ctx, s.keys.state(sid), fieldWrappedKey, fieldSealedAddress, fieldPruned, fieldPrunedHead, fieldKeyFrom)
		}
		return nil
	})
	if err = pipeErr(piped, err); err != nil {
		return wrap("events", err)
	}
	for i, sid := range todo {
		vals := cmds[i].Val()
		str := func(j int) string { v, _ := vals[j].(string); return v }
		key, a, err := s.subjectKey(sid, str(0), str(1))
		if err != nil {
			return fmt.Errorf("redisstore: events: %w", err)
		}
		sub := &pagedSubject{key: key, addr: a, prunedHead: str(3)}
		sub.pruned, _ = strconv.ParseInt(str(2), 10, 64)
		if sub.keyFrom, err = parseKeyFrom(str(4)); err != nil {
			return fmt.Errorf("redisstore: events: %w: subject %s: %s %v", optin.ErrCorrupt, sid, fieldKeyFrom, err)
		}
		pg.subjects[sid] = sub
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// chains pages over one subject's two lists, merged by time. The cursor
// is "E.R": the next index in the main list and the next absolute index
// in the receipt chain.
func (pg *pager) chains(ctx context.Context) error {
	s := pg.s
	var next [2]int64 // main, receipts (absolute)
	if c := pg.q.Cursor; c != "" {
		e, r, ok := strings.Cut(c, ".")
		var err1, err2 error
		next[0], err1 = strconv.ParseInt(e, 10, 64)
		if ok {
			next[1], err2 = strconv.ParseInt(r, 10, 64)
		}
		if err1 != nil || err2 != nil || next[0] < 0 || next[1] < 0 {
			return fmt.Errorf("redisstore: events: %w: cursor %q", optin.ErrBadInput, c)
		}
	}
	sid := s.sid(pg.q.Subject)
	if err := pg.readSubjects(ctx, []string{sid}); err != nil {
		return err
	}
	sub := pg.subjects[sid]
	sub.addr = pg.q.Subject
	next[1] = max(next[1], sub.pruned)
	var (
		buf  [2][]optin.SealedEvent
		done [2]bool
	)
	fill := func() error {
		n := pg.batch()
		var cmds [2]*redis.StringSliceCmd
		rstart := next[1] - sub.pruned + int64(len(buf[1]))
		piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if len(buf[0]) == 0 && !done[0] {
				cmds[0] = p.LRange(ctx, s.keys.events(sid), next[0], next[0]+n-1)
			}
			if len(buf[1]) == 0 && !done[1] {
				cmds[1] = p.LRange(ctx, s.keys.receipts(sid), max(0, rstart-1), rstart+n-1)
			}
			return nil
		})
		if err = pipeErr(piped, err); err != nil {
			return wrap("events", err)
		}
		if cmds[0] != nil {
			raws := cmds[0].Val()
			done[0] = int64(len(raws)) < n
			for _, raw := range raws {
				se, err := decodeEvent(sid, raw)
				if err != nil {
					return fmt.Errorf("redisstore: events: %w", err)
				}
				buf[0] = append(buf[0], se)
			}
		}
		if cmds[1] != nil {
			raws := cmds[1].Val()
			prev := hexHash(sub.prunedHead)
			if rstart > 0 && len(raws) > 0 {
				prev, raws = hexHash(receiptTailHash(raws[0])), raws[1:]
			}
			done[1] = int64(len(raws)) < n
			for _, raw := range raws {
				se, err := decodeReceipt(sid, raw, prev, s.names.resolver(ctx, s))
				if err != nil {
					return fmt.Errorf("redisstore: events: %w", err)
				}
				buf[1] = append(buf[1], se)
				prev = se.Hash
			}
		}
		return nil
	}
	for {
		if (len(buf[0]) == 0 && !done[0]) || (len(buf[1]) == 0 && !done[1]) {
			if err := fill(); err != nil {
				return err
			}
		}
		if len(buf[0]) == 0 && len(buf[1]) == 0 {
			return nil // both chains read to their ends
		}
		if pg.full() || pg.examined >= scanBudget {
			pg.page.NextCursor = fmt.Sprintf("%d.%d", next[0], next[1])
			return nil
		}
		c := 1
		if len(buf[1]) == 0 || len(buf[0]) > 0 && !buf[1][0].Time.Before(buf[0][0].Time) {
			c = 0
		}
		se := buf[c][0]
		buf[c] = buf[c][1:]
		at := next[c]
		next[c]++
		if err := pg.take(se, c, at); err != nil {
			return err
		}
	}
}

// streamID is the form of a stream entry id.
var streamID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// feed pages over the global feed: one entry per write, listing the
// events it appended in the order of the changes. The cursor is "ID/K":
// K references of entry ID were taken, and every entry before it. Schema
// version 1's cursor, an entry id alone, goes on after that entry.
func (pg *pager) feed(ctx context.Context) error {
	s := pg.s
	pos, took := "-", 0
	if !pg.q.Since.IsZero() {
		// The feed's ids are the server's clock at each write, and no
		// event is written before its time by more than the skew between
		// the proxy's clock and Redis's: a first page starts there, not
		// at the start of the log.
		if ms := pg.q.Since.Add(-feedSkew).UnixMilli(); ms > 0 {
			pos = strconv.FormatInt(ms, 10) + "-0"
		}
	}
	if c := pg.q.Cursor; c != "" {
		id, k, slash := strings.Cut(c, "/")
		n, err := strconv.Atoi(k)
		switch {
		case !streamID.MatchString(id) || slash && (err != nil || n < 0):
			return fmt.Errorf("redisstore: events: %w: cursor %q", optin.ErrBadInput, c)
		case slash:
			pos, took = id, n
		default:
			pos, took = id, 1<<30
		}
	}
	for {
		n := pg.batch()
		msgs, err := s.rdb.XRangeN(ctx, s.keys.feed(), pos, "+", n).Result()
		if err != nil {
			return wrap("events", err)
		}
		type at struct {
			ref
			entry string
			k     int
		}
		var todo []at
		for _, m := range msgs {
			rs, err := entryRefs(m)
			if err != nil {
				return err
			}
			for k, r := range rs {
				if m.ID == pos && k < took {
					continue
				}
				todo = append(todo, at{r, m.ID, k})
			}
		}
		for len(todo) > 0 {
			chunk := todo[:min(len(todo), int(pg.batch()))]
			rs := make([]ref, len(chunk))
			for i, c := range chunk {
				rs[i] = c.ref
			}
			events, err := pg.fetch(ctx, rs)
			if err != nil {
				return err
			}
			for i, se := range events {
				if pg.full() || pg.examined >= scanBudget {
					pg.page.NextCursor = fmt.Sprintf("%s/%d", chunk[i].entry, chunk[i].k)
					return nil
				}
				if se != nil {
					c := 0
					if chunk[i].chain == chainReceipt {
						c = 1
					}
					if err := pg.take(*se, c, chunk[i].index); err != nil {
						return err
					}
				}
			}
			todo = todo[len(chunk):]
		}
		if int64(len(msgs)) < n {
			return nil // the end of the feed
		}
		pos, took = msgs[len(msgs)-1].ID, 1<<30
	}
}

// entryRefs reads a feed entry's references: version 2's packed ones,
// or version 1's subject and index.
func entryRefs(m redis.XMessage) ([]ref, error) {
	if packed, ok := m.Values[feedRefs].(string); ok {
		rs, ok := refs(packed)
		if !ok {
			return nil, fmt.Errorf("redisstore: events: %w: feed entry %s", optin.ErrCorrupt, m.ID)
		}
		return rs, nil
	}
	sid, _ := m.Values[feedFieldSubject].(string)
	idx, err := strconv.ParseInt(fmt.Sprint(m.Values[feedFieldIndex]), 10, 64)
	if sid == "" || err != nil {
		return nil, fmt.Errorf("redisstore: events: %w: feed entry %s", optin.ErrCorrupt, m.ID)
	}
	return []ref{{sid: sid, chain: chainMain, index: idx}}, nil
}

// fetch reads the referenced events in order, with what is needed to
// open them, in two round trips: the subjects not read yet, then the
// events (a receipt with the one before it, for its prev). A nil entry
// is an event no longer there (a pruned receipt).
func (pg *pager) fetch(ctx context.Context, rs []ref) ([]*optin.SealedEvent, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	s := pg.s
	sids := make([]string, len(rs))
	for i, r := range rs {
		sids[i] = r.sid
	}
	if err := pg.readSubjects(ctx, sids); err != nil {
		return nil, err
	}
	cmds := make([]*redis.StringSliceCmd, len(rs))
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range rs {
			if r.chain == chainMain {
				cmds[i] = p.LRange(ctx, s.keys.events(r.sid), r.index, r.index)
				continue
			}
			at := r.index - pg.subjects[r.sid].pruned
			if at >= 0 {
				cmds[i] = p.LRange(ctx, s.keys.receipts(r.sid), max(0, at-1), at)
			}
		}
		return nil
	})
	if err = pipeErr(piped, err); err != nil {
		return nil, wrap("events", err)
	}
	out := make([]*optin.SealedEvent, len(rs))
	for i, r := range rs {
		if cmds[i] == nil {
			continue
		}
		raws := cmds[i].Val()
		var se optin.SealedEvent
		switch {
		case r.chain == chainMain && len(raws) == 1:
			se, err = decodeEvent(r.sid, raws[0])
		case r.chain == chainReceipt && len(raws) == 2:
			se, err = decodeReceipt(r.sid, raws[1], hexHash(receiptTailHash(raws[0])), s.names.resolver(ctx, s))
		case r.chain == chainReceipt && len(raws) == 1 && r.index == pg.subjects[r.sid].pruned:
			se, err = decodeReceipt(r.sid, raws[0], hexHash(pg.subjects[r.sid].prunedHead), s.names.resolver(ctx, s))
		default:
			continue // not (or no longer) in the list
		}
		if err != nil {
			return nil, fmt.Errorf("redisstore: events: %w", err)
		}
		out[i] = &se
	}
	return out, nil
}
