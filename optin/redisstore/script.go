package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// applyScript writes the changes of a batch in one round trip, all or
// nothing, but only when every subject's chains are still where the
// store read them: it appends the events the store sealed and chained in
// Go (Lua has no SHA-256), so a chain moved by another writer would be
// broken. Any subject whose check fails makes it write nothing and
// answer {"conflict", i}; otherwise {"ok"}. But when that subject's
// first new entry is already where this call puts it, this same call
// ran before (go-redis sends a script again when its reply is lost):
// then it writes nothing and answers {"done"}, since that run wrote
// the whole batch.
//
// KEYS: per subject its state hash, main list, receipt list and marks;
// then, when ARGV[2] is "1", the feed, the suppression index, the names
// hash, the outbox and the index of scheduled erasures (one node; on
// Cluster those are written apart).
//
// ARGV: [1] the number of subjects, [2] "1" to write the indexes, [3]
// now in Unix ms (marks before it are dropped), [4] the feed entry ("" for
// none), [5] the number of name codes the receipts use, then each code
// and its name (one node only: registered in the names hash, KEYS after
// the suppression index; a code another name holds makes the script
// write nothing and answer {"name", code}); then per subject: flags, the
// subject id, the main chain's head as read (32 raw bytes or ""), the
// receipt chain's, the main chain's length as read, the receipts ever
// appended as read (pruned ones included), the wrapped key as read (""
// for none), the fields to set (a count, then names and values),
// to delete (a count, then names), the events to append (a count, then
// entries), the receipts to append (likewise), the delivery marks (a
// count, then each mark's until in Unix ms and member), and the latest
// of those untils; last, the outbox entries (a count, then each entry's
// value: one per event of a main chain, none for receipts).
//
// Flags: N the state must not exist, X it must (with the wrapped key
// read: a rotation or an erasure since makes it a conflict); E the main
// chain's head must be the one given (the last event's 32 bytes), R the
// receipt chain's (the last receipt's 16 bytes, or rp when all are
// pruned); + and - add the subject to the suppression index or take it
// out; D deletes its delivery marks (an erasure); S and the due time in
// Unix ms add it to the index of scheduled erasures, s takes it out.
var applyScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local indexes = ARGV[2] == '1'
local now = tonumber(ARGV[3])
local nnames = tonumber(ARGV[5])
local a = 6 + 2*nnames
local subs = {}
for j = 0, nnames - 1 do
  local code, name = ARGV[6 + 2*j], ARGV[7 + 2*j]
  local held = redis.call('HGET', KEYS[4*n+3], code)
  if held and held ~= name then return {'name', code} end
end
local function tail(list, size)
  local t = redis.call('LINDEX', list, -1)
  if t then return string.sub(t, -size) end
  return nil
end
-- landed tells whether this very call ran before (go-redis sends a
-- script again when its reply is lost): the subject's first entry is
-- where this call puts it. Chains only grow at their ends (receipts
-- are pruned from the front, counted in ro), so it stays there.
local function landed(s)
  if s.ne > 0 then return redis.call('LINDEX', s.e, s.n) == ARGV[s.ev] end
  local ro = tonumber(redis.call('HGET', s.state, 'ro') or '0')
  return s.rn >= ro and redis.call('LINDEX', s.r, s.rn - ro) == ARGV[s.rc]
end
for i = 1, n do
  local s = {flags = ARGV[a], sid = ARGV[a+1], eh = ARGV[a+2], rh = ARGV[a+3], n = tonumber(ARGV[a+4]), rn = tonumber(ARGV[a+5]), w = ARGV[a+6]}
  a = a + 7
  local k = 4*i - 3
  s.state, s.e, s.r, s.d = KEYS[k], KEYS[k+1], KEYS[k+2], KEYS[k+3]
  s.nset = tonumber(ARGV[a]); s.set = a + 1; a = s.set + 2*s.nset
  s.ndel = tonumber(ARGV[a]); s.del = a + 1; a = s.del + s.ndel
  s.ne = tonumber(ARGV[a]); s.ev = a + 1; a = s.ev + s.ne
  s.nr = tonumber(ARGV[a]); s.rc = a + 1; a = s.rc + s.nr
  s.nm = tonumber(ARGV[a]); s.mk = a + 1; a = s.mk + 2*s.nm
  s.last = tonumber(ARGV[a]); a = a + 1
  local f = s.flags
  local exists = redis.call('EXISTS', s.state) == 1
  local moved = (string.find(f, 'N', 1, true) and exists)
    or (string.find(f, 'X', 1, true) and (not exists or (redis.call('HGET', s.state, 'w') or '') ~= s.w))
    or (string.find(f, 'E', 1, true) and (tail(s.e, 32) or '') ~= s.eh)
  if not moved and string.find(f, 'R', 1, true) then
    moved = (tail(s.r, 16) or redis.call('HGET', s.state, 'rp') or '') ~= s.rh
  end
  if moved then
    -- All or nothing: one subject's entry in place means the whole
    -- call was written.
    if landed(s) then return {'done'} end
    return {'conflict', tostring(i)}
  end
  subs[i] = s
