package filestore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// scanBudget bounds the events one Events call examines, so a filter that
// matches rarely cannot hold a read transaction over the whole log: when
// it runs out, the page ends early with a NextCursor to go on from.
const scanBudget = 100 * optin.MaxPageSize

// Events pages through the log oldest first: without a subject in the
// order the events were stored (the cursor is the last global sequence
// examined), with one its two chains merged by time (the cursor "E.R",
// the next index in each; a bare number, the older form, is a global
// sequence). Since selects events whose time is at or after it. A page
// may hold fewer than the limit and still have a NextCursor when a filter
// matched rarely; NextCursor is "" only on the last page. A cursor that
// does not decode is an error wrapping optin.ErrBadInput.
func (s *Store) Events(ctx context.Context, q optin.EventQuery) (optin.EventPage, error) {
	var page optin.EventPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		sc := &scan{s: s, tx: tx, q: q, limit: optin.PageSize(q.Limit), subjects: map[string]*opened{}}
		var err error
		if q.Subject.IsZero() {
			err = sc.log(q.Cursor)
		} else {
			err = sc.chains(s.keys.Get().SubjectID(q.Subject), q.Cursor)
		}
		page = sc.page
		return err
	})
	if err != nil {
		return optin.EventPage{}, err
	}
	return page, nil
}

// scan collects one page of events.
type scan struct {
	s     *Store
	tx    *bolt.Tx
	q     optin.EventQuery
	limit int
	// subjects caches subject keys and addresses by subject id.
	subjects map[string]*opened
	examined int
	page     optin.EventPage
}

// opened is what opening a subject's events needs.
type opened struct {
	key  []byte
	addr optin.Address
	// from is the sequence the key opens events from (record.KeyFrom).
	from uint64
}

// keyAt is the key that opens the subject's event at seq.
func (o *opened) keyAt(seq uint64) []byte {
	if seq < o.from {
		return nil
	}
	return o.key
}

func badCursor(c string) error {
	return fmt.Errorf("filestore: %w: event cursor %q", optin.ErrBadInput, c)
}

// log walks the whole log after the cursor.
func (sc *scan) log(cursor string) error {
	var after uint64
	if cursor != "" {
		var err error
		if after, err = strconv.ParseUint(cursor, 10, 64); err != nil {
			return badCursor(cursor)
		}
	}
	c := sc.tx.Bucket(bucketEvents).Cursor()
	last := after
	for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		e, err := decodeEvent(seq, v)
		if err != nil {
			return err
		}
		if sc.match(e) && len(sc.page.Events) == sc.limit {
			sc.page.NextCursor = formatSeq(last)
			return nil
		}
		if err := sc.offer(seq, e); err != nil {
			return err
		}
		last = seq
		if sc.examined >= scanBudget {
			sc.page.NextCursor = formatSeq(seq)
			return nil
		}
	}
	return nil
}

// chains walks one subject's two chains from the cursor, merged by time.
func (sc *scan) chains(sid, cursor string) error {
	rec, err := loadRecord(sc.tx, sid)
	if err != nil || rec == nil {
		return err // nothing stored: an empty page
	}
	next := [2]uint64{0, rec.Pruned}
	ends := [2]uint64{rec.Events, rec.Receipts}
	buckets := [2]*bolt.Bucket{sc.tx.Bucket(bucketChains), sc.tx.Bucket(bucketReceipts)}
	if cursor != "" {
		if next, err = sc.chainCursor(sid, cursor, buckets, next, ends); err != nil {
			return err
		}
	}
	var heads [2]*optin.SealedEvent
	var seqs [2]uint64
	for {
		for c := range 2 {
			if heads[c] == nil && next[c] < ends[c] {
				seq, err := chainSeq(buckets[c], sid, next[c])
				if err != nil {
					return err
				}
				if heads[c], err = loadEvent(sc.tx, seq); err != nil {
					return err
				}
				seqs[c] = seq
			}
		}
		if heads[0] == nil && heads[1] == nil {
			return nil
		}
		c := 1
		if heads[1] == nil || heads[0] != nil && !heads[1].Time.Before(heads[0].Time) {
			c = 0
		}
		if sc.match(heads[c]) && len(sc.page.Events) == sc.limit || sc.examined >= scanBudget {
			sc.page.NextCursor = fmt.Sprintf("%d.%d", next[0], next[1])
			return nil
		}
		if err := sc.offer(seqs[c], heads[c]); err != nil {
			return err
		}
		heads[c] = nil
		next[c]++
	}
}

