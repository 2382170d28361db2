package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"

	"optinproxy/config"
	"optinproxy/optin"
)

func runCheckConfig(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := fs.String("config", e.getenv("OPTINPROXY_CONFIG"), "configuration file")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 1 && *path == "":
		*path = pos[0] // check-config FILE reads naturally too
	case len(pos) > 0:
		return usagef("takes at most one argument, the configuration file")
	}
	var keys dkimKeys
	cfg, err := loadConfig(*path, e.environ, keys.check)
	if err != nil {
		return err
	}
	for _, w := range append(append(cfg.Warnings(), dsnWarnings(cfg)...), keys.warnings...) {
		fmt.Fprintln(e.stdout, "warning:", w)
	}
	// The ledger key is read at start; a key file that does not parse is
	// worth knowing now. A missing one is made on first start.
	if text := e.getenv(config.LedgerKeyEnv); text != "" {
		if _, err := optin.ParseKeyring([]byte(text)); err != nil {
			return exitError{msg: fmt.Sprintf("optinproxy: %s: %v", config.LedgerKeyEnv, err), code: 2}
		}
	} else if _, err := readKeyFile(cfg.Store.KeyPath()); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return exitError{msg: "optinproxy: " + err.Error(), code: 2}
	}
	name := *path
	if name == "" {
		name = "built-in defaults"
	}
	fmt.Fprintf(e.stdout, "%s: ok\n", name)
	return nil
}

// dsnWarnings names the clients that smtp.blocked_dsn leaves without a
// DSN: a DSN goes only to a sender in the user's from_domains, so users
// without that list, and clients trusted by network (which have no user),
// never get one.
func dsnWarnings(cfg *config.Config) []string {
	if !cfg.SMTP.BlockedDSN {
		return nil
	}
	var w []string
	for _, u := range cfg.SMTP.Users {
		if len(u.FromDomains) == 0 {
			w = append(w, fmt.Sprintf("smtp.blocked_dsn is on but user %q has no from_domains: its messages get no DSN", u.Username))
		}
	}
	if len(cfg.SMTP.TrustedPrefixes()) > 0 {
		w = append(w, "smtp.blocked_dsn is on but smtp.trusted_networks is not empty: clients relaying without AUTH get no DSN")
	}
	return w
}
