package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/portal"
	"optinproxy/unsubscribe"
	"optinproxy/upstream"
)

// newPortal builds the personal portal of /p and /p/TOKEN. Its CSRF key
// comes from the unsubscribe secret, so that every instance behind one
// address accepts the others' forms.
// Links asked for at /p go out through the upstream, as the double
// opt-in mails do.
func newPortal(cfg *config.Config, ledger *optin.Ledger, tokens *unsubscribe.Tokens, up upstream.Sender, eraser portal.Eraser, reg prometheus.Registerer, log *slog.Logger) (*portal.Handler, error) {
	secret, err := readSecretFile(cfg.Unsubscribe.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("unsubscribe.secret_file: %w", err)
	}
	mailer, err := newMailer(cfg, up)
	if err != nil {
		return nil, err
	}
	return portal.New(portal.Options{
		Mailer:        mailer,
		Tokens:        tokens,
		Ledger:        ledger,
		Eraser:        eraser,
		PublicURL:     cfg.HTTP.PublicURL,
		LinkTTL:       time.Duration(cfg.Policy.PortalLinkTTL),
		Secret:        secret,
		PolicyVersion: cfg.Policy.CurrentVersion,
		Language:      cfg.Unsubscribe.Language,
		Logger:        log,
		Metrics:       reg,
	})
}

// runPortalLink prints a link to a subject's personal portal, made by the
// server, to hand to the subject.
func runPortalLink(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("portal-link", flag.ContinueOnError)
	cf := addClientFlags(fs, e, "write")
	c, pos, err := cf.parseConnect(fs, args, 1, "want EMAIL")
	if err != nil {
		return err
	}
	var ans struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := c.json("POST", subjectPath(pos[0])+"/portal-link", nil, &ans); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, ans.URL)
	return nil
}