// chainCursor reads an "E.R" cursor, or an older one, a global sequence:
// each chain goes on after its last event at or before it.
func (sc *scan) chainCursor(sid, cursor string, buckets [2]*bolt.Bucket, next, ends [2]uint64) ([2]uint64, error) {
	if e, r, ok := strings.Cut(cursor, "."); ok {
		ei, err1 := strconv.ParseUint(e, 10, 64)
		ri, err2 := strconv.ParseUint(r, 10, 64)
		if err1 != nil || err2 != nil {
			return next, badCursor(cursor)
		}
		return [2]uint64{ei, max(ri, next[1])}, nil
	}
	after, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		return next, badCursor(cursor)
	}
	for c := range 2 {
		var searchErr error
		n := int(ends[c] - next[c])
		first := next[c]
		next[c] = first + uint64(sort.Search(n, func(i int) bool {
			seq, err := chainSeq(buckets[c], sid, first+uint64(i))
			if err != nil {
				searchErr = err
				return true
			}
			return seq > after
		}))
		if searchErr != nil {
			return next, searchErr
		}
	}
	return next, nil
}

// offer adds e, the event at seq, to the page when it matches.
func (sc *scan) offer(seq uint64, e *optin.SealedEvent) error {
	sc.examined++
	if !sc.match(e) {
		return nil
	}
	o, err := sc.subject(e.SubjectID)
	if err != nil {
		return err
	}
	ev, err := optin.Open(o.keyAt(seq), *e)
	if err != nil {
		return err
	}
	if e.Receipt && !ev.Erased {
		ev.Subject = o.addr
	}
	sc.page.Events = append(sc.page.Events, ev)
	return nil
}

func (sc *scan) match(e *optin.SealedEvent) bool {
	return (sc.q.Type == "" || e.Type == sc.q.Type) && (sc.q.Since.IsZero() || !e.Time.Before(sc.q.Since))
}

// subject returns the subject's key and address, nil once erased.
func (sc *scan) subject(sid string) (*opened, error) {
	if o, ok := sc.subjects[sid]; ok {
		return o, nil
	}
	rec, err := loadRecord(sc.tx, sid)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: event of unknown subject %s", optin.ErrCorrupt, sid)
	}
	o := &opened{from: rec.KeyFrom}
	if o.key, o.addr, err = rec.open(sc.s.keys, sid); err != nil {
		return nil, err
	}
	sc.subjects[sid] = o
	return o, nil
}

// seqKey is the events bucket key of a global sequence.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// chainKey is the chains bucket key of a subject's i-th event.
func chainKey(sid string, i uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(sid), i)
}

// chainSeq returns the global sequence of a subject's i-th event in the
// chain index b.
func chainSeq(b *bolt.Bucket, sid string, i uint64) (uint64, error) {
	v := b.Get(chainKey(sid, i))
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: subject %s: event %d of its chain is missing", optin.ErrCorrupt, sid, i)
	}
	return binary.BigEndian.Uint64(v), nil
}

// loadEvent reads the sealed event at seq.
func loadEvent(tx *bolt.Tx, seq uint64) (*optin.SealedEvent, error) {
	v := tx.Bucket(bucketEvents).Get(seqKey(seq))
	if v == nil {
		return nil, fmt.Errorf("%w: event %d is missing", optin.ErrCorrupt, seq)
	}
	return decodeEvent(seq, v)
}

// storedEvent is an event as the events bucket keeps it: the JSON of
// optin.SealedEvent, with "r" for a receipt.
type storedEvent struct {
	optin.SealedEvent
	Receipt bool `json:"r,omitempty"`
}

func encodeEvent(e *optin.SealedEvent) []byte {
	v, err := json.Marshal(storedEvent{SealedEvent: *e, Receipt: e.Receipt})
	if err != nil {
		panic(err) // strings, times and bytes only
	}
	return v
}

func decodeEvent(seq uint64, v []byte) (*optin.SealedEvent, error) {
	var e storedEvent
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("%w: event %d: %v", optin.ErrCorrupt, seq, err)
	}
	e.SealedEvent.Receipt = e.Receipt
	return &e.SealedEvent, nil
}

func formatSeq(seq uint64) string { return strconv.FormatUint(seq, 10) }
