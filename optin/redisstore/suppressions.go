package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// Suppressions pages through all suppressions, by subject id and then in
// the order of reasons: ZRANGE BYLEX over the index, then the subjects'
// addresses and suppression times in one pipelined round trip. The
// cursor is the subject id and reason of the page's last entry. A cursor
// that does not decode is an error wrapping optin.ErrBadInput.
func (s *Store) Suppressions(ctx context.Context, cursor string, limit int) (optin.SuppressionPage, error) {
	limit = optin.PageSize(limit)
	start, cursorSID, afterReason := "-", "", -1
	if cursor != "" {
		sid, r, ok := strings.Cut(cursor, ":")
		n, err := strconv.Atoi(r)
		if !ok || sid == "" || err != nil || n < 0 || n >= len(reasons) {
			return optin.SuppressionPage{}, fmt.Errorf("redisstore: suppressions: %w: cursor %q", optin.ErrBadInput, cursor)
		}
		start, cursorSID, afterReason = "["+sid, sid, n
	}
	fields := make([]string, 0, 2+len(reasons))
	fields = append(fields, fieldWrappedKey, fieldSealedAddress)
	for _, r := range reasons {
		fields = append(fields, suppressPrefix+string(r))
	}
	var page optin.SuppressionPage
	for {
		n := limit - len(page.Suppressions) + 1
		sids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: s.keys.supp(), Start: start, Stop: "+", ByLex: true, Count: int64(n),
		}).Result()
		if err != nil {
			return optin.SuppressionPage{}, wrap("suppressions", err)
		}
		cmds := make([]*redis.SliceCmd, len(sids))
		if len(sids) > 0 {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, sid := range sids {
					cmds[i] = p.HMGet(ctx, s.keys.state(sid), fields...)
				}
				return nil
			})
			if err != nil {
				return optin.SuppressionPage{}, wrap("suppressions", err)
			}
		}
		for i, sid := range sids {
			vals := cmds[i].Val()
			from := 0
			if sid == cursorSID {
				from = afterReason + 1 // the cursor's subject, partly listed
			}
			var a optin.Address
			for j := from; j < len(reasons); j++ {
				t, ok := nanos(vals[2+j])
				if !ok {
					continue
				}
				if len(page.Suppressions) == limit {
					return page, nil // NextCursor set by the last entry added
				}
				if a.IsZero() {
					w, _ := vals[0].(string)
					p, _ := vals[1].(string)
					if _, a, err = s.subjectKey(sid, w, p); err != nil {
						return optin.SuppressionPage{}, fmt.Errorf("redisstore: suppressions: %w", err)
					}
					if a.IsZero() {
						break // erased: no address to list (issue of erasure)
					}
				}
				page.Suppressions = append(page.Suppressions, optin.Suppression{Subject: a, Reason: reasons[j], CreatedAt: t})
				page.NextCursor = sid + ":" + strconv.Itoa(j)
			}
		}
		if len(sids) < n {
			page.NextCursor = ""
			return page, nil
		}
		start = "(" + sids[len(sids)-1] // go on after the last subject read
	}
}
