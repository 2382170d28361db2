package storetest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"optinproxy/optin"
)

// testNothingPersonal: after grants with evidence, withdrawals,
// suppressions, imports and receipts with delivery marks, nothing the
// store keeps shows an address or a piece of evidence, in plain,
// lowercased, uppercased, base64 or hex form.
func testNothingPersonal(t *testing.T, h Harness) {
	if h.Raw == nil {
		t.Skip("the harness cannot read the raw storage")
	}
	f := openFixture(t, h)
	inputs := []string{"Jan.Jansen@Example.COM", "marie.curie+nieuws@voorbeeld.nl", "jürgen.müller@bücher.example", "info@bakkerij-ansems.example"}
	evidence := optin.Evidence{IP: "203.0.113.77", UserAgent: "Mozilla/5.0 (StoreTest Evidence Browser)",
		Text: "Ja, stuur mij de nieuwsbrief van Bakkerij Ansems", Extra: map[string]string{"campaign": "lentecampagne-9c1f"}}
	var secrets []string
	until := f.clock.Now().Add(window)
	for i, in := range inputs {
		a := f.addr(in)
		secrets = append(secrets, in, a.String())
		if ascii := a.ASCIIDomain(); ascii != a.Domain() {
			secrets = append(secrets, a.Local()+"@"+ascii)
		}
		if len(a.Local()) >= 8 {
			secrets = append(secrets, a.Local())
		}
		mid := fmt.Sprintf("<msg-%d-7d3e@crm.bakkerij.example>", i)
		secrets = append(secrets, mid)
		f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour), Source: optin.SourceForm, Evidence: evidence}))
		f.applied(f.relayed(a, "mid:"+mid, until))
		switch i {
		case 1:
			f.applied(f.withdraw(a, newsletter, optin.ConsentChange{Source: optin.SourceUnsubscribe}))
			f.applied(f.suppress(a, optin.SuppressUnsubscribedAll))
		case 2:
			f.applied(f.receipt(a, optin.EventMessageBlocked, mid))
			f.applied(f.suppress(a, optin.SuppressHardBounce))
		}
	}
	imported := f.addr("geimporteerd.adres@klant.example")
	secrets = append(secrets, imported.String(), imported.Local(), "198.51.100.201")
	f.applied(f.grant(imported, offers, optin.ConsentChange{Source: optin.SourceImport, At: f.ago(24 * time.Hour),
		Import: &optin.ImportSource{File: "klanten.csv", Line: 2, At: f.base}, Evidence: optin.Evidence{IP: "198.51.100.201"}}))
	secrets = append(secrets, evidence.IP, evidence.UserAgent, evidence.Text, evidence.Extra["campaign"])
	f.wantVerified(len(inputs)+1, 2*len(inputs)+5)
	walkSuppressions(t, f, 100)
	f.queueRecords()

	raw := h.Raw(t, f.store)
	if !bytes.Contains(raw, []byte(newsletter)) {
		t.Fatalf("the raw storage (%d bytes) does not even hold the purpose name: the scan sees nothing", len(raw))
	}
	lower := bytes.ToLower(raw)
	for _, s := range secrets {
		for form, v := range forms(s) {
			if bytes.Contains(raw, []byte(v)) || bytes.Contains(lower, []byte(strings.ToLower(v))) {
				t.Errorf("the storage holds %q in %s form (%q)", s, form, v)
			}
		}
	}
}

// forms are the ways a value could show in storage.
func forms(s string) map[string]string {
	b := []byte(s)
	return map[string]string{
		"plain":     s,
		"lowercase": strings.ToLower(s),
		"uppercase": strings.ToUpper(s),
		"base64":    strings.TrimRight(base64.StdEncoding.EncodeToString(b), "="),
		"base64url": base64.RawURLEncoding.EncodeToString(b),
		"hex":       hex.EncodeToString(b),
	}
}

