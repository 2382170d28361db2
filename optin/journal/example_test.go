package journal_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"optinproxy/optin"
	"optinproxy/optin/journal"
)

// The wiring in cmd: open the journal over the store, drain what a crash
// left before the relay decides anything, drain in the background, and
// hand the journal to the relay in the store's place.
func Example() {
	var (
		store    optin.Store    // the store cmd opened
		keyring  *optin.Keyring // the ledger key (store.key_file)
		storeDir = "./data"     // store.path
		log      = slog.Default()
	)
	j, err := journal.Open(journal.Options{
		Path:   filepath.Join(storeDir, "receipts.journal"),
		Key:    keyring.Derive("journal"),
		Store:  store,
		Logger: log,
		Now:    time.Now,
	})
	if err != nil {
		log.Error("cannot open the receipt journal", "err", err)
		return
	}
	defer j.Close() // after the relay stopped
	ctx := context.Background()
	if err := j.Drain(ctx); err != nil {
		// Lookup fails closed until Run drains it.
		log.Warn("the receipt journal waits for the store", "changes", j.Depth(), "err", err)
	}
	go j.Run(ctx)
	// smtpproxy.Options{Store: j, ...}; a gauge of j.Depth().
}
