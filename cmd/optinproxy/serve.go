package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"optinproxy/config"
	"optinproxy/dkim"
	"optinproxy/optin"
	"optinproxy/optin/journal"
	"optinproxy/optin/redisstore"
	"optinproxy/portal"
	"optinproxy/smtpproxy"
	"optinproxy/upstream"
)

// shutdownGrace bounds how long SIGTERM waits for transactions in flight.
const shutdownGrace = 30 * time.Second

// dotTimeout bounds the upstream's reply to a message's final dot: the
// ten minutes RFC 5321 section 4.5.3.2.6 asks a client to wait, since the
// upstream may check the whole message before it answers.
const dotTimeout = 10 * time.Minute

func runServe(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", e.getenv("OPTINPROXY_CONFIG"), "configuration file (default: none, the built-in defaults)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("takes no arguments, got %q", pos[0])
	}
	// SIGHUP reloads the configuration; caught from the start, so that
	// one sent while the server starts does not end it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// Never stopped nor ignored: either leaves an instant in which a
	// SIGHUP (systemctl reload beside a stop) kills the process by the
	// signal's default action instead of letting it exit with serve's
	// status. Once serve returns, a SIGHUP finds the channel full or
	// unread and is dropped.
	var dk dkimKeys
	cfg, err := loadConfig(*path, e.environ, dk.check)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	redisstore.SetLogger(log.With("component", "redis"))
	advice := append(cfg.Warnings(), dk.warnings...)
	for _, w := range advice {
		log.Warn("configuration", "advice", w)
	}
	// An SMTP client may hold an upstream connection while its message is
	// relayed; the rest is for HTTP, the store and the process itself.
	ensureFileLimit(2*uint64(cfg.SMTP.MaxConnections)+256, log)
	a, err := start(ctx, cfg, dk.keys, e.environ, log)
	if err != nil {
		return err
	}
	rl, err := newReloader(*path, e.environ, a, cfg, advice, log)
	if err != nil {
		a.stop(ctx)
		return err
	}
serving:
	for {
		select {
		case <-ctx.Done():
			break serving
		case err := <-a.serveErr:
			// A listener failed: stop the rest rather than run half a server.
			log.Error("listener failed", "err", err)
			break serving
		case <-hup:
			if ctx.Err() != nil {
				break serving // a stop came with it: no reload on the way out
			}
			rl.reload(ctx)
		}
	}
	log.Info("shutting down", "grace", shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return a.stop(sctx)
}

// loadConfig reads the configuration; checks of its own (the dkim keys)
// report their problems at their lines with the rest.
func loadConfig(path string, environ []string, checks ...config.Check) (*config.Config, error) {
	cfg, err := config.Load(path, environ, checks...)
	var ce *config.Errors
	if errors.As(err, &ce) {
		// One line a problem, each made printable on its own: a path or
		// value with a newline must not pass for a second problem.
		msg := "optinproxy: configuration has problems:"
		for _, p := range ce.Problems {
			msg += "\n" + printable((&config.Errors{File: ce.File, Problems: []config.Problem{p}}).Error(), false)
		}
		return nil, exitError{msg: msg, code: 2}
	}
	return cfg, err
}

// app is a started server: its listeners and what must be closed.
type app struct {
	log      *slog.Logger
	smtp     *smtpproxy.Server
	http     *http.Server
	upstream upstream.Sender
	store    optin.Store
	journal  *journal.Journal
	jobs     *jobs
	portal   *portal.Handler
	// reg, parts and personal are what a reload registers its metrics
	// with and changes.
	reg      *prometheus.Registry
	parts    *served
	personal *personalizer
	// smtpAddrs and httpAddr are the bound addresses (":0" resolves).
	smtpAddrs []string
	httpAddr  string
	serveErr  chan error
}