// testWrongKey: a store opened with another ledger key refuses, and
// opens again with its own.
func testWrongKey(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	f := openFixture(t, h)
	a := f.addr("keyed@example.com")
	f.applied(f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.5"}}))
	other := optin.StaticKeys(optin.NewKeyring(f.base))
	s, err := h.Reopen(t, f.store, f.clock.Now, other)
	if !errors.Is(err, optin.ErrBadKey) {
		t.Fatalf("opened with another ledger key: store %v, error %v; want one wrapping ErrBadKey", s != nil, err)
	}
	if !strings.Contains(err.Error(), "key") {
		t.Errorf("the error does not say what is wrong: %v", err)
	}
	s, err = h.Reopen(t, nil, f.clock.Now, f.keys)
	if err != nil {
		t.Fatalf("reopened with its own key: %v", err)
	}
	f.use(s)
	if v := f.subject(a, 1); v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.5" {
		t.Errorf("after reopening with its key: %+v", v.Consents)
	}
}

// testRotateUnderLoad: rotate-key re-wraps every subject key under a new
// generation while writers go on; afterwards every subject opens, the
// chains verify, only the new generation is in use, and the old one can
// be retired.
func testRotateUnderLoad(t *testing.T, h Harness) {
	f := openFixture(t, h)
	var addrs []optin.Address
	for i := range 60 {
		a := f.addr(fmt.Sprintf("rotate%02d@example.com", i))
		addrs = append(addrs, a)
		f.applied(f.grant(a, newsletter, optin.ConsentChange{At: f.ago(time.Hour), Evidence: optin.Evidence{IP: "192.0.2.60"}}))
	}
	old := f.keys.Get()
	rotated := old.Rotated(f.base)

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		written atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load() && i < 2000; i++ {
				a := addrs[(w*17+i)%len(addrs)]
				var ch optin.Change
				switch i % 3 {
				case 0:
					ch = f.receipt(a, optin.EventMessageRelayed, fmt.Sprintf("<w%d.%d@crm.example>", w, i))
				case 1:
					ch = f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.61"}})
				case 2:
					ch = f.receipt(f.addr(fmt.Sprintf("new%d.%d@example.com", w, i)), optin.EventMessageBlocked, "<n@crm.example>")
				}
				if _, err := f.store.Apply(f.ctx, []optin.Change{ch}); err != nil {
					t.Errorf("writer %d during the rotation: %v", w, err)
					return
				}
				written.Add(1)
			}
		})
	}
	for written.Load() < 40 && !t.Failed() {
		time.Sleep(time.Millisecond)
	}
	if err := f.keys.Set(rotated); err != nil {
		t.Fatal(err)
	}
	n, err := f.store.Rotate(f.ctx, nil)
	if err != nil {
		t.Fatalf("Rotate under load: %v", err)
	}
	stop.Store(true)
	wg.Wait()
	if n < len(addrs) {
		t.Errorf("Rotate re-wrapped %d keys, %d subjects existed before it", n, len(addrs))
	}
	// Writers that read the key before it changed may have wrapped a new
	// subject under the old generation; a second run takes those.
	if _, err := f.store.Rotate(f.ctx, nil); err != nil {
		t.Fatal(err)
	}
	use, err := f.store.KeyUse(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(use) != 1 || use[rotated.Newest()] == 0 {
		t.Errorf("key use after rotating: %v; want every key under generation %d", use, rotated.Newest())
	}
	r := f.verify()
	if len(r.Broken) != 0 {
		t.Errorf("Verify after rotating under load: %+v", r.Broken)
	}
	retired, err := rotated.Retired(old.Newest())
	if err != nil {
		t.Fatal(err)
	}
	if h.Reopen != nil {
		s, err := h.Reopen(t, f.store, f.clock.Now, optin.StaticKeys(retired))
		if err != nil {
			t.Fatalf("reopened with the old generation retired: %v", err)
		}
		f.use(s)
	}
	for _, a := range addrs {
		v := f.subject(a, 1000)
		if len(v.Consents) != 1 || v.Consents[0].Evidence == nil {
			t.Errorf("%s after rotating: %+v", a, v.Consents)
		}
		for _, e := range v.Events {
			if e.Erased || e.Subject != a {
				t.Errorf("%s after rotating: an event that does not open: %s", a, describe(e))
				break
			}
		}
	}
}

