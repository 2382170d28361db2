package redisstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/optin"
)

// Receipts name their purpose and actor (a few names, repeated in
// every receipt) by a 3-byte code: 16 bytes saved per receipt (a receipt
// may use at most 200 bytes). The code is a hash of the name, so every
// instance computes the same; the names hash ({prefix}names: code to
// name) lets readers turn codes back, and the write script sets the
// codes of its batch there too, so the table is whole whenever a receipt
// refers to it. Two names whose codes collide: the second is written as
// text.

// codeSize is the size of a name's code.
const codeSize = 3

func nameCode(name string) string {
	sum := sha256.Sum256([]byte("optinproxy name\x00" + name))
	return string(sum[:codeSize])
}

// names caches the names hash. Safe for concurrent use.
type names struct {
	mu       sync.RWMutex
	code     map[string]string // name to code, "" when written as text
	name     map[string]string // code to name
	loadedAt time.Time
}

func newNames() *names {
	return &names{code: map[string]string{}, name: map[string]string{}}
}

// use returns the code to write name with: its code unless it is known
// to be written as text. On one node the write script registers the
// codes it writes (and answers when one is another name's: then
// taken); on Cluster, where the script cannot reach the names hash,
// codeOf does, once per name.
func (n *names) use(name string) string {
	n.mu.RLock()
	c, ok := n.code[name]
	n.mu.RUnlock()
	if ok {
		return c
	}
	return nameCode(name)
}

// isRegistered reports whether name is known to have its code in the
// names hash (or to be written as text).
func (n *names) isRegistered(name string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	_, ok := n.code[name]
	return ok
}

// forget drops what is known of the names hash: after a loss of the
// store's data it has to be written again.
func (n *names) forget() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.code = map[string]string{}
}

// registered records that name has its code in the names hash.
func (n *names) registered(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := nameCode(name)
	n.code[name], n.name[c] = c, name
}

// taken records that name's code belongs to another name: name is
// written as text.
func (n *names) taken(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.code[name] = ""
}

// codeOf returns the code of name, registering it on first use (HSETNX,
// then a read back to see that no other name took the code), or "" when
// the name is written as text. Cluster's writes use it.
func (n *names) codeOf(ctx context.Context, s *Store, name string) (string, error) {
	n.mu.RLock()
	c, ok := n.code[name]
	n.mu.RUnlock()
	if ok {
		return c, nil
	}
	c = nameCode(name)
	var got *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, s.keys.names(), c, name)
		got = p.HGet(ctx, s.keys.names(), c)
		return nil
	})
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if got.Val() != name {
		n.code[name] = "" // another name has the code: text
		return "", nil
	}
	n.code[name], n.name[c] = c, name
	return c, nil
}

// nameOf turns a code back, reading the names hash again (at most once a
// second) when the code is not known yet (another instance registered
// it). An unknown code is an error wrapping optin.ErrCorrupt.
func (n *names) nameOf(ctx context.Context, s *Store, code string) (string, error) {
	n.mu.RLock()
	name, ok := n.name[code]
	n.mu.RUnlock()
	if ok {
		return name, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := n.name[code]; ok {
		return name, nil
	}
	if time.Since(n.loadedAt) > time.Second {
		all, err := s.rdb.HGetAll(ctx, s.keys.names()).Result()
		if err != nil {
			return "", err
		}
		n.loadedAt = time.Now()
		for c, name := range all {
			n.name[c] = name
		}
		if name, ok := n.name[code]; ok {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: a receipt names the unknown code %x (the names hash lacks it)", optin.ErrCorrupt, code)
}

// resolver returns nameOf bound to ctx and s, for decodeReceipt.
func (n *names) resolver(ctx context.Context, s *Store) func(string) (string, error) {
	return func(code string) (string, error) { return n.nameOf(ctx, s, code) }
}
