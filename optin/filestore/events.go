package filestore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"optinproxy/optin"
)

// scanBudget bounds the events one Events call examines, so a filter that
// matches rarely cannot hold a read transaction over the whole log: when
// it runs out, the page ends early with a NextCursor to go on from.
const scanBudget = 100 * optin.MaxPageSize

// Events pages through the log oldest first (in the order the events were
// stored). Since selects events whose time is at or after it. A page may
// hold fewer than the limit and still have a NextCursor when a filter
// matched rarely; NextCursor is "" only on the last page. A cursor that
// does not decode is an error wrapping optin.ErrBadInput.
func (s *Store) Events(ctx context.Context, q optin.EventQuery) (optin.EventPage, error) {
	var after uint64
	if q.Cursor != "" {
		var err error
		if after, err = strconv.ParseUint(q.Cursor, 10, 64); err != nil {
			return optin.EventPage{}, fmt.Errorf("filestore: %w: event cursor %q", optin.ErrBadInput, q.Cursor)
		}
	}
	var page optin.EventPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		sc := &scan{tx: tx, q: q, limit: optin.PageSize(q.Limit), keys: map[string][]byte{}}
		var err error
		if q.Subject.IsZero() {
			err = sc.log(after)
		} else {
			err = sc.chain(optin.SubjectID(s.key, q.Subject), after)
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
	tx    *bolt.Tx
	q     optin.EventQuery
	limit int
	// keys caches subject keys by subject id; nil for an erased subject.
	keys     map[string][]byte
	examined int
	last     uint64 // the sequence of the last event examined
	page     optin.EventPage
}

// log walks the whole log after the cursor.
func (sc *scan) log(after uint64) error {
	c := sc.tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
		e, err := decodeEvent(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return err
		}
		if done, err := sc.offer(binary.BigEndian.Uint64(k), e); done || err != nil {
			return err
		}
	}
	return nil
}

// chain walks one subject's events after the cursor.
func (sc *scan) chain(sid string, after uint64) error {
	rec, err := loadRecord(sc.tx, sid)
	if err != nil || rec == nil {
		return err // nothing stored: an empty page
	}
	sc.keys[sid] = rec.Key
	// The chain's sequences grow: find the first one after the cursor.
	var searchErr error
	start := sort.Search(int(rec.Events), func(i int) bool {
		seq, err := chainSeq(sc.tx, sid, uint64(i))
		if err != nil {
			searchErr = err
			return true
		}
		return seq > after
	})
	if searchErr != nil {
		return searchErr
	}
	for i := uint64(start); i < rec.Events; i++ {
		seq, err := chainSeq(sc.tx, sid, i)
		if err != nil {
			return err
		}
		e, err := loadEvent(sc.tx, seq)
		if err != nil {
			return err
		}
		if done, err := sc.offer(seq, e); done || err != nil {
			return err
		}
	}
	return nil
}

// offer adds e to the page when it matches. It reports done when the
// page is full and a further match proves a next page, or when the scan
// budget is spent. Events that do not match are skipped for good: the
// cursor moves past them.
func (sc *scan) offer(seq uint64, e *optin.SealedEvent) (bool, error) {
	if sc.match(e) {
		if len(sc.page.Events) == sc.limit {
			sc.page.NextCursor = formatSeq(sc.last)
			return true, nil
		}
		key, err := sc.key(e.SubjectID)
		if err != nil {
			return true, err
		}
		opened, err := optin.Open(key, *e)
		if err != nil {
			return true, err
		}
		sc.page.Events = append(sc.page.Events, opened)
	}
	sc.last = seq
	if sc.examined++; sc.examined >= scanBudget {
		sc.page.NextCursor = formatSeq(seq)
		return true, nil
	}
	return false, nil
}

func (sc *scan) match(e *optin.SealedEvent) bool {
	return (sc.q.Type == "" || e.Type == sc.q.Type) && (sc.q.Since.IsZero() || !e.Time.Before(sc.q.Since))
}

// key returns the subject's key, nil once erased.
func (sc *scan) key(sid string) ([]byte, error) {
	if k, ok := sc.keys[sid]; ok {
		return k, nil
	}
	rec, err := loadRecord(sc.tx, sid)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: event of unknown subject %s", optin.ErrCorrupt, sid)
	}
	sc.keys[sid] = rec.Key
	return rec.Key, nil
}

// seqKey is the events bucket key of a global sequence.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// chainKey is the chains bucket key of a subject's i-th event.
func chainKey(sid string, i uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(sid), i)
}

// chainSeq returns the global sequence of a subject's i-th event.
func chainSeq(tx *bolt.Tx, sid string, i uint64) (uint64, error) {
	v := tx.Bucket(bucketChains).Get(chainKey(sid, i))
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

func decodeEvent(seq uint64, v []byte) (*optin.SealedEvent, error) {
	var e optin.SealedEvent
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("%w: event %d: %v", optin.ErrCorrupt, seq, err)
	}
	return &e, nil
}

func formatSeq(seq uint64) string { return strconv.FormatUint(seq, 10) }
