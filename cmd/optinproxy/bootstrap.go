package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"optinproxy/config"
)

// bootstrap creates what a first start needs: the store folder,
// the unsubscribe secret, and, with no admin token configured, a generated
// one in the store folder for the command line. Existing files are kept.
func bootstrap(cfg *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.Store.Path, 0o700); err != nil {
		return fmt.Errorf("store.path: %w", err)
	}
	if created, err := ensureSecret(cfg.Unsubscribe.SecretFile); err != nil {
		return fmt.Errorf("unsubscribe.secret_file: %w", err)
	} else if created {
		log.Info("generated unsubscribe secret", "file", cfg.Unsubscribe.SecretFile)
	}
	if len(cfg.Admin.Tokens) == 0 {
		file := adminTokenFile(cfg)
		if created, err := ensureSecret(file); err != nil {
			return fmt.Errorf("admin token: %w", err)
		} else if created {
			log.Info("generated admin token for the command line", "file", file)
		}
	}
	return nil
}

// adminTokenFile is where zero-config mode keeps the generated admin token.
func adminTokenFile(cfg *config.Config) string {
	return filepath.Join(cfg.Store.Path, "admin.token")
}

// ensureSecret writes 32 random bytes, hex-encoded, to path (mode 0600)
// unless the file exists. O_EXCL keeps two instances starting at once from
// overwriting each other's secret.
func ensureSecret(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.WriteString(hex.EncodeToString(b[:]) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil, err
}