// testRetiredBackup: a backup taken before a rotation reads with the key
// file of its time, and no longer once its generation is retired, while
// the store itself reads on.
func testRetiredBackup(t *testing.T, h Harness) {
	if h.Snapshot == nil {
		t.Skip("the harness cannot copy a store")
	}
	f := openFixture(t, h)
	a := f.addr("backup@example.com")
	f.applied(f.grant(a, newsletter, optin.ConsentChange{Evidence: optin.Evidence{IP: "192.0.2.70", Text: "Yes"}}))
	f.applied(f.receipt(a, optin.EventMessageRelayed, "<b@crm.example>"))
	backup := h.Snapshot(t, f.store)

	old := f.keys.Get()
	rotated := old.Rotated(f.base)
	if err := f.keys.Set(rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Rotate(f.ctx, nil); err != nil {
		t.Fatal(err)
	}
	retired, err := rotated.Retired(old.Newest())
	if err != nil {
		t.Fatal(err)
	}

	before, err := backup(optin.StaticKeys(rotated))
	if err != nil {
		t.Fatalf("opening the backup with the key file that still has generation %d: %v", old.Newest(), err)
	}
	if v, err := before.Subject(f.ctx, a, 10); err != nil || v.Consents[0].Evidence == nil || v.Consents[0].Evidence.IP != "192.0.2.70" {
		t.Fatalf("the backup before retiring: %+v, %v", v, err)
	}
	before.Close()

	after, err := backup(optin.StaticKeys(retired))
	if err != nil {
		return // refusing to open at all is unreadable too
	}
	v, err := after.Subject(f.ctx, a, 10)
	if !errors.Is(err, optin.ErrKeyGeneration) {
		t.Errorf("the backup after generation %d was retired: %+v, %v; want an error wrapping ErrKeyGeneration", old.Newest(), v, err)
	}
	if _, err := after.Events(f.ctx, optin.EventQuery{Subject: a}); !errors.Is(err, optin.ErrKeyGeneration) {
		t.Errorf("the backup's events after retiring: %v; want an error wrapping ErrKeyGeneration", err)
	}
	// The store itself, re-wrapped, reads with the retired key file.
	f.keys = optin.StaticKeys(retired)
	if h.Reopen != nil {
		s, err := h.Reopen(t, f.store, f.clock.Now, f.keys)
		if err != nil {
			t.Fatal(err)
		}
		f.use(s)
		if v := f.subject(a, 10); v.Consents[0].Evidence == nil {
			t.Errorf("the store after retiring: %+v", v.Consents)
		}
	}
}

// testDataLost: a store whose data vanishes while it is open says so on
// every Ping from then on, and decisions stay fail-closed: the lost
// consent is not found, or the lookup fails. (Redis goes on as an empty
// store; a file store refuses, since what it wrote would be lost too.)
func testDataLost(t *testing.T, h Harness) {
	if h.Lose == nil {
		t.Skip("the harness cannot make a store lose its data")
	}
	f := openFixture(t, h)
	a := f.addr("lost@example.com")
	f.applied(f.grant(a, newsletter, optin.ConsentChange{}))
	if err := f.store.Ping(f.ctx); err != nil {
		t.Fatalf("Ping before the loss: %v", err)
	}
	h.Lose(t, f.store)
	for i := range 3 {
		if err := f.store.Ping(f.ctx); !errors.Is(err, optin.ErrDataLost) {
			t.Fatalf("Ping %d after the loss: %v; want an error wrapping ErrDataLost", i, err)
		}
		if i == 1 {
			// A write may go on or fail; it must not make the loss go unseen.
			f.store.Apply(f.ctx, []optin.Change{f.grant(f.addr("after@example.com"), newsletter, optin.ConsentChange{})})
		}
	}
	st, err := f.store.Lookup(f.ctx, optin.LookupQuery{Purpose: newsletter, Addresses: []optin.Address{a}})
	if err == nil && st[0].Consent.Active(f.clock.Now()) {
		t.Errorf("the lost consent still allows mail: %+v", st[0].Consent)
	}
}
