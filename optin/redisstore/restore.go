package redisstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// metaRestoring marks, in meta, a store that is the target of a copy
// (optin.Copy): its value is the copy's id.
const metaRestoring = "mr"

// restoreOrder is the sorted set a copy keeps the log's order in until
// EndRestore writes the feed: members a packed reference (appendRef)
// then the event's time in Unix ms (uvarint), scores the events' Seq.
func (k keys) restoreOrder() string { return k.prefix + "restore:order" }

// errFound stops a SCAN that found what it looked for.
var errFound = errors.New("found")

// BeginRestore refuses a store that holds subjects, a feed, an outbox or
// targets, unless it is the target of the copy id already.
func (s *Store) BeginRestore(ctx context.Context, id string) error {
	mark, err := s.rdb.HGet(ctx, s.keys.meta(), metaRestoring).Result()
	switch {
	case err == nil && mark == id:
		return nil
	case err == nil:
		return fmt.Errorf("%w: it is the target of another copy, from %s", optin.ErrNotEmpty, mark)
	case !errors.Is(err, redis.Nil):
		return wrap("restore", err)
	}
	// One key a command: on Cluster they are in other slots.
	var n int64
	for _, k := range []string{s.keys.feed(), s.keys.outbox(), s.keys.targets()} {
		there, err := s.rdb.Exists(ctx, k).Result()
		if err != nil {
			return wrap("restore", err)
		}
		n += there
	}
	if n == 0 {
		err = s.eachKey(ctx, s.keys.statePattern(), 1000, func(_ context.Context, _ redis.Cmdable, keys []string) error {
			if len(keys) > 0 {
				return errFound
			}
			return nil
		})
		if errors.Is(err, errFound) {
			n = 1
		} else if err != nil {
			return wrap("restore", err)
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: it holds a ledger", optin.ErrNotEmpty)
	}
	return wrap("restore", s.rdb.HSet(ctx, s.keys.meta(), metaRestoring, id).Err())
}

// RestoreSubjects writes, in one pipeline, each subject whose state hash
// does not exist yet: its lists, its index entries and the order of its
// events, and its state hash last, so that a subject with a state hash
// is whole and a run after an interruption skips it.
func (s *Store) RestoreSubjects(ctx context.Context, subjects []optin.SubjectDump) (int, error) {
	exists := make([]*redis.IntCmd, len(subjects))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range subjects {
			exists[i] = p.Exists(ctx, s.keys.state(subjects[i].ID))
		}
		return nil
	})
	if err != nil {
		return 0, wrap("restore", err)
	}
	var todo []*optin.SubjectDump
	for i := range subjects {
		if exists[i].Val() == 0 {
			todo = append(todo, &subjects[i])
		}
	}
	codes, err := s.receiptCodes(ctx, todo)
	if err != nil {
		return 0, wrap("restore", err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range todo {
			if err := s.restoreSubject(ctx, p, d, codes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, wrap("restore", err)
	}
	return len(todo), nil
}

// receiptCodes registers the purposes and actors of the receipts.
func (s *Store) receiptCodes(ctx context.Context, subjects []*optin.SubjectDump) (map[string]string, error) {
	codes := map[string]string{}
	for _, d := range subjects {
		for _, e := range d.Receipts {
			for _, name := range []string{e.Purpose, e.Actor} {
				if _, ok := codes[name]; ok || name == "" {
					continue
				}
				c, err := s.names.codeOf(ctx, s, name)
				if err != nil {
					return nil, err
				}
				codes[name] = c
			}
		}
	}
	return codes, nil
}

// restoreSubject queues the writes of one subject on p.
func (s *Store) restoreSubject(ctx context.Context, p redis.Pipeliner, d *optin.SubjectDump, codes map[string]string) error {
	state, events, receipts := s.keys.state(d.ID), s.keys.events(d.ID), s.keys.receipts(d.ID)
	p.Del(ctx, events, receipts) // what a run cut short left
	order := make([]redis.Z, 0, len(d.Events)+len(d.Receipts))
	if len(d.Events) > 0 {
		vals := make([]any, len(d.Events))
		for i := range d.Events {
			e := &d.Events[i]
			vals[i] = encodeEvent(&e.SealedEvent)
			order = append(order, orderMember(ref{sid: d.ID, chain: chainMain, index: int64(i)}, e))
		}
		p.RPush(ctx, events, vals...)
	}
	if len(d.Receipts) > 0 {
		vals := make([]any, len(d.Receipts))
		for i := range d.Receipts {
			e := &d.Receipts[i]
			if _, ok := rawID(e.ID); !ok || len(e.Hash) != 2*optin.ReceiptHashSize {
				return fmt.Errorf("%w: subject %s: receipt %s is not in the form Redis keeps", optin.ErrCorrupt, d.ID, e.ID)
			}
			vals[i] = encodeReceipt(&e.SealedEvent, codes[e.Purpose], codes[e.Actor])
			order = append(order, orderMember(ref{sid: d.ID, chain: chainReceipt, index: d.Pruned + int64(i)}, e))
		}
		p.RPush(ctx, receipts, vals...)
	}
	if len(order) > 0 {
		p.ZAdd(ctx, s.keys.restoreOrder(), order...)
	}
	fields := []any{}
	if d.WrappedKey != nil {
		fields = append(fields, fieldWrappedKey, string(d.WrappedKey))
	}
	if d.SealedAddress != nil {
		fields = append(fields, fieldSealedAddress, string(d.SealedAddress))
	}
	if d.Pruned > 0 {
		raw, err := hex.DecodeString(d.PrunedHead)
		if err != nil {
			return fmt.Errorf("%w: subject %s: pruned head %q", optin.ErrCorrupt, d.ID, d.PrunedHead)
		}
		fields = append(fields, fieldPruned, strconv.FormatInt(d.Pruned, 10), fieldPrunedHead, string(raw))
	}
	if d.KeyFrom != [2]int64{} {
		fields = append(fields, fieldKeyFrom, fmt.Sprintf("%d.%d", d.KeyFrom[0], d.KeyFrom[1]))
	}
	if !d.ErasureAt.IsZero() {
		fields = append(fields, fieldErasureAt, strconv.FormatInt(d.ErasureAt.UnixNano(), 10))
		p.ZAdd(ctx, s.keys.erasures(), redis.Z{Score: float64(d.ErasureAt.UnixMilli()), Member: d.ID})
	}
	for purpose, c := range d.Consents {
		fields = append(fields, consentPrefix+purpose, string(encodeConsent(c, int64(d.RecordedAt(c)))))
	}
	for reason, t := range d.Suppressions {
		fields = append(fields, suppressPrefix+string(reason), strconv.FormatInt(t.UnixNano(), 10))
	}
	if len(d.Suppressions) > 0 {
		p.ZAdd(ctx, s.keys.supp(), redis.Z{Member: d.ID})
	}
	if len(fields) == 0 {
		// A state hash cannot be empty: mark the subject stored.
		fields = append(fields, fieldKeyFrom, "0.0")
	}
	p.HSet(ctx, state, fields...)
	return nil
}

// orderMember is e's member of restoreOrder.
func orderMember(r ref, e *optin.DumpedEvent) redis.Z {
	m := binary.AppendUvarint(appendRef(nil, r), uint64(max(e.Time.UnixMilli(), 0)))
	return redis.Z{Score: float64(e.Seq), Member: string(m)}
}

// ordered is one member of restoreOrder, read back.
type ordered struct {
	seq uint64
	ref ref
	ms  uint64
}

// readOrder reads restoreOrder, by Seq.
func (s *Store) readOrder(ctx context.Context) ([]ordered, error) {
	var out []ordered
	for start := int64(0); ; start += dumpChunk * 10 {
		zs, err := s.rdb.ZRangeWithScores(ctx, s.keys.restoreOrder(), start, start+dumpChunk*10-1).Result()
		if err != nil {
			return nil, err
		}
		for _, z := range zs {
			m, _ := z.Member.(string)
			o, ok := decodeOrdered(m)
			if !ok {
				return nil, fmt.Errorf("%w: a copy's order entry of %d bytes", optin.ErrCorrupt, len(m))
			}
			o.seq = uint64(z.Score)
			out = append(out, o)
		}
		if len(zs) < dumpChunk*10 {
			return out, nil
		}
	}
}

// decodeOrdered reads orderMember's member: 16 raw bytes of the subject
// id, the index and chain as appendRef packs them, the time.
func decodeOrdered(m string) (ordered, bool) {
	if len(m) < 18 {
		return ordered{}, false
	}
	v, n := binary.Uvarint([]byte(m[16:]))
	if n <= 0 {
		return ordered{}, false
	}
	ms, k := binary.Uvarint([]byte(m[16+n:]))
	if k <= 0 || 16+n+k != len(m) {
		return ordered{}, false
	}
	r := ref{sid: b32.EncodeToString([]byte(m[:16])), chain: chainMain, index: int64(v >> 1)}
	if v&1 == 1 {
		r.chain = chainReceipt
	}
	return ordered{ref: r, ms: ms}, true
}

// streamIDs makes increasing stream entry ids from times in Unix ms: an
// id of a time not after the last one's follows it.
type streamIDs struct{ ms, seq uint64 }

func (g *streamIDs) next(ms uint64) string {
	if ms > g.ms {
		g.ms, g.seq = ms, 0
	} else {
		g.seq++
	}
	return strconv.FormatUint(g.ms, 10) + "-" + strconv.FormatUint(g.seq, 10)
}

// EndRestore writes the feed in the copy's order (entry ids from the
// events' times), the outbox items (ids from when they were queued),
// each target's records, cursor and last save, and then takes the
// copy's order and mark away. Run again, it writes the feed and the
// outbox anew.
func (s *Store) EndRestore(ctx context.Context, outbox optin.OutboxDump) error {
	order, err := s.readOrder(ctx)
	if err != nil {
		return wrap("restore", err)
	}
	for _, k := range []string{s.keys.feed(), s.keys.outbox()} {
		if err := s.rdb.Del(ctx, k).Err(); err != nil {
			return wrap("restore", err)
		}
	}
	refOf := make(map[uint64]ref, len(order))
	var ids streamIDs
	for chunk := range slices.Chunk(order, dumpChunk) {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, o := range chunk {
				refOf[o.seq] = o.ref
				p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.feed(), ID: ids.next(o.ms), Values: []any{feedRefs, string(appendRef(nil, o.ref))}})
			}
			return nil
		})
		if err != nil {
			return wrap("restore", err)
		}
	}
	items := slices.Clone(outbox.Items)
	sort.Slice(items, func(i, j int) bool { return items[i].Seq < items[j].Seq })
	posOf := make(map[uint64]string, len(items))
	ids = streamIDs{}
	for chunk := range slices.Chunk(items, dumpChunk) {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, it := range chunk {
				r, ok := refOf[it.Seq]
				if !ok {
					return fmt.Errorf("%w: outbox item %d names an event no subject holds", optin.ErrCorrupt, it.Seq)
				}
				id := ids.next(uint64(max(it.Queued.UnixMilli(), 0)))
				posOf[it.Seq] = id
				p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.outbox(), ID: id, Values: []any{outboxField, outboxEntry(r, it.Queued) + string(it.Notice)}})
			}
			return nil
		})
		if err != nil {
			return wrap("restore", err)
		}
	}
	for _, t := range outbox.Targets {
		if err := s.restoreTarget(ctx, t, items, posOf); err != nil {
			return err
		}
	}
	// The mark goes first: a run that finds the mark needs the order.
	if err := s.rdb.HDel(ctx, s.keys.meta(), metaRestoring).Err(); err != nil {
		return wrap("restore", err)
	}
	return wrap("restore", s.rdb.Del(ctx, s.keys.restoreOrder()).Err())
}

