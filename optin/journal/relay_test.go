package journal_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optinproxy/internal/redistest"
	"optinproxy/internal/teststore"
	"optinproxy/optin"
	"optinproxy/optin/journal"
	"optinproxy/smtpproxy"
)

// mailer is a hand-written upstream: it counts the copies each recipient
// got, refuses the recipients in refuse (451 at RCPT), and, when hold is
// set, tells on sending and waits for release before it answers.
type mailer struct {
	mu      sync.Mutex
	got     map[string]int
	refuse  map[string]bool
	sending chan struct{}
	release chan struct{}
}

func (m *mailer) Send(ctx context.Context, from string, to []string, msg io.WriterTo, _ *smtp.MailOptions) ([]error, error) {
	if _, err := msg.WriteTo(io.Discard); err != nil {
		return nil, err
	}
	m.mu.Lock()
	errs := make([]error, len(to))
	for i, rcpt := range to {
		if m.refuse[rcpt] {
			errs[i] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
			continue
		}
		m.got[rcpt]++
	}
	sending, release := m.sending, m.release
	m.sending, m.release = nil, nil
	m.mu.Unlock()
	if sending != nil {
		close(sending)
		<-release
	}
	return errs, nil
}

// TestRelayOutage walks a store outage through the relay: the store dies
// while the upstream takes a message that only partly goes out; the
// receipts and the delivered mark wait in the journal, and the client
// hears 451 for the rest. Its retry gets 451 4.3.0 while the store is
// down (fail closed), and once the store is back, the journal is drained
// before the retry is decided, so the copy already delivered is not sent
// again.
func TestRelayOutage(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	store := teststore.Redis(t, srv)
	j, err := journal.Open(journal.Options{Path: filepath.Join(t.TempDir(), "receipts.journal"), Key: teststore.Keys.Get().Derive("journal"),
		Store: store, StoreTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })

	sending, release := make(chan struct{}), make(chan struct{})
	up := &mailer{got: map[string]int{}, refuse: map[string]bool{"b@example.com": true}, sending: sending, release: release}
	relay, err := smtpproxy.New(smtpproxy.Options{
		Hostname: "relay.test", Upstream: up, UpstreamTimeout: 5 * time.Second, Store: j,
		Purposes:       optin.Purposes{"orders": {Name: "orders", Basis: optin.BasisContract, Category: optin.CategoryTransactional}},
		DefaultPurpose: "orders",
		Logger:         slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go relay.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		relay.Shutdown(ctx)
	})
	send := func() *smtp.SMTPError { return sendMail(t, ln.Addr().String(), "a@example.com", "b@example.com") }

	// The first try: a@ gets its copy, b@ is deferred, and the store
	// dies while the upstream has the message.
	replied := make(chan *smtp.SMTPError, 1)
	go func() { replied <- send() }()
	<-sending
	srv.Stop()
	close(release)
	if r := <-replied; r == nil || r.Code != 451 {
		t.Fatalf("first try: %v, want 451 (partly relayed)", r)
	}
	if j.Depth() != 1 {
		t.Fatalf("journal depth %d, want a@'s receipt", j.Depth())
	}

	// The retry with the store down: nothing is decided.
	if r := send(); r == nil || r.Code != 451 || r.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("retry with the store down: %v, want 451 4.3.0", r)
	}

	// The store is back (once the client dials again); the retry drains
	// the journal first, and then delivers to b@ only.
	srv.Restart()
	up.mu.Lock()
	up.refuse = nil
	up.mu.Unlock()
	var r *smtp.SMTPError
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r = send(); r == nil || r.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) || time.Now().After(deadline) {
			break
		}
	}
	if r != nil {
		t.Fatalf("retry with the store back: %v, want 250", r)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.got["a@example.com"] != 1 || up.got["b@example.com"] != 1 {
		t.Errorf("copies delivered: %v, want one each", up.got)
	}
	if j.Depth() != 0 {
		t.Errorf("journal depth %d after the retry", j.Depth())
	}
	for _, rcpt := range []string{"a@example.com", "b@example.com"} {
		a, _ := optin.ParseAddress(rcpt)
		page, err := store.Events(context.Background(), optin.EventQuery{Subject: a, Type: optin.EventMessageRelayed})
		if err != nil || len(page.Events) != 1 {
			t.Errorf("%s: %d message.relayed receipts (%v), want 1", rcpt, len(page.Events), err)
		}
	}
}

// sendMail sends one message with a fixed Message-ID and returns the
// reply to its DATA, nil for 250.
func sendMail(t *testing.T, addr string, to ...string) *smtp.SMTPError {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("crm.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("crm@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: crm@example.com\r\nTo: a@example.com\r\nSubject: order\r\nMessage-ID: <order-1@crm.example>\r\n\r\nYour order.\r\n")
	err = w.Close()
	var se *smtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		t.Fatal(err)
	}
	c.Quit()
	return se
}