// start opens everything cfg asks for and serves in the background.
func start(ctx context.Context, cfg *config.Config, dkimKeys []dkim.Key, environ []string, log *slog.Logger) (*app, error) {
	if err := bootstrap(cfg, log); err != nil {
		return nil, err
	}
	// Copies are signed only with keys configured; without, the sender's
	// signatures a footer broke are counted.
	var signer smtpproxy.Signer
	if len(dkimKeys) > 0 {
		s, err := dkim.New(dkimKeys, dkim.Options{})
		if err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		signer = s
	}
	var tlsConfig *tls.Config
	if cfg.SMTP.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SMTP.TLS.CertFile, cfg.SMTP.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("smtp.tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	up, err := upstream.New(upstream.Options{
		URL:        cfg.Upstream.URL,
		Username:   cfg.Upstream.Username,
		Password:   cfg.Upstream.Password,
		StartTLS:   cfg.Upstream.StartTLS,
		LocalName:  cfg.SMTP.Hostname,
		Timeout:    time.Duration(cfg.Upstream.Timeout),
		DotTimeout: dotTimeout,
		PoolSize:   cfg.Upstream.PoolSize,
		Logger:     log.With("component", "upstream"),
	})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, keys, keySrc, err := openStore(ctx, cfg, environ, log)
	if err != nil {
		up.Close()
		return nil, err
	}
	warnLeftBehind(ctx, cfg, store, log)
	jr, err := openJournal(ctx, cfg, store, keys, reg, log)
	if err != nil {
		up.Close()
		store.Close()
		return nil, err
	}
	roles, err := optin.NewRoleAddresses(cfg.Policy.RoleAddresses.Add, cfg.Policy.RoleAddresses.Remove)
	if err != nil {
		up.Close()
		jr.Close()
		store.Close()
		return nil, fmt.Errorf("policy.role_addresses: %w", err)
	}
	rates := optin.NewDomainRates(nil)
	parts, err := newHandler(cfg, reg, store, up, rates, log, defaultHTTPTimeouts.long)
	var personal *personalizer
	if err == nil {
		personal, err = newPersonalizer(cfg, parts.unsub.Tokens(), reg)
	}
	if err != nil {
		up.Close()
		jr.Close()
		store.Close()
		return nil, err
	}
	srv, err := smtpproxy.New(smtpproxy.Options{
		Hostname:        cfg.SMTP.Hostname,
		TLSConfig:       tlsConfig,
		Users:           smtpUsers(cfg),
		TrustedNetworks: cfg.SMTP.TrustedPrefixes(),
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		MaxRecipients:   cfg.SMTP.MaxRecipients,
		ReadTimeout:     time.Duration(cfg.SMTP.ReadTimeout),
		WriteTimeout:    time.Duration(cfg.SMTP.WriteTimeout),
		// The hand-off may take a few commands and the wait for the
		// final dot's reply.
		UpstreamTimeout: dotTimeout + 4*time.Duration(cfg.Upstream.Timeout),
		Upstream:        up,
		Store:           jr,
		Purposes:        purposes(cfg),
		DefaultPurpose:  cfg.Policy.DefaultPurpose,
		Roles:           roles,
		Monitor:         cfg.Policy.Mode == config.ModeMonitor,
		BlockedDSN:      cfg.SMTP.BlockedDSN,
		DedupWindow:     time.Duration(cfg.Upstream.DedupWindow),
		Sent:            countCopies(rates, reg),
		Logger:          log,
		Metrics:         reg,

		Personalize:      personal.copy,
		MailtoDomain:     cfg.Unsubscribe.MailtoDomain,
		Unsubscriber:     parts.unsub,
		Signer:           signer,
		BrokenSignatures: dkim.BrokenSignatures,

		MaxConnections:      cfg.SMTP.MaxConnections,
		MaxConnectionsPerIP: cfg.SMTP.MaxConnectionsPerIP,
		MaxInflightBytes:    cfg.SMTP.MaxInflightBytes,
	})
	if err != nil {
		up.Close()
		jr.Close()
		store.Close()
		return nil, err
	}
	// New outbox targets take their place before the listeners open, so
	// that they send every change made from the first request on.
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := parts.outbound.dispatcher.Place(pctx); err != nil {
		log.Warn("outbox targets not placed yet; each takes its place when it first runs", "err", err)
	}
	cancel()
	a := &app{log: log, smtp: srv, upstream: up, store: store, journal: jr, portal: parts.portal, serveErr: make(chan error, 3),
		reg: reg, parts: parts, personal: personal,
		jobs: startJobs(store, jr, parts.outbound.dispatcher, time.Duration(cfg.Policy.ReceiptRetention), retentionOf(cfg, parts.ledger, reg, log), reg, log)}
	a.jobs.startErasures(store, parts.ledger, parts.outbound.notify, reg, log)
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
		a.jobs.stop()
		up.Close()
		jr.Close()
		store.Close()
	}
	listen := func(what, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		listeners = append(listeners, l)
		return l, nil
	}
	sl, err := listen("smtp.listen", cfg.SMTP.Listen)
	if err != nil {
		return nil, err
	}
	a.smtpAddrs = append(a.smtpAddrs, sl.Addr().String())
	var tl net.Listener
	if cfg.SMTP.TLSListen != "" {
		if tl, err = listen("smtp.tls_listen", cfg.SMTP.TLSListen); err != nil {
			return nil, err
		}
		a.smtpAddrs = append(a.smtpAddrs, tl.Addr().String())
	}
	hl, err := listen("http.listen", cfg.HTTP.Listen)
	if err != nil {
		return nil, err
	}
	a.httpAddr = hl.Addr().String()
	a.http = newHTTPServer(behindProxies(parts.handler, cfg.HTTP.TrustedProxyPrefixes()), defaultHTTPTimeouts, log)
	go func() { a.serveErr <- srv.Serve(sl) }()
	if tl != nil {
		go func() { a.serveErr <- srv.ServeTLS(tl) }()
	}
	go func() {
		if err := a.http.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			a.serveErr <- err
		}
	}()
	log.Info("listening", "smtp", a.smtpAddrs, "http", a.httpAddr, "upstream", redactURL(cfg.Upstream.URL),
		"store", storeName(cfg), "ledger_key", keySrc.String(), "version", versionString())
	return a, nil
}

// smtpUsers are the relay's users of smtp.users.
func smtpUsers(cfg *config.Config) []smtpproxy.User {
	users := make([]smtpproxy.User, len(cfg.SMTP.Users))
	for i, u := range cfg.SMTP.Users {
		users[i] = smtpproxy.User{Name: u.Username, PasswordHash: u.PasswordHash, DefaultPurpose: u.DefaultPurpose,
			Purposes: u.Purposes, FromDomains: u.FromDomains}
	}
	return users
}

// stop shuts down gracefully: no new connections, transactions in flight
// finish (bounded by ctx), then the upstream pool closes.
func (a *app) stop(ctx context.Context) error {
	errSMTP := a.smtp.Shutdown(ctx)
	errHTTP := a.http.Shutdown(ctx)
	a.portal.Close() // links asked for before the shutdown are still mailed
	a.jobs.stop()
	a.upstream.Close()
	errJournal := a.journal.Close()
	errStore := a.store.Close()
	if err := errors.Join(errSMTP, errHTTP, errJournal, errStore); err != nil {
		a.log.Error("shutdown incomplete", "err", err)
		return err
	}
	a.log.Info("stopped")
	return nil
}

func storeName(cfg *config.Config) string {
	if cfg.Store.UsesRedis() {
		return "redis"
	}
	return "embedded:" + cfg.Store.Path
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}
