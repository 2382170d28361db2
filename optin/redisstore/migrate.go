package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// LegacyKey returns the ledger key that a store of schema version 1
// keeps in its meta hash, nil for any other store (new, or of version
// 2): the key file of a store being upgraded is made from it, so that
// its subject ids stay. Nothing is written.
func LegacyKey(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]byte, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	vals, err := rdb.HMGet(ctx, keys{prefix}.meta(), metaVersion, metaLedgerV1).Result()
	if err != nil {
		return nil, wrap("open", err)
	}
	if v, _ := vals[0].(string); v != schemaV1 {
		return nil, nil
	}
	lk, _ := vals[1].(string)
	if len(lk) != optin.KeySize {
		return nil, fmt.Errorf("redisstore: %w: a version 1 store with a ledger key of %d bytes", optin.ErrCorrupt, len(lk))
	}
	return []byte(lk), nil
}

// migrate turns a store of schema version 1, which kept the ledger key
// in its meta hash and each subject's key and address in the clear, into
// version 2: per SCAN batch, the addresses are sealed and the keys
// wrapped (migrateScript, so a crash leaves each subject either way), the
// delivery marks move into the states, and last the meta hash gets the
// key check and loses the ledger key. The ledger key must be the store's
// (a key file made from LegacyKey). Run again after a crash, it goes on.
// Events, their chains and the feed stay as they are: their hashes cover
// what they hold.
func (s *Store) migrate(ctx context.Context, meta map[string]string, progress func(int)) error {
	ring := s.ring.Get()
	if !ring.IdentityIs([]byte(meta[metaLedgerV1])) {
		return fmt.Errorf("redisstore: %w: this store was written by an earlier optinproxy, which kept its ledger key inside the store, and the key file holds another: move the key file away and start again, and a key file is made from the store's own key",
			optin.ErrBadKey)
	}
	if err := s.rdb.HSet(ctx, s.keys.meta(), metaMigrating, "1").Err(); err != nil {
		return wrap("migrate", err)
	}
	done := 0
	err := s.eachSubjects(ctx, rotateBatch, func(ctx context.Context, rdb redis.Cmdable, sids []string) error {
		cmds := make([]*redis.SliceCmd, len(sids))
		piped, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, sid := range sids {
				cmds[i] = p.HMGet(ctx, s.keys.state(sid), fieldAddressV1, fieldKeyV1)
			}
			return nil
		})
		if err = pipeErr(piped, err); err != nil {
			return err
		}
		var calls []scriptCall
		for i, sid := range sids {
			stored, _ := cmds[i].Val()[0].(string)
			key, _ := cmds[i].Val()[1].(string)
			if stored == "" {
				continue // migrated already
			}
			a, err := optin.ParseAddress(stored)
			if err != nil || len(key) != optin.KeySize {
				return fmt.Errorf("%w: version 1 subject %s: address %v, key of %d bytes", optin.ErrCorrupt, sid, err, len(key))
			}
			calls = append(calls, scriptCall{keys: []string{s.keys.state(sid)},
				args: []any{stored, optin.SealAddress([]byte(key), sid, a), ring.Wrap(sid, []byte(key))}})
		}
		if len(calls) == 0 {
			return nil
		}
		if _, err := runEach(ctx, rdb, migrateScript, calls); err != nil {
			return err
		}
		done += len(calls)
		if progress != nil {
			progress(done)
		}
		return nil
	})
	if err == nil {
		err = s.migrateMarks(ctx)
	}
	if err != nil {
		return wrap("migrate", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.keys.meta(), metaVersion, schemaVersion, metaKeyCheck, ring.Check(), metaEpoch, newEpoch(),
			metaGeneration, ring.Newest())
		p.HDel(ctx, s.keys.meta(), metaLedgerV1, metaMigrating)
		return nil
	})
	if err != nil {
		return wrap("migrate", err)
	}
	s.rewriteFiles(ctx)
	return nil
}

// rewriteFiles asks Redis to write its files again (a snapshot when it
// takes them, the append-only file when it keeps one), so that what the
// migration replaced does not stay on its disk. A server that refuses
// (a managed Redis without CONFIG) keeps its files until its own next
// rewrite; the README says so.
func (s *Store) rewriteFiles(ctx context.Context) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return
	}
	for _, rdb := range nodes {
		if save, err := rdb.ConfigGet(ctx, "save").Result(); err == nil && strings.TrimSpace(save["save"]) != "" {
			rdb.BgSave(ctx)
		}
		if info, err := rdb.Info(ctx, "persistence").Result(); err == nil && strings.Contains(info, "aof_enabled:1") {
			rdb.BgRewriteAOF(ctx)
		}
	}
}

// migrateMarks moves version 1's delivery marks (a key each, named by
// the hex of 16 bytes of the message hash, valued by the until in Unix
// ns) into their subjects' states (a field each, 8 bytes of the hash,
// the until in Unix ms).
func (s *Store) migrateMarks(ctx context.Context) error {
	return s.eachKey(ctx, s.keys.markV1Pattern(), 200, func(ctx context.Context, rdb redis.Cmdable, found []string) error {
		vals := make([]*redis.StringCmd, len(found))
		piped, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range found {
				vals[i] = p.Get(ctx, k)
			}
			return nil
		})
		if err = pipeErr(piped, err); err != nil {
			return err
		}
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range found {
				sid, ok := s.keys.sidOf(k)
				_, mark, _ := strings.Cut(k, "}:d:")
				raw, herr := hex.DecodeString(mark)
				ns, nerr := strconv.ParseInt(vals[i].Val(), 10, 64)
				if ok && herr == nil && len(raw) >= 8 && nerr == nil {
					until := (ns + 999_999) / 1_000_000
					p.ZAdd(ctx, s.keys.marks(sid), redis.Z{Score: float64(until), Member: string(raw[:8])})
					// Redis drops the set at its last until.
					p.Do(ctx, "PEXPIREAT", s.keys.marks(sid), until, "NX")
					p.Do(ctx, "PEXPIREAT", s.keys.marks(sid), until, "GT")
				}
				p.Del(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return nil
	})
}
