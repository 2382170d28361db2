package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"optinproxy/config"
	"optinproxy/internal/plural"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
	"optinproxy/optin/redisstore"
)

// migrateTarget is where migrate copies the ledger to.
type migrateTarget struct {
	// id names the store the same way on every run, so that a run after
	// an interruption finds its own copy (optin.Restorer.BeginRestore).
	id string
	// what names it to the user, without a password.
	what string
	// folder is the embedded store's folder; "" for Redis.
	folder string
	open   func(ctx context.Context, keys *optin.Keys) (optin.Store, error)
}

// runMigrate copies the whole ledger of a --config's store into another
// store, as stored (optin.Copy), then verifies the copy. It works on the
// stores, not through a server; the proxies must be stopped, which the
// embedded store's file lock enforces.
func runMigrate(ctx context.Context, e *env, args []string) error {
	fset := flag.NewFlagSet("migrate", flag.ContinueOnError)
	path := fset.String("config", e.getenv("OPTINPROXY_CONFIG"), "configuration file whose store is copied (default: none, the built-in defaults)")
	to := fset.String("to", "", "the target: a redis:// or rediss:// URL, or a folder for the embedded store")
	prefix := fset.String("key-prefix", "", "the target's key prefix on Redis (default "+redisstore.DefaultPrefix+")")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("takes no arguments, got %q", pos[0])
	case *to == "":
		return usagef("--to is required: a redis:// or rediss:// URL, or a folder for the embedded store")
	}
	target, err := parseMigrateTarget(*to, *prefix)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*path, e.environ)
	if err != nil {
		return err
	}
	source := storeID(cfg)
	if source == target.id {
		return usagef("the target is the configured store itself")
	}
	if e.getenv(config.LedgerKeyEnv) == "" {
		if _, err := os.Stat(cfg.Store.KeyPath()); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store.key_file %s does not exist: there is no ledger to migrate (the key file is made when optinproxy serve first starts)", cfg.Store.KeyPath())
		}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	// go-redis's own lines repeat each failed dial; the error that ends
	// the command says it once.
	redisstore.SetLogger(slog.New(slog.DiscardHandler))
	src, keys, _, err := openStore(ctx, cfg, e.environ, log)
	if err != nil {
		if errors.Is(err, filestore.ErrLocked) {
			return fmt.Errorf("%w\nThe embedded store is locked by its running server: stop every proxy, then run migrate", err)
		}
		return err
	}
	defer src.Close()
	if cfg.Store.UsesRedis() {
		fmt.Fprintln(e.stderr, "The source is Redis: stop every proxy that uses it first, or what they write during the copy may be missing from it.")
	}
	dst, err := target.open(ctx, keys)
	if err != nil {
		return fmt.Errorf("the target %s: %w", target.what, err)
	}
	defer dst.Close()
	if err := migrate(ctx, e, src, dst, source, target.what); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, keyAdvice(cfg.Store, target.folder, e.getenv(config.LedgerKeyEnv) != ""))
	return nil
}

// keyAdvice says which ledger key the proxies on the target need. A key
// file left at its default lies in store.path, so pointing store.path at
// a new folder would leave it behind.
func keyAdvice(s config.Store, folder string, fromEnv bool) string {
	if fromEnv {
		return "The proxies need the same OPTINPROXY_LEDGER_KEY."
	}
	key := s.KeyPath()
	if abs, err := filepath.Abs(key); err == nil {
		key = abs
	}
	if folder != "" && s.KeyFile == "" {
		return fmt.Sprintf("The ledger key is %s, in the old store.path: when store.path becomes %s, set store.key_file to %s (or copy the file into %s).", key, folder, key, folder)
	}
	return "The proxies need the same ledger key file, " + key + "."
}

// migrate copies src into dst and verifies dst.
func migrate(ctx context.Context, e *env, src, dst optin.Store, id, what string) error {
	from, ok1 := src.(optin.Dumper)
	into, ok2 := dst.(optin.Restorer)
	if !ok1 || !ok2 {
		return errors.New("these stores cannot be copied")
	}
	start, last := time.Now(), time.Time{}
	progress := func(st optin.CopyStats) {
		if time.Since(last) >= 2*time.Second {
			last = time.Now()
			fmt.Fprintf(e.stderr, "... %s read, %d written (%s, %s)\n", plural.Count(st.Subjects, "subject"), st.Written, plural.Count(st.Events, "event"), receiptsAmong(st.Receipts))
		}
	}
	st, err := optin.Copy(ctx, from, into, id, progress)
	if errors.Is(err, optin.ErrNotEmpty) {
		// Its wrapped chain ("filestore: optin: store unavailable: ...")
		// would only repeat this less clearly.
		return fmt.Errorf("the target %s already holds a ledger\nMigrate copies into an empty store only. If it is a migration of this ledger that finished, it is done: point the proxies at it. Otherwise choose another target (or another --key-prefix)", what)
	}
	if err != nil {
		return fmt.Errorf("copying stopped after %s (run migrate again to go on): %w", plural.Count(st.Subjects, "subject"), err)
	}
	fmt.Fprintf(e.stderr, "copied %s (%s, %s; %d written by this run) in %s\n",
		plural.Count(st.Subjects, "subject"), plural.Count(st.Events, "event"), receiptsAmong(st.Receipts), st.Written, time.Since(start).Round(time.Millisecond))
	rep, err := dst.Verify(ctx)
	if err != nil {
		return fmt.Errorf("verifying the target: %w", err)
	}
	// A broken chain is named by its address's hash, as the logs name a
	// subject: migrate's output ends up in terminals and job logs, and
	// optinproxy verify on the source names the address to whom may see it.
	for i, b := range rep.Broken {
		if a, err := optin.ParseAddress(b.Subject); err == nil {
			rep.Broken[i].Subject = "subject " + a.Hash()
		}
	}
	if err := printVerify(e.stdout, "migrate", rep); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "The ledger is in %s. Point every proxy's store at it (the same key file), then start them.\n", what)
	return nil
}

