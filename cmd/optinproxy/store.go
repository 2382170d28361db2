package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"optinproxy/admin"
	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
	"optinproxy/optin/redisstore"
)

// opener opens the configured store with a ledger key; legacy reads
// the key an older store keeps inside (nil for any other); close
// releases what opener made when open failed or was not called.
type opener struct {
	open   func(*optin.Keys) (optin.Store, error)
	legacy func() ([]byte, error)
	close  func()
	what   string // the configuration key to name in errors
}

// embeddedFile is the embedded store's database file in the folder dir
// (store.path, or migrate's target).
func embeddedFile(dir string) string {
	return filepath.Join(dir, "optinproxy.db")
}

// storeOpener prepares to open Redis when configured, else the embedded
// store in store.path.
func storeOpener(ctx context.Context, cfg *config.Config, log *slog.Logger) (*opener, error) {
	progress := func(n int) { log.Info("migrating the store", "subjects", n) }
	if cfg.Store.UsesRedis() {
		r := cfg.Store.Redis
		client, err := redisstore.NewClient(r.URL, r.Sentinel.Master, r.Sentinel.Addrs, r.ClusterAddrs)
		if err != nil {
			return nil, fmt.Errorf("store.redis: %w", err)
		}
		return &opener{what: "store.redis", close: func() { client.Close() },
			legacy: func() ([]byte, error) { return redisstore.LegacyKey(ctx, client, r.KeyPrefix) },
			open: func(keys *optin.Keys) (optin.Store, error) {
				return redisstore.Open(ctx, redisstore.Options{Client: client, Prefix: r.KeyPrefix, Keys: keys, Progress: progress})
			}}, nil
	}
	path := embeddedFile(cfg.Store.Path)
	return &opener{what: "store.path", close: func() {},
		legacy: func() ([]byte, error) { return filestore.LegacyKey(path, 5*time.Second) },
		open: func(keys *optin.Keys) (optin.Store, error) {
			return filestore.Open(path, filestore.Options{Timeout: 5 * time.Second, Keys: keys, Progress: progress})
		}}, nil
}

// openStore reads the ledger key and opens the store with it. A store of
// an earlier version is migrated on the way (its key moves into the key
// file). When this start made the key file and the store turns out to be
// of another key, the file is taken back and the error says what to
// restore.
func openStore(ctx context.Context, cfg *config.Config, environ []string, log *slog.Logger) (optin.Store, *optin.Keys, keySource, error) {
	op, err := storeOpener(ctx, cfg, log)
	if err != nil {
		return nil, nil, keySource{}, err
	}
	legacy := func() ([]byte, error) {
		lk, err := op.legacy()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.what, err)
		}
		return lk, nil
	}
	keys, src, err := loadKeys(cfg, environ, legacy, log)
	if err != nil {
		op.close()
		return nil, nil, src, err
	}
	s, err := op.open(keys)
	if err != nil {
		op.close()
		if errors.Is(err, optin.ErrBadKey) && src.made {
			os.Remove(src.file)
			return nil, nil, src, fmt.Errorf("%s: %w\nThe key file %s did not exist, so a new key was made (and now removed again); this store needs the key file it was made with: restore it from where you keep it, or set %s",
				op.what, err, src.file, config.LedgerKeyEnv)
		}
		if errors.Is(err, optin.ErrBadKey) {
			return nil, nil, src, fmt.Errorf("%s: %w (the key came from %s)", op.what, err, src)
		}
		return nil, nil, src, fmt.Errorf("%s: %w", op.what, err)
	}
	return s, keys, src, nil
}

// purposes turns the configured purposes into the domain's.
func purposes(cfg *config.Config) optin.Purposes {
	ps := optin.Purposes{}
	for name, p := range cfg.Purposes {
		rule := optin.RoleRule(p.RoleAddresses)
		if rule == "" {
			rule = optin.RoleAllow
		}
		ps[name] = optin.Purpose{Name: name, Basis: optin.Basis(p.Basis), Category: optin.Category(p.Category),
			Retention: time.Duration(p.Retention), DoubleOptIn: p.DoubleOptIn, Unsubscribe: p.UnsubscribeEnabled(),
			RoleAddresses: rule, Description: p.Description}
	}
	return ps
}

// adminTokens are the configured API tokens; with none configured, the
// generated ./data/admin.token with every scope (zero-config mode).
func adminTokens(cfg *config.Config) ([]admin.Token, error) {
	if len(cfg.Admin.Tokens) == 0 {
		b, err := os.ReadFile(adminTokenFile(cfg))
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		return []admin.Token{{Name: "admin", SHA256: admin.HashToken(strings.TrimSpace(string(b))),
			Scopes: []string{admin.ScopeRead, admin.ScopeWrite, admin.ScopeErase}}}, nil
	}
	var out []admin.Token
	for _, t := range cfg.Admin.Tokens {
		tok := admin.Token{Name: t.Name, Scopes: t.Scopes}
		if t.TokenSHA256 != "" {
			b, err := hex.DecodeString(t.TokenSHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("admin.tokens %s: token_sha256 is not 64 hex digits", t.Name)
			}
			copy(tok.SHA256[:], b)
		} else {
			tok.SHA256 = admin.HashToken(t.Token)
		}
		out = append(out, tok)
	}
	return out, nil
}

// warnLeftBehind warns when Redis is the store and holds no subject while
// store.path still holds an embedded ledger: a configuration switched to
// Redis without migrate starts on an empty ledger, and every consent of
// the file would otherwise be left behind without a word.
func warnLeftBehind(ctx context.Context, cfg *config.Config, s optin.Store, log *slog.Logger) {
	if !cfg.Store.UsesRedis() {
		return
	}
	file := embeddedFile(cfg.Store.Path)
	if _, err := os.Stat(file); err != nil {
		return
	}
	page, err := s.Subjects(ctx, "", 1)
	if err != nil || len(page.Subjects) > 0 {
		return
	}
	log.Warn("the Redis store holds no consents, but store.path holds an embedded ledger this configuration does not use; "+
		"if its consents are yours, stop the proxy and copy them with: optinproxy migrate --config FILE-OF-THE-EMBEDDED-STORE --to REDIS-URL (docs/migrate.md)",
		"file", file)
}
