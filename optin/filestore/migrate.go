package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"optinproxy/optin"
)

// keyCompact marks a file whose free pages may still hold what the
// migration replaced: Open then copies it into a fresh file.
var keyCompact = []byte("compact")

// LegacyKey returns the ledger key a file of schema 1 keeps, nil for any
// other file or none at path: the key file of a store being upgraded is
// made from it, so that its subject ids stay. Nothing is written.
func LegacyKey(path string, timeout time.Duration) ([]byte, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	db, err := openDB(path, timeout, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var key []byte
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || string(meta.Get(keySchema)) != schemaV1 {
			return nil
		}
		key = append([]byte(nil), meta.Get(keyLedgerKey)...)
		if len(key) != optin.KeySize {
			return fmt.Errorf("%w: a schema 1 file with a ledger key of %d bytes", optin.ErrCorrupt, len(key))
		}
		return nil
	})
	return key, err
}

// migrateFile turns a file of schema 1, which kept the ledger key in its
// meta bucket and each subject's key and address in the clear (the
// suppression index was keyed by address), into schema 2 in one write
// transaction: addresses sealed, keys wrapped under the ledger key, the
// index keyed by subject id, the ledger key deleted. The ledger key must
// be the file's (a key file made from LegacyKey). Events and chains stay
// as they are: their hashes cover what they hold. Then the file is
// copied into a fresh one (compact), because bbolt keeps freed pages
// with their old content.
func migrateFile(path string, opts Options) error {
	db, err := openDB(path, opts.Timeout, false)
	if err != nil {
		return err
	}
	ring := opts.Keys.Get()
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if string(meta.Get(keySchema)) != schemaV1 {
			return nil // done by another start meanwhile
		}
		if !ring.IdentityIs(meta.Get(keyLedgerKey)) {
			return fmt.Errorf("%w: this store was written by an earlier optinproxy, which kept its ledger key inside the store, and the key file holds another: move the key file away and start again, and a key file is made from the store's own key",
				optin.ErrBadKey)
		}
		for _, name := range [][]byte{bucketReceipts, bucketDeliveries, bucketDeliveryExpiry} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketSuppressions); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		supp, err := tx.CreateBucket(bucketSuppressions)
		if err != nil {
			return err
		}
		subjects := tx.Bucket(bucketSubjects)
		records := map[string]*record{}
		err = subjects.ForEach(func(k, v []byte) error {
			sid := string(k)
			rec, version, err := decodeAnyRecord(sid, v)
			if err != nil || version != recordV1 {
				return err
			}
			if rec.Wrapped != nil {
				key := rec.Wrapped
				a, err := optin.ParseAddress(string(rec.Sealed))
				if err != nil || len(key) != optin.KeySize {
					return fmt.Errorf("%w: schema 1 subject %s: address %v, key of %d bytes", optin.ErrCorrupt, sid, err, len(key))
				}
				rec.Sealed, rec.Wrapped = optin.SealAddress(key, sid, a), ring.Wrap(sid, key)
			} else {
				rec.Sealed = nil // erased
			}
			records[sid] = rec
			return nil
		})
		if err != nil {
			return err
		}
		n := 0
		for sid, rec := range records {
			if err := putRecord(tx, sid, rec); err != nil {
				return err
			}
			for reason, t := range rec.Suppressions {
				if err := supp.Put(suppressionKey(sid, reason), seqKey(uint64(t))); err != nil {
					return err
				}
			}
			if n++; opts.Progress != nil && n%1000 == 0 {
				opts.Progress(n)
			}
		}
		if err := meta.Delete(keyLedgerKey); err != nil {
			return err
		}
		for k, v := range map[string]string{string(keySchema): schemaVersion, string(keyCheck): ring.Check(), string(keyCompact): "1"} {
			if err := meta.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return compactFile(path, opts.Timeout)
}

// compactFile copies the file at path, marked with keyCompact, into a
// fresh file without the mark and puts it in its place: what freed pages
// held is gone with the old file.
func compactFile(path string, timeout time.Duration) error {
	src, err := openDB(path, timeout, false)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := path + ".compacting"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	err = bolt.Compact(dst, src, 64<<20)
	if err == nil {
		err = dst.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyCompact) })
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
