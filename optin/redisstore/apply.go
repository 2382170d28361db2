package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

const (
	// batchSize caps the changes that share one WATCH/MULTI.
	batchSize = 500
	// batchAttempts is how often a whole batch is tried before its
	// subjects go one transaction each (Store.batchAttempts).
	batchAttempts = 3
	// subjectAttempts is how often one subject's transaction is tried
	// before Apply gives up with optin.ErrConflict.
	subjectAttempts = 10
	// parallel bounds the subject transactions running at once.
	parallel = 8
	// maxBackoff caps the jittered wait before a retry.
	maxBackoff = 100 * time.Millisecond
)

// item is one change of a batch with its subject id and result slot.
type item struct {
	ch  *optin.Change
	sid string
	res *optin.Result
	// index is the list index of the change's event once applied.
	index int64
}

// feedRef is a global feed entry: the subject and the index of the event
// in its list.
type feedRef struct {
	sid   string
	index int64
}

// Apply applies changes in order, each atomically for its subject, in
// batches of batchSize that take about two round trips each (see doc.go).
// On error, the batches before the failing one are applied and their
// results are returned with the error; in the failing batch, on Cluster
// or after conflicts, some subjects may have been applied too. A change
// without a subject is an error wrapping optin.ErrBadAddress, and one
// whose Delivered lacks its Message or Until one wrapping
// optin.ErrBadInput, found before anything is written.
//
// A change's Delivered mark is written in the MULTI that applies the
// change, whatever its kind (a message receipt, as a rule), and not when
// the change is ignored; a mark whose Until has passed is not written. A
// mark replaces the subject's earlier one for the same message.
func (s *Store) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	items := make([]*item, len(changes))
	results := make([]optin.Result, len(changes))
	for i := range changes {
		if changes[i].Subject.IsZero() {
			return nil, fmt.Errorf("redisstore: apply: change %d: %w: no subject", i, optin.ErrBadAddress)
		}
		if err := changes[i].Delivered.Check(); err != nil {
			return nil, fmt.Errorf("redisstore: apply: change %d: %w", i, err)
		}
		items[i] = &item{ch: &changes[i], sid: s.sid(changes[i].Subject), res: &results[i]}
	}
	for start := 0; start < len(items); start += batchSize {
		if err := s.applyBatch(ctx, items[start:min(start+batchSize, len(items))]); err != nil {
			return results, err
		}
	}
	return results, nil
}

// applyBatch applies one batch: in one transaction on one node, else (on
// Cluster, or after conflicts) one transaction per subject. On Cluster
// the feed entries and suppression index entries of the batch follow in
// one pipeline, in the order of the changes.
func (s *Store) applyBatch(ctx context.Context, items []*item) error {
	if len(items) > 0 && oneSubject(items) {
		mu := s.stripe(items[0].sid)
		mu.Lock()
		defer mu.Unlock()
		err := s.retry(ctx, items, subjectAttempts)
		if s.cluster {
			if ierr := s.writeIndexes(ctx, items); err == nil {
				err = ierr
			}
		}
		return err
	}
	if !s.cluster {
		err := s.retry(ctx, items, s.batchAttempts)
		if !errors.Is(err, optin.ErrConflict) {
			return err
		}
	}
	err := s.applyEach(ctx, items)
	if s.cluster {
		if ierr := s.writeIndexes(ctx, items); err == nil {
			err = ierr
		}
	}
	return err
}

// applyEach applies items in one transaction per subject, several at once.
func (s *Store) applyEach(ctx context.Context, items []*item) error {
	groups := map[string][]*item{}
	var order []string
	for _, it := range items {
		if _, seen := groups[it.sid]; !seen {
			order = append(order, it.sid)
		}
		groups[it.sid] = append(groups[it.sid], it)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, parallel)
	)
	for _, sid := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			lock := s.stripe(sid)
			lock.Lock()
			defer lock.Unlock()
			if err := s.retry(ctx, groups[sid], subjectAttempts); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// oneSubject tells whether every item is of the first item's subject.
func oneSubject(items []*item) bool {
	for _, it := range items[1:] {
		if it.sid != items[0].sid {
			return false
		}
	}
	return true
}

