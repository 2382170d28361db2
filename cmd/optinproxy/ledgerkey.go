package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"optinproxy/config"
	"optinproxy/optin"
)

// keySource is where the ledger key came from, for messages and for
// rotate-key, which must write it back.
type keySource struct {
	// file is the key file; "" when the environment carries the key.
	file string
	// made is true when this start made the file (first start, or the
	// upgrade of a store that kept its key inside).
	made bool
}

func (k keySource) String() string {
	if k.file == "" {
		return config.LedgerKeyEnv
	}
	return k.file
}

// loadKeys reads the ledger key: OPTINPROXY_LEDGER_KEY when
// set, else store.key_file. When neither exists it makes the key file
// (mode 0600), from legacy when the store is an older one that kept its
// key inside (so its subject ids stay), else new. The Keys read the file
// again when a store meets a generation they lack (rotate-key ran).
func loadKeys(cfg *config.Config, environ []string, legacy func() ([]byte, error), log *slog.Logger) (*optin.Keys, keySource, error) {
	if text := (&env{environ: environ}).getenv(config.LedgerKeyEnv); text != "" {
		k, err := optin.ParseKeyring([]byte(text))
		if err != nil {
			return nil, keySource{}, fmt.Errorf("%s: %w", config.LedgerKeyEnv, err)
		}
		return optin.StaticKeys(k), keySource{}, nil
	}
	path := cfg.Store.KeyPath()
	src := keySource{file: path}
	read := func() (*optin.Keyring, error) { return readKeyFile(path) }
	k, err := read()
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the ledger key file can be read by others than its owner; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
		}
		return optin.NewKeys(k, read), src, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, src, err
	}
	lk, err := legacy()
	if err != nil {
		return nil, src, err
	}
	if lk != nil {
		k = optin.NewKeyringFrom(lk, time.Now())
		log.Info("the store keeps its ledger key inside (an earlier version): moving it into the key file and migrating the store", "file", path)
	} else {
		k = optin.NewKeyring(time.Now())
	}
	if err := writeKeyFile(path, k, true); err != nil {
		return nil, src, fmt.Errorf("store.key_file: %w", err)
	}
	src.made = true
	if lk == nil {
		log.Info("generated the ledger key: keep this file apart from the store's backups, and keep a copy of it", "file", path)
	}
	return optin.NewKeys(k, read), src, nil
}

// readKeyFile reads and parses a key file.
func readKeyFile(path string) (*optin.Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := optin.ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("store.key_file %s: %w", path, err)
	}
	return k, nil
}

// writeKeyFile writes k to path, mode 0600, synced: anew (failing when
// the file exists, so that two first starts cannot overwrite each
// other's key), or in place of the old one (through a file renamed over
// it, so that a crash leaves one or the other whole).
func writeKeyFile(path string, k *optin.Keyring, anew bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	target := path
	if !anew {
		target = path + ".new"
		os.Remove(target)
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(k.Marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !anew {
		err = os.Rename(target, path)
	}
	if err != nil {
		os.Remove(target)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
