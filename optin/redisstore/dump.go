package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

var (
	_ optin.Dumper   = (*Store)(nil)
	_ optin.Restorer = (*Store)(nil)
)

// dumpChunk is how many stream entries Dump reads per round trip.
const dumpChunk = 1000

// Dump reads the feed first, to number every event in its order (an
// event missing from it, which a crash on Cluster can leave, comes after
// the rest), then SCANs the subjects, one pipelined round trip per
// batch, then the outbox. The feed's numbers take some 60 bytes of
// memory per event.
func (s *Store) Dump(ctx context.Context, batch int, fn func([]optin.SubjectDump) error) (optin.OutboxDump, error) {
	seqs, err := s.feedOrder(ctx)
	if err != nil {
		return optin.OutboxDump{}, wrap("dump", err)
	}
	next := uint64(len(seqs)) + 1
	seqOf := func(r ref) uint64 {
		if n, ok := seqs[r]; ok {
			return n
		}
		seqs[r] = next
		next++
		return next - 1
	}
	done := map[string]bool{}
	err = s.eachSubjects(ctx, batch, func(ctx context.Context, rdb redis.Cmdable, sids []string) error {
		var fresh []string
		for _, sid := range sids {
			if !done[sid] {
				done[sid] = true
				fresh = append(fresh, sid)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		page, err := s.dumpSubjects(ctx, rdb, fresh, seqOf)
		if err != nil {
			return err
		}
		return fn(page)
	})
	if err != nil {
		return optin.OutboxDump{}, wrap("dump", err)
	}
	out, err := s.dumpOutbox(ctx, seqs)
	return out, wrap("dump", err)
}

// feedOrder numbers the feed's references from 1 in its order.
func (s *Store) feedOrder(ctx context.Context) (map[ref]uint64, error) {
	seqs := map[ref]uint64{}
	err := s.eachEntry(ctx, s.keys.feed(), func(m redis.XMessage) error {
		rs, err := entryRefs(m)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if _, twice := seqs[r]; !twice { // a lost reply's repeat lists a write twice
				seqs[r] = uint64(len(seqs)) + 1
			}
		}
		return nil
	})
	return seqs, err
}

// eachEntry hands fn every entry of a stream, oldest first, reading
// dumpChunk a round trip.
func (s *Store) eachEntry(ctx context.Context, stream string, fn func(redis.XMessage) error) error {
	start := "-"
	for {
		msgs, err := s.rdb.XRangeN(ctx, stream, start, "+", dumpChunk).Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := fn(m); err != nil {
				return err
			}
		}
		if len(msgs) < dumpChunk {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// dumpSubjects reads the state and both chains of sids in one round trip.
func (s *Store) dumpSubjects(ctx context.Context, rdb redis.Cmdable, sids []string, seqOf func(ref) uint64) ([]optin.SubjectDump, error) {
	states := make([]*redis.MapStringStringCmd, len(sids))
	lists := make([]*redis.StringSliceCmd, len(sids))
	rlists := make([]*redis.StringSliceCmd, len(sids))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			states[i] = p.HGetAll(ctx, s.keys.state(sid))
			lists[i] = p.LRange(ctx, s.keys.events(sid), 0, -1)
			rlists[i] = p.LRange(ctx, s.keys.receipts(sid), 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]optin.SubjectDump, 0, len(sids))
	for i, sid := range sids {
		m := states[i].Val()
		if len(m) == 0 {
			continue // gone since the SCAN
		}
		d, err := s.dumpSubject(ctx, sid, m, lists[i].Val(), rlists[i].Val(), seqOf)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// dumpSubject decodes one subject's state hash and lists.
func (s *Store) dumpSubject(ctx context.Context, sid string, m map[string]string, raws, rraws []string, seqOf func(ref) uint64) (optin.SubjectDump, error) {
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: subject %s: %s: %v", optin.ErrCorrupt, sid, what, err)
	}
	d := optin.SubjectDump{ID: sid, Consents: map[string]optin.Consent{}, Suppressions: map[optin.SuppressionReason]time.Time{}}
	var err error
	if d.KeyFrom, err = parseKeyFrom(m[fieldKeyFrom]); err != nil {
		return d, bad(fieldKeyFrom, err)
	}
	for f, v := range m {
		switch {
		case f == fieldSealedAddress:
			d.SealedAddress = []byte(v)
		case f == fieldWrappedKey:
			d.WrappedKey = []byte(v)
		case f == fieldPruned:
			if d.Pruned, err = strconv.ParseInt(v, 10, 64); err != nil || d.Pruned < 0 {
				return d, bad(f, fmt.Errorf("%q", v))
			}
		case f == fieldPrunedHead:
			d.PrunedHead = hexHash(v)
		case f == fieldErasureAt:
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return d, bad(f, err)
			}
			d.ErasureAt = time.Unix(0, ns).UTC()
		case strings.HasPrefix(f, consentPrefix):
			c, _, err := decodeConsent(optin.Address{}, f[len(consentPrefix):], v)
			if err != nil {
				return d, err
			}
			d.Consents[c.Purpose] = c
		case strings.HasPrefix(f, suppressPrefix):
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return d, bad(f, err)
			}
			d.Suppressions[optin.SuppressionReason(f[len(suppressPrefix):])] = time.Unix(0, ns).UTC()
		}
	}
	for i, raw := range raws {
		e, err := decodeEvent(sid, raw)
		if err != nil {
			return d, err
		}
		d.Events = append(d.Events, optin.DumpedEvent{SealedEvent: e, Seq: seqOf(ref{sid: sid, chain: chainMain, index: int64(i)})})
	}
	prev, resolve := d.PrunedHead, s.names.resolver(ctx, s)
	for i, raw := range rraws {
		e, err := decodeReceipt(sid, raw, prev, resolve)
		if err != nil {
			return d, err
		}
		prev = e.Hash
		d.Receipts = append(d.Receipts, optin.DumpedEvent{SealedEvent: e, Seq: seqOf(ref{sid: sid, chain: chainReceipt, index: d.Pruned + int64(i)})})
	}
	return d, nil
}

// dumpOutbox reads the items, numbered as their events, and every
// target's cursor, last save and records, their positions turned into
// the numbers of their items.
func (s *Store) dumpOutbox(ctx context.Context, seqs map[ref]uint64) (optin.OutboxDump, error) {
	var out optin.OutboxDump
	var ids []string // the items' entry ids, in order
	err := s.eachEntry(ctx, s.keys.outbox(), func(m redis.XMessage) error {
		r, queued, notice, err := decodeOutboxEntry(m)
		if err != nil {
			return err
		}
		seq, ok := seqs[r]
		if !ok {
			return fmt.Errorf("%w: outbox item %s names an event no subject holds", optin.ErrCorrupt, m.ID)
		}
		it := optin.DumpedItem{Seq: seq, Queued: queued.UTC()}
		if notice != "" {
			it.Notice = []byte(notice)
		}
		out.Items = append(out.Items, it)
		ids = append(ids, m.ID)
		return nil
	})
	if err != nil {
		return out, err
	}
	// seqAt is the number of the last item at or before the position pos:
	// 0 when none is left there.
	seqAt := func(pos string) uint64 {
		var seq uint64
		for i, id := range ids {
			if streamBefore(pos, id) {
				break
			}
			seq = out.Items[i].Seq
		}
		return seq
	}
	itemSeq := make(map[string]uint64, len(ids))
	for i, id := range ids {
		itemSeq[id] = out.Items[i].Seq
	}
	targets, err := s.rdb.SMembers(ctx, s.keys.targets()).Result()
	if err != nil {
		return out, err
	}
	for _, name := range targets {
		t := optin.DumpedTarget{Name: name}
		vals, err := s.rdb.MGet(ctx, s.keys.cursor(name), s.keys.saved(name)).Result()
		if err != nil {
			return out, err
		}
		if c, ok := vals[0].(string); ok {
			t.Cursor, t.HasCursor = seqAt(c), true
		}
		if v, ok := vals[1].(string); ok {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				t.Saved = time.UnixMilli(ms).UTC()
			}
		}
		for _, st := range []optin.DeliveryStatus{optin.DeliveryPending, optin.DeliveryDead, optin.DeliveryRetired} {
			q := optin.DeliveryQuery{Target: name, Status: st, Limit: optin.MaxPageSize}
			for {
				page, err := s.Deliveries(ctx, q)
				if err != nil {
					return out, err
				}
				for _, d := range page.Deliveries {
					d.Pos = strconv.FormatUint(itemSeq[d.Pos], 10)
					t.Deliveries = append(t.Deliveries, d)
				}
				if page.NextCursor == "" {
					break
				}
				q.Cursor = page.NextCursor
			}
		}
		out.Targets = append(out.Targets, t)
	}
	return out, nil
}
