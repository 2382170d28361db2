package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestStoreUp: while the store takes writes, Apply and Lookup go
// straight to it and the journal file stays empty.
func TestStoreUp(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	a := addr(t, "up@example.com")
	ch := receipt(a, "<up@crm.example>", time.Now())
	res, err := j.Apply(ctx, []optin.Change{ch})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].Applied || res[0].Event.Hash == "" {
		t.Errorf("results %+v, want the store's, with the event's hash", res)
	}
	st, err := j.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{a}, Message: markKey("<up@crm.example>")})
	if err != nil || !st[0].Delivered {
		t.Errorf("Lookup: %+v %v, want the delivered mark", st, err)
	}
	checkStored(t, e.store, []optin.Change{ch})
	if n := e.size(t); n != 0 || j.Depth() != 0 || j.Journaled() != 0 || j.syncs.Load() != 0 {
		t.Errorf("journal: %d bytes, depth %d, journaled %d, %d syncs; want nothing", n, j.Depth(), j.Journaled(), j.syncs.Load())
	}
}

// TestOutage: with Redis down, Apply journals and acknowledges; the file
// shows nothing personal; Lookup fails closed; once Redis is back, Drain
// writes each receipt once, with its delivered mark, and empties the file.
func TestOutage(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	changes := outage(t, e, j, "down", 20)
	if j.Depth() != 20 || j.Journaled() != 20 {
		t.Errorf("depth %d, journaled %d; want 20", j.Depth(), j.Journaled())
	}

	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("the journal file is empty")
	}
	secrets := []string{"newsletter", "message.relayed", "smtp:test"}
	for _, ch := range changes {
		secrets = append(secrets, ch.Subject.String(), ch.Delivered.Message, ch.Event.ID)
	}
	for _, s := range secrets {
		if forms := leaks(raw, s); len(forms) > 0 {
			t.Errorf("the journal shows %q (%s)", s, strings.Join(forms, ", "))
		}
	}

	_, err = j.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{changes[0].Subject}})
	if !errors.Is(err, optin.ErrUnavailable) {
		t.Errorf("Lookup while the journal holds changes: %v, want ErrUnavailable", err)
	}
	if err := j.Drain(ctx); !errors.Is(err, optin.ErrUnavailable) {
		t.Errorf("Drain with the store down: %v, want ErrUnavailable", err)
	}
	if j.Depth() != 20 {
		t.Errorf("depth %d after a failed drain, want 20", j.Depth())
	}

	e.restart(t)
	if err := j.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	checkStored(t, e.store, changes)
	if n := e.size(t); n != 0 || j.Depth() != 0 {
		t.Errorf("after the drain: %d bytes, depth %d; want empty", n, j.Depth())
	}
	if _, err := j.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{changes[0].Subject}}); err != nil {
		t.Errorf("Lookup after the drain: %v", err)
	}
	if r, err := e.store.Verify(ctx); err != nil || len(r.Broken) != 0 || r.Receipts != 20 {
		t.Errorf("Verify: %+v %v; want 20 receipts, no broken chain", r, err)
	}

	logs := e.logs.String()
	for _, s := range secrets[3:] {
		if strings.Contains(logs, s) {
			t.Errorf("the log shows %q:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, "journaling them") || !strings.Contains(logs, "journal drained") {
		t.Errorf("the log does not tell of the outage and the drain:\n%s", logs)
	}
}

// TestLookupDrains: once the store is back, a Lookup drains the journal
// first (concurrent ones share the attempt) and then answers.
func TestLookupDrains(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	changes := outage(t, e, j, "look", 5)
	e.restart(t)
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			st, err := j.Lookup(context.Background(), optin.LookupQuery{Purpose: "newsletter",
				Addresses: []optin.Address{changes[0].Subject}, Message: changes[0].Delivered.Message})
			if err == nil && !st[0].Delivered {
				err = errors.New("Lookup answered without the journaled delivered mark")
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	checkStored(t, e.store, changes)
}

// TestLookupBoundedByContext: a Lookup waiting for a drain gives up with
// its context, failing closed.
func TestLookupBoundedByContext(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	outage(t, e, j, "ctx", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Addresses: []optin.Address{addr(t, "x@example.com")}}); !errors.Is(err, optin.ErrUnavailable) {
		t.Errorf("Lookup: %v, want ErrUnavailable", err)
	}
}

// TestRefused: changes the store would refuse are refused before
// anything is tried or journaled, whether the journal is empty or not.
func TestRefused(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	ctx := context.Background()
	a := addr(t, "bad@example.com")
	noSubject := receipt(a, "<bad@crm.example>", time.Now())
	noSubject.Subject = optin.Address{}
	noUntil := receipt(a, "<bad@crm.example>", time.Now())
	noUntil.Delivered.Until = time.Time{}
	check := func(when string) {
		if _, err := j.Apply(ctx, []optin.Change{receipt(a, "<ok@crm.example>", time.Now()), noSubject}); !errors.Is(err, optin.ErrBadAddress) {
			t.Errorf("%s: a change without a subject: %v, want ErrBadAddress", when, err)
		}
		if _, err := j.Apply(ctx, []optin.Change{noUntil}); !errors.Is(err, optin.ErrBadInput) {
			t.Errorf("%s: a mark without an until: %v, want ErrBadInput", when, err)
		}
	}
	check("store up")
	outage(t, e, j, "refused", 1)
	check("journal not empty")
	if j.Depth() != 1 || j.Journaled() != 1 {
		t.Errorf("depth %d, journaled %d; want only the outage's change", j.Depth(), j.Journaled())
	}
}

// TestOpen: the options are checked; the directory is made 0700 and the
// file 0600; a second Journal on the file is refused.
func TestOpen(t *testing.T) {
	e := newEnv(t)
	_, err := Open(Options{Key: []byte("short")})
	for _, want := range []string{"no path", "a key of 5 bytes", "no store"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open without options: %v; want it to say %q", err, want)
		}
	}
	j := e.open(t)
	for path, want := range map[string]os.FileMode{filepath.Dir(e.path): 0o700 | os.ModeDir, e.path: 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode(), want)
		}
	}
	if _, err := Open(e.options(t)); !errors.Is(err, ErrLocked) {
		t.Errorf("a second Open: %v, want ErrLocked", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Apply(context.Background(), []optin.Change{receipt(addr(t, "late@example.com"), "<late@x>", time.Now())}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := j.Drain(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Drain after Close: %v, want ErrClosed", err)
	}
	j2, err := Open(e.options(t))
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
}

// TestWrongKey: a journal sealed under another key is refused, not set
// aside.
func TestWrongKey(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	outage(t, e, j, "key", 3)
	j.Close()
	size := e.size(t)
	other := optin.NewKeyring(time.Now()).Derive("journal")
	_, err := Open(e.options(t, func(o *Options) { o.Key = other }))
	if !errors.Is(err, optin.ErrBadKey) {
		t.Errorf("Open under another key: %v, want ErrBadKey", err)
	}
	if e.size(t) != size {
		t.Errorf("the journal changed: %d bytes, was %d", e.size(t), size)
	}
	if _, err := os.Stat(e.path + ".damaged"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a side file was made: %v", err)
	}
}

// TestWriteFails: when the journal cannot write, Apply says so
// (ErrWrite), and takes no more changes; what it held still drains.
func TestWriteFails(t *testing.T) {
	e := newEnv(t)
	j := e.open(t)
	changes := outage(t, e, j, "held", 2)
	good := j.f
	// Writes now fail: the descriptor is read-only.
	ro, err := os.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	j.f = ro
	_, err = j.Apply(context.Background(), []optin.Change{receipt(addr(t, "lost@example.com"), "<lost@x>", time.Now())})
	if !errors.Is(err, ErrWrite) {
		t.Fatalf("Apply with a failing journal: %v, want ErrWrite", err)
	}
	if j.Depth() != 2 {
		t.Errorf("depth %d, want the 2 from before", j.Depth())
	}
	_, err = j.Apply(context.Background(), []optin.Change{receipt(addr(t, "lost@example.com"), "<lost2@x>", time.Now())})
	if !errors.Is(err, ErrWrite) || !strings.Contains(err.Error(), "failed before") {
		t.Errorf("Apply after a failed write: %v, want ErrWrite, failed before", err)
	}
	if !strings.Contains(e.logs.String(), "journal write failed") {
		t.Errorf("the failure was not logged:\n%s", e.logs.String())
	}
	e.restart(t)
	n := 0
	for _, ch := range changes {
		n += len(history(t, e.store, ch.Subject))
	}
	if n != 0 {
		t.Fatalf("%d events stored before the drain", n)
	}
	// The read-only descriptor reads what was written; the drain writes
	// it to the store and then fails to truncate: the journal is broken.
	if err := j.Drain(context.Background()); err == nil {
		t.Errorf("Drain truncated a read-only file")
	}
	checkStored(t, e.store, changes)
	j.f = good
	ro.Close()
}
