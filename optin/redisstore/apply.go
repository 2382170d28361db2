package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// batchSize caps the changes that share one write.
	batchSize = 500
	// batchAttempts is how often a whole batch is tried before its
	// subjects go one write each (Store.batchAttempts).
	batchAttempts = 3
	// subjectAttempts is how often one subject's write is tried before
	// Apply gives up with optin.ErrConflict.
	subjectAttempts = 10
	// parallel bounds the subject writes running at once.
	parallel = 8
	// maxBackoff caps the jittered wait before a retry.
	maxBackoff = 100 * time.Millisecond
	// lostTries is how often a write whose reply was lost is followed by
	// a try that reads the chains to learn what it did, beyond go-redis's
	// own retries: each costs up to the client's timeouts again when
	// Redis has stopped answering.
	lostTries = 1
)

// errChainMoved is what an attempt returns when the script found a chain
// moved since it was read: nothing was written.
var errChainMoved = errors.New("redisstore: a chain moved since it was read")

// errReplyLost is what an attempt returns when the write script was sent
// and its reply did not come: it may have been written, or not.
var errReplyLost = errors.New("redisstore: the write's reply was lost")

// item is one change of a batch with its subject id and result slot.
type item struct {
	ch  *optin.Change
	sid string
	res *optin.Result
	// ref is where the change's event went, once applied.
	ref ref
	// tried are the results of this call's earlier tries of the change
	// whose replies were lost, any of which may be written; nil as a
	// rule.
	tried []optin.Result
	// landed is set when a try found the change written by an earlier
	// one: its result is that try's, and its feed and outbox entries are
	// written (on one node, by the same script).
	landed bool
}

// Apply applies changes in order, each atomically for its subject, in
// batches of batchSize that take one round trip each when the subjects
// were just looked up (receipts), two when they must be read first (see
// doc.go). On error, the batches before the failing one are applied and
// their results are returned with the error; in the failing batch some
// subjects may have been applied too, when it went one subject at a
// time. A change without a subject is an error wrapping
// optin.ErrBadAddress, and one whose Delivered lacks its Message or Until
// one wrapping optin.ErrBadInput, found before anything is written.
//
// Every change's event gets its time and id before the first attempt,
// so that an attempt whose reply was lost is recognized when tried
// again: go-redis's own resending of the script finds its entries in
// place and writes nothing, and a later attempt reads the chains' ids.
// Either way the change is appended once and its result is the one
// stored (Applied, with the event as written). When Redis stops
// answering altogether, Apply fails with optin.ErrUnavailable and the
// change may or may not be written: a caller that retries then and must
// not record it twice sets Event.ID and Once.
//
// A change's Delivered mark is written with the change, whatever its
// kind (a message receipt, as a rule), and not when the change is
// ignored; a mark whose Until has passed is not written. A mark replaces
// the subject's earlier one for the same message.
func (s *Store) Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error) {
	items := make([]*item, len(changes))
	slots := make([]item, len(changes)) // one allocation for the items
	results := make([]optin.Result, len(changes))
	own := make([]optin.Change, len(changes))
	now := s.now()
	for i, ch := range changes {
		if ch.Subject.IsZero() {
			return nil, fmt.Errorf("redisstore: apply: change %d: %w: no subject", i, optin.ErrBadAddress)
		}
		if err := ch.Delivered.Check(); err != nil {
			return nil, fmt.Errorf("redisstore: apply: change %d: %w", i, err)
		}
		if ch.Once && ch.Event.ID == "" {
			return nil, fmt.Errorf("redisstore: apply: change %d: %w: Once without an event id", i, optin.ErrBadInput)
		}
		if ch.Event.Time.IsZero() {
			ch.Event.Time = now
		}
		if ch.Event.Type.IsReceipt() {
			ch.Event.Time = ch.Event.Time.UTC().Truncate(time.Millisecond)
		}
		if ch.Event.ID == "" {
			ch.Event.ID = optin.NewEventID(ch.Event.Time)
		}
		own[i] = ch
		slots[i] = item{ch: &own[i], sid: s.sid(ch.Subject), res: &results[i]}
		items[i] = &slots[i]
	}
	for start := 0; start < len(items); start += batchSize {
		if err := s.applyBatch(ctx, items[start:min(start+batchSize, len(items))]); err != nil {
			return results, err
		}
	}
	return results, nil
}