end
local nob = tonumber(ARGV[a]) or 0
for i = 1, n do
  local s = subs[i]
  if s.nset > 0 then redis.call('HSET', s.state, unpack(ARGV, s.set, s.set + 2*s.nset - 1)) end
  if s.ndel > 0 then redis.call('HDEL', s.state, unpack(ARGV, s.del, s.del + s.ndel - 1)) end
  if s.ne > 0 then redis.call('RPUSH', s.e, unpack(ARGV, s.ev, s.ev + s.ne - 1)) end
  if s.nr > 0 then redis.call('RPUSH', s.r, unpack(ARGV, s.rc, s.rc + s.nr - 1)) end
  if string.find(s.flags, 'D', 1, true) then redis.call('DEL', s.d) end
  if s.nm > 0 then
    -- Marks: a sorted set by until, which Redis drops whole at the last
    -- until; a set that has grown is trimmed of the expired ones.
    if redis.call('ZADD', s.d, unpack(ARGV, s.mk, s.mk + 2*s.nm - 1)) > 0 and redis.call('ZCARD', s.d) > 32 then
      redis.call('ZREMRANGEBYSCORE', s.d, '-inf', now)
    end
    if redis.call('PEXPIRETIME', s.d) < s.last then redis.call('PEXPIREAT', s.d, s.last) end
  end
  if indexes then
    if string.find(s.flags, '+', 1, true) then redis.call('ZADD', KEYS[4*n+2], 0, s.sid) end
    if string.find(s.flags, '-', 1, true) then redis.call('ZREM', KEYS[4*n+2], s.sid) end
    local due = string.match(s.flags, 'S(%d+)')
    if due then redis.call('ZADD', KEYS[4*n+5], due, s.sid) end
    if string.find(s.flags, 's', 1, true) then redis.call('ZREM', KEYS[4*n+5], s.sid) end
  end
end
if indexes and ARGV[4] ~= '' then redis.call('XADD', KEYS[4*n+1], '*', 'r', ARGV[4]) end
if indexes then
  for j = 1, nob do redis.call('XADD', KEYS[4*n+4], '*', 'o', ARGV[a + j]) end
end
for j = 0, nnames - 1 do
  redis.call('HSETNX', KEYS[4*n+3], ARGV[6 + 2*j], ARGV[7 + 2*j])
end
return {'ok'}
`)

// rewrapScript replaces a subject's wrapped key when it is still the
// one read: KEYS[1] the state; ARGV[1] the old wrap, ARGV[2] the new.
// It answers 1 when it replaced it.
var rewrapScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'w', ARGV[2])
  return 1
end
return 0
`)

// pruneScript drops a subject's receipts older than a time from the
// front of its receipt list, keeping the chain verifiable: the state's
// ro counts the dropped ones and rp keeps the hash of the last.
// KEYS[1] the state, KEYS[2] the receipt list; ARGV[1] the time in Unix
// ms. A receipt's time is the first 6 bytes of its id, which follows its
// format byte. It answers how many it dropped.
var pruneScript = redis.NewScript(`
local cut = tonumber(ARGV[1])
local dropped, last = 0, nil
while true do
  local e = redis.call('LINDEX', KEYS[2], dropped)
  if not e then break end
  local ms = 0
  for i = 2, 7 do ms = ms * 256 + string.byte(e, i) end
  if ms >= cut then break end
  dropped = dropped + 1
  last = e
end
if dropped > 0 then
  redis.call('LTRIM', KEYS[2], dropped, -1)
  redis.call('HINCRBY', KEYS[1], 'ro', dropped)
  redis.call('HSET', KEYS[1], 'rp', string.sub(last, -16))
end
return dropped
`)

// migrateScript turns one subject of schema version 1 into version 2:
// KEYS[1] the state; ARGV[1] the stored address as read, ARGV[2] the
// sealed address, ARGV[3] the wrapped key. It changes nothing when the
// address is no longer the one read (migrated already). It answers 1
// when it migrated the subject.
var migrateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'a') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'p', ARGV[2], 'w', ARGV[3])
redis.call('HDEL', KEYS[1], 'a', 'k', 'n')
return 1
`)

// scriptCall is one run of a script in runEach.
type scriptCall struct {
	keys []string
	args []any
}

// runEach runs script once per call in one pipeline (EVALSHA), loading
// the script first when the server lacks it (a restarted Redis), and
// returns each run's reply.
func runEach(ctx context.Context, rdb redis.Cmdable, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	run := func() error {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range calls {
				cmds[i] = script.EvalSha(ctx, p, c.keys, c.args...)
			}
			return nil
		})
		return err
	}
	err := run()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = script.Load(ctx, rdb).Err(); err == nil {
			err = run()
		}
	}
	return cmds, err
}