// retry runs attempt until it commits, fails otherwise, or has met
// attempts conflicts (then an error wrapping optin.ErrConflict).
func (s *Store) retry(ctx context.Context, items []*item, attempts int) error {
	for n := 1; ; n++ {
		err := s.attempt(ctx, items)
		if !errors.Is(err, redis.TxFailedErr) {
			return wrap("apply", err)
		}
		if n == attempts {
			return fmt.Errorf("redisstore: apply: %w: %d subjects changed concurrently %d times", optin.ErrConflict, len(items), n)
		}
		wait := time.Duration(rand.Int64N(int64(min(time.Millisecond<<n, maxBackoff))))
		select {
		case <-ctx.Done():
			return wrap("apply", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// attempt applies items in one WATCH/MULTI: watch and read the states in
// one round trip, apply in Go, write in one MULTI/EXEC. It returns
// redis.TxFailedErr when a watched state changed meanwhile. All items
// share one slot on Cluster.
func (s *Store) attempt(ctx context.Context, items []*item) error {
	var sids []string
	recs := map[string]*record{}
	addrs := map[string]optin.Address{}
	for _, it := range items {
		if _, seen := addrs[it.sid]; !seen {
			sids = append(sids, it.sid)
			addrs[it.sid] = it.ch.Subject
		}
	}
	stateKeys := make([]string, len(sids))
	for i, sid := range sids {
		stateKeys[i] = s.keys.state(sid)
	}
	var watchKeys []string
	if s.cluster {
		watchKeys = stateKeys // go-redis sends WATCH: it picks the node by them
	}
	var refs []feedRef
	results := make([]optin.Result, len(items))
	indexes := make([]int64, len(items))
	ran := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		ran, refs = true, refs[:0]
		// On one node, WATCH travels in the read pipeline; go-redis does
		// not know of it, so an early return must UNWATCH here.
		armed := !s.cluster
		defer func() {
			if armed {
				_ = tx.Unwatch(context.WithoutCancel(ctx)).Err()
			}
		}()
		reads := make([]*redis.MapStringStringCmd, len(sids))
		tails := make([]*redis.StringCmd, len(sids))
		cmds, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			if !s.cluster {
				args := make([]any, 0, 1+len(stateKeys))
				args = append(args, "watch")
				for _, k := range stateKeys {
					args = append(args, k)
				}
				p.Do(ctx, args...)
			}
			for i, sid := range sids {
				reads[i] = p.HGetAll(ctx, stateKeys[i])
				tails[i] = p.LIndex(ctx, s.keys.events(sid), -1) // the head
			}
			return nil
		})
		if err = pipeErr(cmds, err); err != nil {
			return err
		}
		for i, sid := range sids {
			if recs[sid], err = decodeState(sid, addrs[sid], reads[i].Val(), tails[i].Val()); err != nil {
				return err
			}
		}
		now := s.now()
		for i, it := range items {
			r := recs[it.sid]
			if results[i], err = r.apply(*it.ch, now); err != nil {
				return err
			}
			if results[i].Applied {
				indexes[i] = r.n + int64(len(r.pending)) - 1
				refs = append(refs, feedRef{sid: it.sid, index: indexes[i]})
			}
		}
		if len(refs) == 0 {
			return nil // nothing changed; the deferred UNWATCH releases the keys
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, sid := range sids {
				s.queueWrites(ctx, p, sid, recs[sid], now)
			}
			if !s.cluster {
				for _, ref := range refs {
					s.queueFeed(ctx, p, ref)
				}
			}
			return nil
		})
		if err == nil || errors.Is(err, redis.TxFailedErr) || redis.IsExecAbortError(err) {
			armed = false // EXEC ran and dropped the watch
		}
		return err
	}, watchKeys...)
	if err != nil {
		return err
	}
	if !ran {
		// go-redis v9.23's ClusterClient.Watch returns nil without
		// calling fn when the client is closed.
		return fmt.Errorf("transaction not run: %w", redis.ErrClosed)
	}
	for i, it := range items {
		*it.res, it.index = results[i], indexes[i]
	}
	return nil
}

// queueWrites queues the writes of one subject's pending events: its
// state fields, its events, its delivery marks not past by now (each a
// string that Redis expires at its until), and on one node its
// suppression index entry.
func (s *Store) queueWrites(ctx context.Context, p redis.Pipeliner, sid string, r *record, now time.Time) {
	set, del := r.changes()
	if len(set) == 0 {
		return
	}
	p.HSet(ctx, s.keys.state(sid), set...)
	if len(del) > 0 {
		p.HDel(ctx, s.keys.state(sid), del...)
	}
	events := make([]any, len(r.pending))
	for i, e := range r.pending {
		events[i] = encodeEvent(e)
	}
	p.RPush(ctx, s.keys.events(sid), events...)
	for _, m := range r.marks {
		if m.Until.After(now) && m.Until.UnixNano() > 0 {
			p.SetArgs(ctx, s.keys.delivered(sid, m.Message), markValue(m.Until), redis.SetArgs{ExpireAt: expireAt(m.Until)})
		}
	}
	if !s.cluster && r.suppressionsChanged() {
		if len(r.st.Suppressions) > 0 {
			p.ZAdd(ctx, s.keys.supp(), redis.Z{Member: sid})
		} else {
			p.ZRem(ctx, s.keys.supp(), sid)
		}
	}
}

func (s *Store) queueFeed(ctx context.Context, p redis.Pipeliner, ref feedRef) {
	p.XAdd(ctx, &redis.XAddArgs{
		Stream: s.keys.feed(),
		Values: []string{feedFieldSubject, ref.sid, feedFieldIndex, strconv.FormatInt(ref.index, 10)},
	})
}

// writeIndexes writes, on Cluster, the feed entries and suppression index
// entries of a batch's committed changes, which live in other slots. The
// index only gains members here: a stale member (a subject whose
// suppressions are gone) lists nothing, since Suppressions reads the
// state, whereas a lost one would hide a suppression.
func (s *Store) writeIndexes(ctx context.Context, items []*item) error {
	n := 0
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, it := range items {
			if !it.res.Applied {
				continue
			}
			n++
			s.queueFeed(ctx, p, feedRef{sid: it.sid, index: it.index})
			if it.ch.AddSuppression != "" {
				p.ZAdd(ctx, s.keys.supp(), redis.Z{Member: it.sid})
			}
		}
		return nil
	})
	if err != nil {
		return wrap("apply", fmt.Errorf("committed, but the global feed may lack %d events: %w", n, err))
	}
	return nil
}