// printVerify writes a VerifyReport, and an error of command that exits
// 1 when a chain is broken.
func printVerify(w io.Writer, command string, rep optin.VerifyReport) error {
	fmt.Fprintf(w, "%s, %s checked (%s)\n", plural.Count(rep.Subjects, "subject"), plural.Count(rep.Events, "event"), receiptsAmong(rep.Receipts))
	if len(rep.Broken) == 0 {
		fmt.Fprintln(w, "every chain is intact")
		return nil
	}
	for _, b := range rep.Broken {
		fmt.Fprintf(w, "BROKEN: %s at event %s\n", b.Subject, b.Event)
	}
	return exitError{msg: fmt.Sprintf("optinproxy %s: %s", command, plural.Count(len(rep.Broken), "broken chain")), code: 1}
}

// receiptsAmong says how many of the events counted before it are
// receipts.
func receiptsAmong(n int) string {
	if n == 1 {
		return "1 of them a receipt"
	}
	return fmt.Sprintf("%d of them receipts", n)
}

// parseMigrateTarget reads --to: a Redis URL, or a folder.
func parseMigrateTarget(to, prefix string) (*migrateTarget, error) {
	if strings.Contains(to, "://") {
		u, err := url.Parse(to)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return nil, usagef("--to %s: want a redis:// or rediss:// URL with a host, or a folder", redactURL(to))
		}
		if prefix == "" {
			prefix = redisstore.DefaultPrefix
		}
		if strings.ContainsAny(prefix, "{}") {
			return nil, usagef("--key-prefix %q: braces are not allowed", prefix)
		}
		what := redactURL(to)
		return &migrateTarget{id: redisID(u, prefix), what: what + " (key prefix " + prefix + ")",
			open: func(ctx context.Context, keys *optin.Keys) (optin.Store, error) {
				client, err := redisstore.NewClient(to, "", nil, nil)
				if err != nil {
					return nil, err
				}
				// A Cluster node would answer the copy's first key of
				// another slot with a bare MOVED.
				if info, err := client.Info(ctx, "cluster").Result(); err == nil && strings.Contains(info, "cluster_enabled:1") {
					client.Close()
					return nil, errors.New("it is a node of a Redis Cluster, which migrate cannot copy into; a Cluster can only be the source, through the configuration")
				}
				s, err := redisstore.Open(ctx, redisstore.Options{Client: client, Prefix: prefix, Keys: keys, Copying: true})
				if err != nil {
					client.Close()
					return nil, err
				}
				return s, nil
			}}, nil
	}
	if prefix != "" {
		return nil, usagef("--key-prefix is for a Redis target, not a folder")
	}
	dir, err := filepath.Abs(to)
	if err != nil {
		return nil, usagef("--to %s: %v", to, err)
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, usagef("--to %s is a file: give the folder the embedded store is to be in", to)
	}
	file := embeddedFile(dir)
	return &migrateTarget{id: "file:" + file, what: dir, folder: dir,
		open: func(_ context.Context, keys *optin.Keys) (optin.Store, error) {
			return filestore.Open(file, filestore.Options{Timeout: time.Second, Keys: keys, Copying: true})
		}}, nil
}

// storeID names the configured store as parseMigrateTarget names a target.
func storeID(cfg *config.Config) string {
	r := cfg.Store.Redis
	prefix := r.KeyPrefix
	if prefix == "" {
		prefix = redisstore.DefaultPrefix
	}
	switch {
	case r.URL != "":
		if u, err := url.Parse(r.URL); err == nil {
			return redisID(u, prefix)
		}
		return "redis:" + r.URL
	case cfg.Store.UsesRedis():
		return fmt.Sprintf("redis:%s%v%v|%s", r.Sentinel.Master, r.Sentinel.Addrs, r.ClusterAddrs, prefix)
	}
	dir, _ := filepath.Abs(cfg.Store.Path)
	return "file:" + embeddedFile(dir)
}

// redisID names a Redis store by host, database and prefix, without
// user or password.
func redisID(u *url.URL, prefix string) string {
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "0"
	}
	return "redis:" + u.Host + "/" + db + "|" + prefix
}
