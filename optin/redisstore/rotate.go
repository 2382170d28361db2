package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// rotateBatch is how many subjects Rotate and KeyUse read per round
// trip.
const rotateBatch = 200

// Rotate re-wraps, under the newest generation of the ledger key, every
// subject key wrapped under another: per SCAN batch, one round trip
// reads the wrapped keys and one replaces the old ones, each only when
// still the one read (rewrapScript), so writers may go on meanwhile. It
// first raises the store's newest generation (meta g), which makes the
// other instances read their key files again. Run again, it finds what
// is left.
func (s *Store) Rotate(ctx context.Context, progress func(int)) (int, error) {
	ring := s.ring.Get()
	if err := s.rdb.HSet(ctx, s.keys.meta(), metaGeneration, ring.Newest()).Err(); err != nil {
		return 0, wrap("rotate", err)
	}
	s.gen.Store(ring.Newest())
	done := 0
	err := s.eachSubjects(ctx, rotateBatch, func(ctx context.Context, rdb redis.Cmdable, sids []string) error {
		wrapped, err := s.wrappedKeys(ctx, rdb, sids)
		if err != nil {
			return err
		}
		type rewrap struct {
			sid, old, new string
			cmd           *redis.Cmd
		}
		var todo []*rewrap
		for i, sid := range sids {
			if g, ok := optin.WrapGeneration([]byte(wrapped[i])); !ok || g == ring.Newest() {
				continue
			}
			key, err := s.ring.Unwrap(sid, []byte(wrapped[i]))
			if err != nil {
				return err
			}
			todo = append(todo, &rewrap{sid: sid, old: wrapped[i], new: string(ring.Wrap(sid, key))})
		}
		if len(todo) == 0 {
			return nil
		}
		calls := make([]scriptCall, len(todo))
		for i, r := range todo {
			calls[i] = scriptCall{keys: []string{s.keys.state(r.sid)}, args: []any{r.old, r.new}}
		}
		cmds, err := runEach(ctx, rdb, rewrapScript, calls)
		if err != nil {
			return err
		}
		for i, r := range todo {
			r.cmd = cmds[i]
		}
		for _, r := range todo {
			if n, _ := r.cmd.Int(); n == 1 {
				done++
			}
		}
		if progress != nil {
			progress(done)
		}
		return nil
	})
	if err != nil {
		return done, wrap("rotate", err)
	}
	return done, nil
}

// wrappedKeys reads the subjects' wrapped keys in one round trip ("" for
// none).
func (s *Store) wrappedKeys(ctx context.Context, rdb redis.Cmdable, sids []string) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(sids))
	piped, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			cmds[i] = p.HGet(ctx, s.keys.state(sid), fieldWrappedKey)
		}
		return nil
	})
	if err = pipeErr(piped, err); err != nil {
		return nil, err
	}
	out := make([]string, len(sids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// KeyUse counts the wrapped subject keys per generation.
func (s *Store) KeyUse(ctx context.Context) (map[uint32]int, error) {
	use := map[uint32]int{}
	seen := map[string]bool{}
	err := s.eachSubjects(ctx, rotateBatch, func(ctx context.Context, rdb redis.Cmdable, sids []string) error {
		wrapped, err := s.wrappedKeys(ctx, rdb, sids)
		if err != nil {
			return err
		}
		for i, w := range wrapped {
			if w == "" || seen[sids[i]] {
				continue
			}
			seen[sids[i]] = true
			g, ok := optin.WrapGeneration([]byte(w))
			if !ok {
				return fmt.Errorf("%w: subject %s: wrapped key of %d bytes", optin.ErrCorrupt, sids[i], len(w))
			}
			use[g]++
		}
		return nil
	})
	if err != nil {
		return nil, wrap("key use", err)
	}
	return use, nil
}
