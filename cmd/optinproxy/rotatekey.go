package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"optinproxy/config"
	"optinproxy/internal/plural"
	"optinproxy/optin"
	"optinproxy/optin/filestore"
)

// runRotateKey works on the store and key file of a --config,
// not through a server: it needs the key file, which the API never
// hands out. On Redis it is safe while the servers run; the embedded
// store is locked by its server, which must be stopped first.
func runRotateKey(ctx context.Context, e *env, args []string) error {
	fset := flag.NewFlagSet("rotate-key", flag.ContinueOnError)
	path := fset.String("config", e.getenv("OPTINPROXY_CONFIG"), "configuration file (default: none, the built-in defaults)")
	retire := fset.Uint("retire", 0, "delete generation N from the key file, once no subject key is wrapped under it")
	prepare := fset.Bool("prepare", false, "only add the new generation to the key file, for copying it to every machine first")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("takes no arguments, got %q", pos[0])
	}
	if *retire != 0 && *prepare {
		return usagef("--retire and --prepare do not go together")
	}
	cfg, err := loadConfig(*path, e.environ)
	if err != nil {
		return err
	}
	if e.getenv(config.LedgerKeyEnv) != "" {
		return fmt.Errorf("the ledger key comes from %s, which rotate-key cannot change: write it to a file, set store.key_file to it, run rotate-key, and put the file's new content into %s of every instance",
			config.LedgerKeyEnv, config.LedgerKeyEnv)
	}
	keyFile := cfg.Store.KeyPath()
	ring, err := readKeyFile(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store.key_file %s does not exist: the key file is made when optinproxy serve first starts", keyFile)
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	op, err := storeOpener(ctx, cfg, log)
	if err != nil {
		return err
	}
	keys := optin.StaticKeys(ring)
	store, err := op.open(keys)
	if err != nil {
		op.close()
		if errors.Is(err, filestore.ErrLocked) {
			return fmt.Errorf("%s: %w\nThe embedded store is locked by its running server: stop it, run rotate-key, and start it again", op.what, err)
		}
		return fmt.Errorf("%s: %w", op.what, err)
	}
	defer store.Close()
	use, err := store.KeyUse(ctx)
	if err != nil {
		return err
	}
	out := e.stdout
	switch {
	case *retire != 0:
		return retireGeneration(out, keyFile, ring, uint32(*retire), use)
	case *prepare:
		next := ring.Rotated(time.Now())
		if err := writeKeyFile(keyFile, next, false); err != nil {
			return fmt.Errorf("store.key_file: %w", err)
		}
		fmt.Fprintf(out, "added generation %d to %s; no subject key uses it yet.\nCopy the file to every machine that runs optinproxy on this store, then run rotate-key again to re-wrap the keys.\n",
			next.Newest(), keyFile)
		return nil
	}
	// Resume an interrupted rotation, use a prepared generation, or add one.
	behind := 0
	for g, n := range use {
		if g != ring.Newest() {
			behind += n
		}
	}
	if behind == 0 {
		ring = ring.Rotated(time.Now())
		if err := writeKeyFile(keyFile, ring, false); err != nil {
			return fmt.Errorf("store.key_file: %w", err)
		}
		if err := keys.Set(ring); err != nil {
			return err
		}
		fmt.Fprintf(out, "added generation %d to %s\n", ring.Newest(), keyFile)
	} else {
		verb := "are"
		if behind == 1 {
			verb = "is"
		}
		fmt.Fprintf(out, "%s %s not yet under generation %d (%s): re-wrapping them\n", plural.Count(behind, "subject key"), verb, ring.Newest(), describeUse(use))
	}
	start, last := time.Now(), time.Now()
	n, err := store.Rotate(ctx, func(done int) {
		if time.Since(last) > 5*time.Second {
			fmt.Fprintf(out, "... %d re-wrapped\n", done)
			last = time.Now()
		}
	})
	if err != nil {
		return fmt.Errorf("re-wrapping stopped after %d keys (run rotate-key again to go on): %w", n, err)
	}
	if use, err = store.KeyUse(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "re-wrapped %s under generation %d in %s; in use now: %s\n", plural.Count(n, "subject key"), ring.Newest(),
		time.Since(start).Round(time.Millisecond), describeUse(use))
	var old []string
	for _, g := range ring.Generations() {
		if g != ring.Newest() {
			old = append(old, strconv.FormatUint(uint64(g), 10))
		}
	}
	if len(old) > 0 {
		fmt.Fprintf(out, "Instances that share %s read it again by themselves; copy it to those on other machines.\n"+
			"Once the backups taken before today have expired, run rotate-key --retire N for generation %s.\n", keyFile, strings.Join(old, ", "))
	}
	return nil
}

// retireGeneration deletes generation n from the key file, once no
// subject key is wrapped under it.
func retireGeneration(out interface{ Write([]byte) (int, error) }, keyFile string, ring *optin.Keyring, n uint32, use map[uint32]int) error {
	retired, err := ring.Retired(n)
	if err != nil {
		return err
	}
	if use[n] > 0 {
		return fmt.Errorf("%d subject keys are still wrapped under generation %d: run rotate-key first (and make sure every instance has its key file)", use[n], n)
	}
	if err := writeKeyFile(keyFile, retired, false); err != nil {
		return fmt.Errorf("store.key_file: %w", err)
	}
	fmt.Fprintf(out, "retired generation %d: it is gone from %s.\n"+
		"Backups of the store taken while subject keys were wrapped under it can no longer be read with this key file;\n"+
		"copies of the key file made before now still hold it: replace them with this one.\n", n, keyFile)
	return nil
}

func describeUse(use map[uint32]int) string {
	if len(use) == 0 {
		return "no subject keys"
	}
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(use)) {
		parts = append(parts, fmt.Sprintf("generation %d: %d", g, use[g]))
	}
	return strings.Join(parts, ", ")
}
