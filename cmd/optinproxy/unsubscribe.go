package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// maxSecretFileBytes bounds the unsubscribe secret file: a bigger one is
// a wrong path, not a secret.
const maxSecretFileBytes = 64 << 10

// unsubscribeTokens reads unsubscribe.secret_file (made by bootstrap on
// first start) and takes unsubscribe.previous_secrets as the earlier
// contents of that file, so that links in mail sent before a rotation
// still work.
func unsubscribeTokens(cfg *config.Config) (*unsubscribe.Tokens, error) {
	current, err := readSecretFile(cfg.Unsubscribe.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("unsubscribe.secret_file: %w", err)
	}
	var previous [][]byte
	for _, s := range cfg.Unsubscribe.PreviousSecrets {
		previous = append(previous, []byte(strings.TrimSpace(s)))
	}
	t, err := unsubscribe.NewTokens(current, previous...)
	if err != nil {
		return nil, fmt.Errorf("unsubscribe: %w", err)
	}
	return t, nil
}

// readSecretFile returns the file's text without surrounding whitespace.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: it is made when optinproxy serve first starts", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFileBytes {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxSecretFileBytes>>10)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

// unsubscribeURL is the link of a token under http.public_url.
func unsubscribeURL(cfg *config.Config, token string) string {
	return strings.TrimRight(cfg.HTTP.PublicURL, "/") + "/u/" + token
}

// runUnsubscribeURL prints the unsubscribe link a copy of purpose to an
// address would carry. It works offline, from the configuration and the
// secret file, for testing and for support.
func runUnsubscribeURL(_ context.Context, e *env, args []string) error {
	fset := flag.NewFlagSet("unsubscribe-url", flag.ContinueOnError)
	path := fset.String("config", e.getenv("OPTINPROXY_CONFIG"), "configuration file (default: none, the built-in defaults)")
	purpose := fset.String("purpose", "", "the purpose the link unsubscribes from (required)")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one EMAIL, got %d arguments", len(pos))
	}
	if *purpose == "" {
		return usagef("--purpose is required, e.g. --purpose newsletter")
	}
	addr, err := optin.ParseAddress(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	cfg, err := loadConfig(*path, e.environ)
	if err != nil {
		return err
	}
	p, ok := cfg.Purposes[*purpose]
	switch {
	case !ok:
		return usagef("purpose %q is not configured", *purpose)
	case !p.UnsubscribeEnabled():
		return usagef("purpose %q has no unsubscribe links (its unsubscribe key is false, or it is not marketing)", *purpose)
	}
	tokens, err := unsubscribeTokens(cfg)
	if err != nil {
		return err
	}
	token := tokens.Issue(unsubscribe.Claim{Subject: addr, Purpose: *purpose, Issued: time.Now()})
	fmt.Fprintln(e.stdout, unsubscribeURL(cfg, token))
	return nil
}
