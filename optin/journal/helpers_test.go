package journal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/internal/testtools"
	"optinproxy/optin"
)

// testKeys is the ledger key of the tests' stores.
var testKeys = teststore.Keys

// env is a test's world: a redis-server that keeps its data across a
// restart, the Redis store on it, and where the journal lives.
type env struct {
	srv   *redistest.Server
	store optin.Store
	path  string
	key   []byte
	logs  *testtools.LogBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	return &env{srv: srv, store: teststore.Redis(t, srv), path: filepath.Join(t.TempDir(), "data", "receipts.journal"),
		key: testKeys.Get().Derive("journal"), logs: &testtools.LogBuffer{}}
}

// options are the journal's options in env; change edits them.
func (e *env) options(t *testing.T, change ...func(*Options)) Options {
	opts := Options{Path: e.path, Key: e.key, Store: e.store, RetryEvery: 10 * time.Millisecond, StoreTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, c := range change {
		c(&opts)
	}
	return opts
}

// open opens the journal; it is closed when the test ends.
func (e *env) open(t *testing.T, change ...func(*Options)) *Journal {
	t.Helper()
	j, err := Open(e.options(t, change...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		j.Close()
		if t.Failed() {
			t.Logf("journal log:\n%s", e.logs.String())
		}
	})
	return j
}

// size is the size of the journal file.
func (e *env) size(t *testing.T) int64 {
	t.Helper()
	info, err := os.Stat(e.path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func addr(t testing.TB, format string, args ...any) optin.Address {
	t.Helper()
	a, err := optin.ParseAddress(fmt.Sprintf(format, args...))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// receipt is the message.relayed receipt of message mid for a, with its
// delivered mark, as the relay writes one.
func receipt(a optin.Address, mid string, at time.Time) optin.Change {
	return optin.Receipt{Subject: a, Purpose: "newsletter", Actor: "smtp:test", Time: at, Relayed: true,
		Decision:  optin.Decision{Allow: true, Reason: optin.ReasonConsent},
		Details:   optin.ReceiptDetails{MessageID: mid},
		Delivered: &optin.Delivery{Message: markKey(mid), Until: at.Add(24 * time.Hour)}}.Change()
}

// markKey is the relay's key of message mid.
func markKey(mid string) string { return "mid:" + mid }

// history returns a's events, oldest first.
func history(t *testing.T, s optin.Store, a optin.Address) []optin.Event {
	t.Helper()
	var out []optin.Event
	q := optin.EventQuery{Subject: a, Limit: optin.MaxPageSize}
	for {
		page, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Events...)
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}

// checkStored fails unless every change's event is in its subject's
// history exactly once, and its delivered mark is there.
func checkStored(t *testing.T, s optin.Store, changes []optin.Change) {
	t.Helper()
	ctx := context.Background()
	bySubject := map[optin.Address][]optin.Change{}
	for _, ch := range changes {
		bySubject[ch.Subject] = append(bySubject[ch.Subject], ch)
	}
	for a, chs := range bySubject {
		ids := map[string]int{}
		for _, e := range history(t, s, a) {
			ids[e.ID]++
		}
		for _, ch := range chs {
			if n := ids[ch.Event.ID]; n != 1 {
				t.Errorf("subject %s: event %s is in the history %d times, want once", a.Hash(), ch.Event.ID, n)
			}
			if ch.Delivered == nil {
				continue
			}
			st, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a}, Message: ch.Delivered.Message})
			if err != nil {
				t.Fatal(err)
			}
			if !st[0].Delivered {
				t.Errorf("subject %s: no delivered mark for %s", a.Hash(), ch.Delivered.Message)
			}
		}
	}
}

// outage stops the server and journals n receipts, one Apply each, for
// subjects of the given prefix; it returns the changes.
func outage(t *testing.T, e *env, j *Journal, prefix string, n int) []optin.Change {
	t.Helper()
	e.srv.Stop()
	return journal(t, j, prefix, n)
}

// journal applies n receipts through j, one Apply each; the store is
// down, or the journal not empty, so they are journaled.
func journal(t *testing.T, j *Journal, prefix string, n int) []optin.Change {
	t.Helper()
	var out []optin.Change
	for i := range n {
		ch := receipt(addr(t, "%s%d@example.com", prefix, i), fmt.Sprintf("<%s-%d@crm.example>", prefix, i), time.Now())
		before := j.Journaled()
		res, err := j.Apply(context.Background(), []optin.Change{ch})
		if err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		if j.Journaled() != before+1 {
			t.Fatalf("Apply %d was not journaled", i)
		}
		if len(res) != 1 || !res[0].Applied || res[0].Event.ID != ch.Event.ID {
			t.Fatalf("Apply %d: results %+v", i, res)
		}
		out = append(out, ch)
	}
	return out
}

// restart starts the stopped server again and waits until the store
// answers: the client may take a moment (go-redis backs off dialing
// after many failed dials).
func (e *env) restart(t *testing.T) {
	t.Helper()
	e.srv.Restart()
	waitFor(t, "the store to answer", func() bool { return e.store.Ping(context.Background()) == nil })
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaks returns the forms of secret found in b: as it is, in hex, and in
// base64 at each alignment (when long enough not to match by chance).
func leaks(b []byte, secret string) []string {
	var found []string
	forms := map[string]string{"plain": secret, "hex": hex.EncodeToString([]byte(secret)),
		"HEX": strings.ToUpper(hex.EncodeToString([]byte(secret)))}
	for shift := range 3 {
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString([]byte(strings.Repeat("x", shift) + secret))
			if core := s[4 : len(s)-4]; len(core) >= 12 { // the part only secret's bytes decide; shorter ones match by chance
				forms[fmt.Sprintf("%s+%d", name, shift)] = core
			}
		}
	}
	for name, form := range forms {
		if bytes.Contains(b, []byte(form)) {
			found = append(found, name)
		}
	}
	return found
}

// quiet drops go-redis's own log lines (failed dials while a test has
// stopped the server); the tests check the errors the journal returns.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quiet{}) }