// restoreTarget saves one target's records and cursor, their positions
// the ids of their items, and then its last save.
func (s *Store) restoreTarget(ctx context.Context, t optin.DumpedTarget, items []optin.DumpedItem, posOf map[uint64]string) error {
	// at is the id of the last item at or before seq; "0-0", before every
	// item, when none is.
	at := func(seq uint64) string {
		i := sort.Search(len(items), func(i int) bool { return items[i].Seq > seq })
		if i == 0 {
			return "0-0"
		}
		return posOf[items[i-1].Seq]
	}
	ds := slices.Clone(t.Deliveries)
	for i := range ds {
		seq, err := strconv.ParseUint(ds[i].Pos, 10, 64)
		if pos, ok := posOf[seq]; err == nil && ok {
			ds[i].Pos = pos
		} else {
			ds[i].Pos = "0-0" // its item was pruned
		}
	}
	cursor := ""
	if t.HasCursor {
		cursor = at(t.Cursor)
	}
	for len(ds) > 0 || cursor != "" {
		n := min(len(ds), 500)
		if err := s.SaveDeliveries(ctx, t.Name, ds[:n], cursor); err != nil {
			return err
		}
		ds, cursor = ds[n:], ""
	}
	var err error
	if t.Saved.IsZero() {
		err = s.rdb.Del(ctx, s.keys.saved(t.Name)).Err()
	} else {
		err = s.rdb.Set(ctx, s.keys.saved(t.Name), strconv.FormatInt(t.Saved.UnixMilli(), 10), 0).Err()
	}
	if err == nil && len(t.Deliveries) == 0 && !t.HasCursor {
		err = s.rdb.SAdd(ctx, s.keys.targets(), t.Name).Err()
	}
	return wrap("restore", err)
}