// applyBatch applies one batch: in one write on one node, else (on
// Cluster, or after conflicts) one write per subject. On Cluster the
// feed entries and suppression index entries of the batch follow in one
// pipeline, in the order of the changes.
func (s *Store) applyBatch(ctx context.Context, items []*item) error {
	if len(items) == 0 {
		return nil
	}
	if !s.cluster && !oneSubject(items) {
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

// applyEach applies items in one write per subject, several at once;
// this process's writes to one subject take turns (its stripe).
func (s *Store) applyEach(ctx context.Context, items []*item) error {
	groups := map[string][]*item{}
	var order []string
	for _, it := range items {
		if _, seen := groups[it.sid]; !seen {
			order = append(order, it.sid)
		}
		groups[it.sid] = append(groups[it.sid], it)
	}
	if len(order) == 1 {
		return s.applySubject(ctx, groups[order[0]])
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
			if err := s.applySubject(ctx, groups[sid]); err != nil {
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

func (s *Store) applySubject(ctx context.Context, items []*item) error {
	lock := s.stripe(items[0].sid)
	lock.Lock()
	defer lock.Unlock()
	return s.retry(ctx, items, subjectAttempts)
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

// retry runs attempt until it writes, fails otherwise, or has met
// attempts conflicts (then an error wrapping optin.ErrConflict). A write
// whose reply was lost is tried again lostTries times. After a conflict
// or a lost reply, attempts read the chains' event ids, so that what an
// earlier attempt did write is recognized, not appended twice.
func (s *Store) retry(ctx context.Context, items []*item, attempts int) error {
	lost := 0
	for n := 1; ; n++ {
		check := n > 1 || anyTried(items)
		err := s.attempt(ctx, items, check)
		if errors.Is(err, errNameTaken) {
			err = s.attempt(ctx, items, check) // once more, with the name as text
		}
		if errors.Is(err, errReplyLost) && lost < lostTries && ctx.Err() == nil {
			lost++
			for _, it := range items {
				if it.res.Applied && !it.landed {
					it.tried = append(it.tried, *it.res)
				}
			}
			continue
		}
		if !errors.Is(err, errChainMoved) {
			return wrap("apply", err)
		}
		if n >= attempts {
			return fmt.Errorf("redisstore: apply: %w: %d changes' subjects changed concurrently %d times", optin.ErrConflict, len(items), n)
		}
		wait := time.Duration(rand.Int64N(int64(min(time.Millisecond<<n, maxBackoff))))
		select {
		case <-ctx.Done():
			return wrap("apply", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// attempt applies items in one write: it builds each subject's record
// from what a lookup just saw (receipts) or from one pipelined read, runs
// the changes through optin.SubjectState.Apply, and hands the sealed
// events to applyScript. It returns errChainMoved when the script found
// a chain moved (nothing written), and one wrapping errReplyLost when
// the script's reply was lost. With checkIDs, it reads the ids in the
// chains: a change an earlier try of this call wrote takes that try's
// result, one marked Once whose event is there is skipped.
func (s *Store) attempt(ctx context.Context, items []*item, checkIDs bool) error {
	now := s.now()
	for _, it := range items {
		it.landed = false
	}
	recs := map[string]*record{}
	var sids []string
	addrs := map[string]optin.Address{}
	needRead := map[string]bool{}
	for _, it := range items {
		if _, ok := addrs[it.sid]; !ok {
			sids = append(sids, it.sid)
			addrs[it.sid] = it.ch.Subject
		}
		if checkIDs || it.ch.Once || !it.ch.Event.Type.IsReceipt() {
			needRead[it.sid] = true
		}
	}
	for _, sid := range sids {
		if needRead[sid] {
			continue
		}
		r, ok, err := s.fromSeen(sid, addrs[sid], now)
		if err != nil {
			return err
		}
		if !ok {
			needRead[sid] = true
			continue
		}
		recs[sid] = r
	}
	if err := s.read(ctx, sids, addrs, needRead, checkIDs || anyOnce(items), recs); err != nil {
		return err
	}
	for _, it := range items {
		r := recs[it.sid]
		if res, at, ok := r.landed(it); ok {
			*it.res, it.ref, it.landed = res, at, true
			continue
		}
		res, err := r.apply(*it.ch, now)
		if err != nil {
			return err
		}
		if res.Applied {
			if it.ch.Event.Type.IsReceipt() {
				it.ref = ref{sid: it.sid, chain: chainReceipt, index: r.r + int64(len(r.receipts)) - 1}
			} else {
				it.ref = ref{sid: it.sid, chain: chainMain, index: r.n + int64(len(r.pending)) - 1}
			}
		}
		*it.res = res
	}
	var dirty []string
	for _, sid := range sids {
		if recs[sid].dirty() {
			dirty = append(dirty, sid)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	codes, err := s.nameCodes(ctx, dirty, recs)
	if err != nil {
		return err
	}
	keys, args := s.scriptArgs(items, dirty, recs, codes, now)
	res, err := applyScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		if replyLost(err) {
			return fmt.Errorf("%w: %w", errReplyLost, err)
		}
		return err
	}
	// {"done"}: go-redis sent the script again after losing its reply,
	// and the first run wrote it all; the results stand as computed.
	if len(res) == 2 && res[0] == "name" {
		s.names.taken(codes[res[1]])
		return errNameTaken
	}
	if len(res) == 2 && res[0] == "conflict" {
		i, _ := strconv.Atoi(res[1])
		if i >= 1 && i <= len(dirty) {
			s.seen.drop(dirty[i-1])
		}
		return errChainMoved
	}
	for _, sid := range dirty {
		r := recs[sid]
		s.seen.put(sid, seen{exists: true, wrapped: string(r.wrapped), r: r.r + int64(len(r.receipts)),
			head: rawHead(r.st.ReceiptHead), at: now})
	}
	for _, name := range codes {
		s.names.registered(name)
	}
	return nil
}

// errNameTaken is what an attempt returns when a name's code belongs to
// another name: written as text from now on, the attempt is made again.
var errNameTaken = errors.New("redisstore: a name's code is another name's")

// nameCodes returns the codes the receipts of the dirty records use,
// each with its name. On Cluster they are registered here, first.
func (s *Store) nameCodes(ctx context.Context, dirty []string, recs map[string]*record) (map[string]string, error) {
	codes := map[string]string{}
	for _, sid := range dirty {
		for _, e := range recs[sid].receipts {
			for _, name := range []string{e.Purpose, e.Actor} {
				if c := s.names.use(name); c != "" {
					codes[c] = name
				}
			}
		}
	}
	if !s.cluster {
		return codes, nil
	}
	for c, name := range codes {
		got, err := s.names.codeOf(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if got != c {
			delete(codes, c)
		}
	}
	return codes, nil
}

func anyTried(items []*item) bool {
	for _, it := range items {
		if len(it.tried) > 0 {
			return true
		}
	}
	return false
}

func anyOnce(items []*item) bool {
	for _, it := range items {
		if it.ch.Once {
			return true
		}
	}
	return false
}

// fromSeen builds the record of a subject whose receipts are all a batch
// writes from what a lookup saw of it; false when nothing fresh was.
func (s *Store) fromSeen(sid string, a optin.Address, now time.Time) (*record, bool, error) {
	sn, ok := s.seen.get(sid, now)
	if !ok {
		return nil, false, nil
	}
	r := &record{st: optin.NewSubjectState(sid, a), exists: sn.exists, r: sn.r, receiptHeadSeen: sn.head, index: map[string]int64{}}
	r.st.ReceiptHead = hex.EncodeToString([]byte(sn.head))
	if sn.wrapped != "" {
		r.wrapped = []byte(sn.wrapped)
		r.wrappedSeen = r.wrapped
		key, err := s.ring.Unwrap(sid, r.wrapped)
		if err != nil {
			return nil, false, err
		}
		r.st.Key = key
	}
	r.snapshot()
	return r, true, nil
}

// read reads the records of the subjects marked in need, in one
// pipelined round trip: each state with the last entry of its two lists
// and, with ids, every event id of them.
func (s *Store) read(ctx context.Context, sids []string, addrs map[string]optin.Address, need map[string]bool, ids bool, recs map[string]*record) error {
	type reads struct {
		state        *redis.MapStringStringCmd
		etail, rtail *redis.StringCmd
		elen, rlen   *redis.IntCmd
		elist, rlist *redis.StringSliceCmd
	}
	cmds := map[string]*reads{}
	if len(need) == 0 {
		return nil
	}
	piped, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sid := range sids {
			if !need[sid] {
				continue
			}
			rd := &reads{state: p.HGetAll(ctx, s.keys.state(sid))}
			rd.etail = p.LIndex(ctx, s.keys.events(sid), -1)
			rd.rtail = p.LIndex(ctx, s.keys.receipts(sid), -1)
			rd.elen = p.LLen(ctx, s.keys.events(sid))
			rd.rlen = p.LLen(ctx, s.keys.receipts(sid))
			if ids {
				rd.elist = p.LRange(ctx, s.keys.events(sid), 0, -1)
				rd.rlist = p.LRange(ctx, s.keys.receipts(sid), 0, -1)
			}
			cmds[sid] = rd
		}
		return nil
	})
	if err := pipeErr(piped, err); err != nil {
		return err
	}
	for sid, rd := range cmds {
		if err := rd.state.Err(); err != nil {
			return err
		}
		r, err := s.decodeState(sid, addrs[sid], rd.state.Val(), rd.etail.Val(), rd.rtail.Val(), rd.elen.Val(), rd.rlen.Val())
		if err != nil {
			return err
		}
		if ids {
			r.ids = map[string]stored{}
			for i, raw := range rd.elist.Val() {
				if e, err := decodeEvent(sid, raw); err == nil {
					r.ids[e.ID] = stored{ref{sid: sid, chain: chainMain, index: int64(i)}, e.Hash}
				}
			}
			pruned := r.r - rd.rlen.Val()
			for i, raw := range rd.rlist.Val() {
				if id := receiptID(raw); id != "" {
					r.ids[id] = stored{ref{sid: sid, chain: chainReceipt, index: pruned + int64(i)}, hexHash(receiptTailHash(raw))}
				}
			}
		}
		recs[sid] = r
	}
	return nil
}

// scriptArgs lays out applyScript's keys and arguments for the dirty
// subjects, with the feed entries of items in their order. It fills one
// argument slice, sized beforehand, and passes numbers and most strings by
// pointer into arrays of their own (go-redis writes *int64 and *string as
// their values): each boxed int64 or string is otherwise an allocation,
// some twenty per write.
func (s *Store) scriptArgs(items []*item, dirty []string, recs map[string]*record, codes map[string]string, now time.Time) ([]string, []any) {
	kr := s.ring.Get()
	type fieldsOf struct{ set, del []string }
	fields := make([]fieldsOf, len(dirty))
	size, nums, strs := 5+2*len(codes)+1, 1, 0
	for i, sid := range dirty {
		r := recs[sid]
		set, del := r.fields(kr, s.gen.Load())
		fields[i] = fieldsOf{set, del}
		size += 15 + len(set) + len(del) + len(r.pending) + len(r.receipts) + 2*len(r.marks)
		nums += 3 + len(r.marks)
		strs += 4
	}
	if !s.cluster {
		for _, it := range items {
			if it.res.Applied && !it.landed && it.ref.chain == chainMain {
				size++
			}
		}
	}
	b := argBuf{args: make([]any, 0, size), nums: make([]int64, 0, nums), strs: make([]string, 0, strs)}

	// The keys: per subject its state, events, receipts and marks; then,
	// on one node, the store's shared keys.
	keys := s.keys.subjectKeys(dirty, "serd")
	if !s.cluster {
		keys = append(keys, s.applyKeys...)
	}

	indexes := "0"
	if !s.cluster {
		indexes = "1"
	}
	b.args = append(b.args, len(dirty), indexes)
	b.int(now.UnixMilli())
	var feed []byte
	if !s.cluster {
		for _, it := range items {
			if it.res.Applied && !it.landed {
				feed = appendRef(feed, it.ref)
			}
		}
	}
	b.args = append(b.args, feed) // written as the bytes; nil as ""
	codeOf := map[string]string{}
	if s.cluster {
		b.args = append(b.args, 0) // registered apart: the script cannot reach the names hash
	} else {
		// Only the codes not known to be in the names hash: the script
		// checks and registers them.
		n := len(b.args)
		b.args = append(b.args, 0)
		for c, name := range codes {
			if !s.names.isRegistered(name) {
				b.args = append(b.args, c, name)
			}
		}
		b.args[n] = (len(b.args) - n - 1) / 2
	}
	for c, name := range codes {
		codeOf[name] = c
	}
	// A batch's marks are mostly of one message: its member is hashed
	// and boxed once.
	var markOf string
	var member any
	for i, sid := range dirty {
		r := recs[sid]
		set, del := fields[i].set, fields[i].del
		var flags [24]byte
		f := flags[:0]
		if r.exists {
			f = append(f, 'X')
		} else {
			f = append(f, 'N')
		}
		if len(r.pending) > 0 && r.exists {
			f = append(f, 'E')
		}
		if len(r.receipts) > 0 && r.exists {
			f = append(f, 'R')
		}
		if r.suppressionsChanged() {
			if len(r.st.Suppressions) > 0 {
				f = append(f, '+')
			} else {
				f = append(f, '-')
			}
		}
		if r.erased {
			f = append(f, 'D')
		}
		f = append(f, r.scheduleFlag()...)
		b.str(flagString(f))
		b.str(sid)
		b.str(r.headSeen)
		b.str(r.receiptHeadSeen)
		b.int(r.n)
		b.int(r.r)
		b.args = append(b.args, r.wrappedSeen, len(set)/2) // nil as ""
		for _, f := range set {
			b.args = append(b.args, f)
		}
		b.args = append(b.args, len(del))
		for _, f := range del {
			b.args = append(b.args, f)
		}
		b.args = append(b.args, len(r.pending))
		for _, e := range r.pending {
			b.args = append(b.args, encodeEvent(e))
		}
		b.args = append(b.args, len(r.receipts))
		for _, e := range r.receipts {
			b.args = append(b.args, encodeReceipt(e, codeOf[e.Purpose], codeOf[e.Actor]))
		}
		n := len(b.args)
		b.args = append(b.args, 0)
		var last int64
		for _, m := range r.marks {
			if m.Until.After(now) {
				u := untilMilli(m.Until)
				b.int(u)
				if m.Message != markOf || member == nil {
					markOf, member = m.Message, markMember(m.Message)
				}
				b.args = append(b.args, member)
				last = max(last, u)
			}
		}
		b.args[n] = (len(b.args) - n - 1) / 2
		b.int(last)
	}
	if s.cluster {
		b.args = append(b.args, 0) // the outbox is written apart, as the feed is
	} else {
		n := len(b.args)
		b.args = append(b.args, 0)
		for _, it := range items {
			if it.res.Applied && !it.landed && it.ref.chain == chainMain {
				b.args = append(b.args, outboxEntry(it.ref, now)+notice(kr, it))
			}
		}
		b.args[n] = len(b.args) - n - 1
	}
	return keys, b.args
}

// flagString is string(f), without an allocation for the flags of
// receipts to a subject that exists and of a new subject.
func flagString(f []byte) string {
	switch string(f) {
	case "XR":
		return "XR"
	case "X":
		return "X"
	case "N":
		return "N"
	}
	return string(f)
}

// argBuf builds a command's arguments, numbers and strings by pointer
// into nums and strs. A pointer stays valid when append moves the array:
// it keeps the old one, whose values are final.
type argBuf struct {
	args []any
	nums []int64
	strs []string
}

func (b *argBuf) int(v int64) {
	b.nums = append(b.nums, v)
	b.args = append(b.args, &b.nums[len(b.nums)-1])
}

func (b *argBuf) str(v string) {
	b.strs = append(b.strs, v)
	b.args = append(b.args, &b.strs[len(b.strs)-1])
}

// writeIndexes writes, on Cluster, the feed entries, suppression index
// entries and outbox entries of a batch's applied changes, which live in
// other slots. The
// index only gains members here: a stale member (a subject whose
// suppressions are gone) lists nothing, since Suppressions reads the
// state, whereas a lost one would hide a suppression.
func (s *Store) writeIndexes(ctx context.Context, items []*item) error {
	var feed []byte
	var supp []any
	var queued []string
	schedule := map[string]time.Time{} // by subject, the last change's
	n, now, kr := 0, s.now(), s.ring.Get()
	for _, it := range items {
		if !it.res.Applied {
			continue
		}
		n++
		feed = appendRef(feed, it.ref)
		if er := it.ch.Erasure; it.ch.AddSuppression != "" || er != nil && er.Op == optin.EraseNow {
			supp = append(supp, it.sid) // an erasure adds the erased suppression
		}
		if it.ch.Erasure != nil {
			schedule[it.sid] = it.res.ErasureAt
		}
		if it.ref.chain == chainMain {
			queued = append(queued, outboxEntry(it.ref, now)+notice(kr, it))
		}
	}
	if n == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.feed(), Values: []string{feedRefs, string(feed)}})
		for _, sid := range supp {
			p.ZAdd(ctx, s.keys.supp(), redis.Z{Member: sid})
		}
		for _, e := range queued {
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.outbox(), Values: []string{outboxField, e}})
		}
		for sid, at := range schedule {
			if at.IsZero() {
				p.ZRem(ctx, s.keys.erasures(), sid)
			} else {
				p.ZAdd(ctx, s.keys.erasures(), redis.Z{Score: float64(at.UnixMilli()), Member: sid})
			}
		}
		return nil
	})
	if err != nil {
		return wrap("apply", fmt.Errorf("committed, but the global feed and the outbox may lack %d events: %w", n, err))
	}
	return nil
}

// notice is the erasure notice an item's outbox entry carries after its
// time: the address sealed under the ledger key (optin.Erasure.Notify),
// for an erasure carried out with Notify; "" for every other item.
func notice(kr *optin.Keyring, it *item) string {
	er := it.ch.Erasure
	if er == nil || er.Op != optin.EraseNow || !er.Notify || !it.res.Applied {
		return ""
	}
	return string(kr.SealNotice(it.sid, it.res.Event.ID, it.ch.Subject))
}

// scheduleFlag is the script's flag for a change of the scheduled
// erasure: S and the due time in Unix ms, s when it is gone, "" when it
// did not change.
func (r *record) scheduleFlag() string {
	switch {
	case r.st.ErasureAt.Equal(r.loadedErasure):
		return ""
	case r.st.ErasureAt.IsZero():
		return "s"
	}
	return "S" + strconv.FormatInt(max(r.st.ErasureAt.UnixMilli(), 0), 10)
}

// rawHead is a hex hash's raw bytes, "" for none.
func rawHead(h string) string {
	if h == "" {
		return ""
	}
	var raw [sha256.Size]byte // decoded on the stack: every write keeps one
	if len(h) > 2*len(raw) {
		long, err := hex.DecodeString(h)
		if err != nil {
			return ""
		}
		return string(long)
	}
	n, err := hex.Decode(raw[:], []byte(h))
	if err != nil {
		return ""
	}
	return string(raw[:n])
}
