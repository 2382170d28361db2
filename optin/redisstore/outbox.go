package redisstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// outboxField is the field of an outbox entry: its reference (appendRef)
// and then when it was queued, Unix ms by the store's clock, as a
// uvarint; for a subject.erased event written with Notify, its erasure
// notice follows (optin.Keyring.SealNotice), and goes with the entry.
const outboxField = "o"

func (k keys) outbox() string { return k.prefix + "outbox" }

// outboxEntry is the value of the outbox entry of the event at r.
func outboxEntry(r ref, now time.Time) string {
	return string(binary.AppendUvarint(appendRef(nil, r), uint64(max(now.UnixMilli(), 0))))
}

// decodeOutboxEntry reads an outbox entry's reference, time and erasure
// notice ("" for none).
func decodeOutboxEntry(m redis.XMessage) (ref, time.Time, string, error) {
	v, _ := m.Values[outboxField].(string)
	bad := fmt.Errorf("redisstore: outbox: %w: entry %s", optin.ErrCorrupt, m.ID)
	if len(v) < 18 {
		return ref{}, time.Time{}, "", bad
	}
	idx, n := binary.Uvarint([]byte(v[16:min(len(v), 16+binary.MaxVarintLen64)]))
	if n <= 0 || idx&1 != 0 {
		return ref{}, time.Time{}, "", bad
	}
	ms, k := binary.Uvarint([]byte(v[16+n : min(len(v), 16+n+binary.MaxVarintLen64)]))
	if k <= 0 {
		return ref{}, time.Time{}, "", bad
	}
	return ref{sid: b32.EncodeToString([]byte(v[:16])), chain: chainMain, index: int64(idx >> 1)}, time.UnixMilli(int64(ms)), v[16+n+k:], nil
}

// checkPos refuses a position that is not a stream entry id.
func checkPos(pos string) error {
	if !streamID.MatchString(pos) {
		return fmt.Errorf("redisstore: %w: outbox position %q", optin.ErrBadInput, pos)
	}
	return nil
}

// OutboxRead returns up to limit items (optin.PageSize) after the
// position after, oldest first, each event opened, in three round trips:
// the entries, the subjects' keys, the events. Positions are the outbox
// stream's entry ids.
func (s *Store) OutboxRead(ctx context.Context, after string, limit int) (optin.OutboxPage, error) {
	start := "-"
	if after != "" {
		if err := checkPos(after); err != nil {
			return optin.OutboxPage{}, err
		}
		start = "(" + after
	}
	msgs, err := s.rdb.XRangeN(ctx, s.keys.outbox(), start, "+", int64(optin.PageSize(limit))).Result()
	if err != nil {
		return optin.OutboxPage{}, wrap("outbox", err)
	}
	items, err := s.outboxItems(ctx, msgs)
	if err != nil {
		return optin.OutboxPage{}, err
	}
	page := optin.OutboxPage{Items: items, Next: after}
	if len(items) > 0 {
		page.Next = items[len(items)-1].Pos
	}
	return page, nil
}

// OutboxEnd is the newest item's position, "" when the outbox is empty.
func (s *Store) OutboxEnd(ctx context.Context) (string, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.outbox(), "+", "-", 1).Result()
	if err != nil {
		return "", wrap("outbox", err)
	}
	if len(msgs) == 0 {
		// Before any entry the stream can hold: Redis gives new entries
		// ids above every id it gave before, also once they were trimmed.
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// OutboxItem reads the item at pos; ErrNotFound when it was pruned (or
// never was).
func (s *Store) OutboxItem(ctx context.Context, pos string) (optin.OutboxItem, error) {
	if err := checkPos(pos); err != nil {
		return optin.OutboxItem{}, err
	}
	msgs, err := s.rdb.XRangeN(ctx, s.keys.outbox(), pos, pos, 1).Result()
	if err != nil {
		return optin.OutboxItem{}, wrap("outbox", err)
	}
	if len(msgs) == 0 {
		return optin.OutboxItem{}, fmt.Errorf("redisstore: outbox item %s: %w", pos, optin.ErrNotFound)
	}
	items, err := s.outboxItems(ctx, msgs)
	if err != nil {
		return optin.OutboxItem{}, err
	}
	return items[0], nil
}

// outboxItems opens the events the entries refer to.
func (s *Store) outboxItems(ctx context.Context, msgs []redis.XMessage) ([]optin.OutboxItem, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	rs := make([]ref, len(msgs))
	notices := make([]string, len(msgs))
	for i, m := range msgs {
		var err error
		if rs[i], _, notices[i], err = decodeOutboxEntry(m); err != nil {
			return nil, err
		}
	}
	pg := &pager{s: s, subjects: map[string]*pagedSubject{}}
	events, err := pg.fetch(ctx, rs)
	if err != nil {
		return nil, err
	}
	items := make([]optin.OutboxItem, len(msgs))
	for i, se := range events {
		if se == nil {
			return nil, fmt.Errorf("redisstore: outbox: %w: entry %s names event %d of subject %s, which is missing", optin.ErrCorrupt, msgs[i].ID, rs[i].index, rs[i].sid)
		}
		sub := pg.subjects[se.SubjectID]
		e, err := optin.Open(keyAt(sub.key, sub.keyFrom, 0, rs[i].index), *se)
		if err != nil {
			return nil, fmt.Errorf("redisstore: outbox: %w", err)
		}
		if notices[i] != "" && e.Erased {
			if err := s.ring.FillNotice(&e, se.SubjectID, []byte(notices[i])); err != nil {
				return nil, fmt.Errorf("redisstore: outbox: %w", err)
			}
		}
		items[i] = optin.OutboxItem{Pos: msgs[i].ID, SubjectID: se.SubjectID, Event: e}
	}
	return items, nil
}
