package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// openStore opens Redis when configured, else the embedded store in
// store.path (SPEC §10).
func openStore(ctx context.Context, cfg *config.Config) (optin.Store, error) {
	if storeName(cfg) == "redis" {
		r := cfg.Store.Redis
		client, err := redisstore.NewClient(r.URL, r.Sentinel.Master, r.Sentinel.Addrs, r.ClusterAddrs)
		if err != nil {
			return nil, fmt.Errorf("store.redis: %w", err)
		}
		s, err := redisstore.Open(ctx, redisstore.Options{Client: client, Prefix: r.KeyPrefix})
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("store.redis: %w", err)
		}
		return s, nil
	}
	s, err := filestore.Open(filepath.Join(cfg.Store.Path, "optinproxy.db"), filestore.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store.path: %w", err)
	}
	return s, nil
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
