package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// nodes are the servers that hold subjects: the one node, or Cluster's
// masters in the order of their addresses (so that a cursor names one).
func (s *Store) nodes(ctx context.Context) ([]redis.Cmdable, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{s.rdb}, nil
	}
	var (
		mu  sync.Mutex
		all []*redis.Client
	)
	err := cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
		mu.Lock()
		all = append(all, node)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	out := make([]redis.Cmdable, len(all))
	for i, c := range all {
		out[i] = c
	}
	return out, nil
}

// eachSubjects SCANs the state keys of every node, about batch at a
// time, and hands fn each batch's subject ids (SCAN may repeat a key).
func (s *Store) eachSubjects(ctx context.Context, batch int, fn func(ctx context.Context, rdb redis.Cmdable, sids []string) error) error {
	return s.eachKey(ctx, s.keys.statePattern(), batch, func(ctx context.Context, rdb redis.Cmdable, keys []string) error {
		return fn(ctx, rdb, s.sidsOf(keys))
	})
}

// eachKey SCANs the keys of every node that match pattern, about batch
// at a time, and hands fn each batch.
func (s *Store) eachKey(ctx context.Context, pattern string, batch int, fn func(ctx context.Context, rdb redis.Cmdable, keys []string) error) error {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return err
	}
	for _, rdb := range nodes {
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, pattern, int64(batch)).Result()
			if err != nil {
				return err
			}
			if err := fn(ctx, rdb, keys); err != nil {
				return err
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return nil
}

func (s *Store) sidsOf(keys []string) []string {
	sids := make([]string, 0, len(keys))
	for _, k := range keys {
		if sid, ok := s.keys.sidOf(k); ok {
			sids = append(sids, sid)
		}
	}
	return sids
}

// Subjects pages through the subjects by SCAN over the state keys. A
// SCAN step may return more keys than the page has room for; those wait
// in the cursor: "NODE:SCANCURSOR:SID,SID,...". A subject without a key
// (erased) is not listed.
func (s *Store) Subjects(ctx context.Context, cursor string, limit int) (optin.SubjectPage, error) {
	limit = optin.PageSize(limit)
	node, scan, waiting, err := parseSubjectCursor(cursor)
	if err != nil {
		return optin.SubjectPage{}, err
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return optin.SubjectPage{}, wrap("subjects", err)
	}
	var page optin.SubjectPage
	for node < len(nodes) && len(page.Subjects) < limit {
		if len(waiting) == 0 {
			if scan == 0 { // this node is done
				node, scan = node+1, -1
				continue
			}
			keys, next, err := nodes[node].Scan(ctx, uint64(max(scan, 0)), s.keys.statePattern(), int64(limit)).Result()
			if err != nil {
				return optin.SubjectPage{}, wrap("subjects", err)
			}
			waiting, scan = s.sidsOf(keys), int64(next)
			continue
		}
		take := waiting[:min(len(waiting), limit-len(page.Subjects))]
		views, err := s.views(ctx, take)
		if err != nil {
			return optin.SubjectPage{}, err
		}
		page.Subjects = append(page.Subjects, views...)
		waiting = waiting[len(take):]
	}
	if len(waiting) == 0 && scan == 0 {
		node, scan = node+1, -1
	}
	if node < len(nodes) {
		page.NextCursor = fmt.Sprintf("%d:%d:%s", node, scan, strings.Join(waiting, ","))
	}
	return page, nil
}

// parseSubjectCursor reads Subjects' cursor; "" is the start (scan -1
// means: not begun).
func parseSubjectCursor(c string) (node int, scan int64, waiting []string, err error) {
	if c == "" {
		return 0, -1, nil, nil
	}
	f := strings.SplitN(c, ":", 3)
	bad := fmt.Errorf("redisstore: subjects: %w: cursor %q", optin.ErrBadInput, c)
	if len(f) != 3 {
		return 0, 0, nil, bad
	}
	n, err1 := strconv.Atoi(f[0])
	sc, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || n < 0 || sc < -1 {
		return 0, 0, nil, bad
	}
	if f[2] != "" {
		waiting = strings.Split(f[2], ",")
	}
	return n, sc, waiting, nil
}

// views reads the current state of subjects (no events) in one round
// trip, addresses opened; subjects without a key are left out.
func (s *Store) views(ctx context.Context, sids []string) ([]optin.SubjectView, error) {
	if len(sids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(sids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			cmds[i] = p.HGetAll(ctx, s.keys.state(sid))
		}
		return nil
	})
	if err != nil {
		return nil, wrap("subjects", err)
	}
	out := make([]optin.SubjectView, 0, len(sids))
	for i, sid := range sids {
		m := cmds[i].Val()
		if m[fieldWrappedKey] == "" {
			continue
		}
		r, err := s.decodeState(sid, optin.Address{}, m, "", "", 0, 0)
		if err != nil {
			return nil, fmt.Errorf("redisstore: subjects: %w", err)
		}
		v := optin.SubjectView{Address: r.st.Address}
		for _, c := range r.st.Consents {
			v.Consents = append(v.Consents, c)
		}
		slices.SortFunc(v.Consents, func(a, b optin.Consent) int { return strings.Compare(a.Purpose, b.Purpose) })
		for _, reason := range reasons {
			if t, ok := r.st.Suppressions[reason]; ok {
				v.Suppressions = append(v.Suppressions, optin.Suppression{Subject: r.st.Address, Reason: reason, CreatedAt: t})
			}
		}
		out = append(out, v)
	}
	return out, nil
}
