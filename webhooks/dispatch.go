package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/optin"
)

// OutboxStore is what the Dispatcher needs of the store: its outbox and
// its leases. optin's stores provide it.
type OutboxStore interface {
	OutboxRead(ctx context.Context, after string, limit int) (optin.OutboxPage, error)
	OutboxEnd(ctx context.Context) (string, error)
	OutboxItem(ctx context.Context, pos string) (optin.OutboxItem, error)
	OutboxCursor(ctx context.Context, target string) (string, error)
	SaveDeliveries(ctx context.Context, target string, ds []optin.OutboxDelivery, cursor string) error
	Deliveries(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error)
	Delivery(ctx context.Context, target, eventID string) (optin.OutboxDelivery, error)
	PruneOutbox(ctx context.Context, before time.Time) (int, error)
	Lease(ctx context.Context, job string, ttl time.Duration) (bool, error)
}

// Concurrent is an optional ability of a Target: how many deliveries to
// it may run at once, in place of DispatcherOptions.Concurrency (the
// Mailchimp API allows 10 connections).
type Concurrent interface {
	Concurrency() int
}

// DispatcherOptions configure NewDispatcher. Store is required; zero
// durations and counts take the defaults named.
type DispatcherOptions struct {
	Store   OutboxStore
	Targets []Target
	Logger  *slog.Logger
	Now     func() time.Time
	// DeadAfter: a delivery still failing this long after its target took
	// the event goes to the dead-letter list (default 72h).
	DeadAfter time.Duration
	// RetiredFor: dead and delivered records are kept this long after they
	// were done, and outbox items this long after they were queued when
	// every target has taken them (default 7 days). A target that has
	// not worked for as long (removed from the configuration) is
	// forgotten by the store and holds no item back; a configured one
	// saves its cursor at least every RetiredFor/4 (at most hourly) to
	// show it is live, also when it has nothing new to take.
	RetiredFor time.Duration
	// Backoff is the wait after failed attempt n (1 for the first)
	// (default ExponentialBackoff(10s, 1h, rand)). A Retry-After longer
	// than it wins.
	Backoff func(attempt int) time.Duration
	// Poll is how often each target looks for new events and renews its
	// lease (default 1s).
	Poll time.Duration
	// Concurrency is how many deliveries run at once per target, unless
	// the target is Concurrent (default 4).
	Concurrency int
	// LeaseTTL is the lease of a target ("outbox:" and its name): another
	// instance takes the target over this long after its holder stopped
	// (default 30s; renewed every Poll, so at least 3 Polls).
	LeaseTTL time.Duration
	// Reload is how often the lease holder reads the target's pending
	// records again, to pick up replays made on other instances (default
	// 1 min).
	Reload time.Duration
	// PruneEvery is how often the records done before RetiredFor, and the
	// outbox items every target has passed, are deleted, by one instance
	// (lease "outbox:prune") (default 1h).
	PruneEvery time.Duration
	// Grace is how long attempts under way may go on after Close or the
	// end of Run's context before they are cut short (default 5s): one
	// finished is one a receiver does not get twice.
	Grace time.Duration
	// Batch is how many items one outbox read takes (default 100);
	// MaxPending how many pending deliveries a target keeps in memory
	// before it stops reading (default 10,000).
	Batch, MaxPending int
	// Registerer, when not nil, gets optinproxy_webhook_deliveries_total
	// {target,outcome} and optinproxy_outbox_pending{target}.
	Registerer prometheus.Registerer
}

// Dispatcher delivers the store's outbox to its targets: for each target,
// the instance holding its lease takes new events from the outbox (from
// the end of it, the first time), records a pending delivery for each
// event the target wants, and delivers them in order per subject (one
// attempt at a time per subject, other subjects go on), saving each
// record with its next retry before the attempt and its outcome after it:
// delivered (retired), refused for good or failing past DeadAfter (dead),
// or pending again after Backoff or the receiver's Retry-After. After a
// restart or a lease take-over the pending records are loaded and go on.
//
// Run works until its context ends or Close; Replay, List and Prune are
// safe to call at any time, also from other instances.
type Dispatcher struct {
	opts    DispatcherOptions
	log     *slog.Logger
	metrics *dispatchMetrics
	// setting serializes SetTargets.
	setting sync.Mutex

	mu sync.Mutex
	// workers are the targets' workers by name; SetTargets changes the
	// map under mu.
	workers  map[string]*worker
	running  bool
	stopping bool // Run is waiting for its workers: start no more
	cancel   context.CancelFunc
	done     chan struct{}
	// rctx and actx are Run's context and the attempts' context; wg
	// counts Run's goroutines.
	rctx, actx context.Context
	wg         sync.WaitGroup
}

// NewDispatcher checks opts (target names valid and distinct) and returns
// a Dispatcher; Run starts it.
func NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	if opts.Store == nil {
		return nil, errors.New("webhooks: dispatcher needs a store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DeadAfter, 72*time.Hour)
	def(&opts.RetiredFor, 7*24*time.Hour)
	def(&opts.Poll, time.Second)
	def(&opts.LeaseTTL, 30*time.Second)
	def(&opts.Reload, time.Minute)
	def(&opts.PruneEvery, time.Hour)
	def(&opts.Grace, 5*time.Second)
	if opts.LeaseTTL < 3*opts.Poll {
		opts.LeaseTTL = 3 * opts.Poll
	}
	if opts.Backoff == nil {
		opts.Backoff = ExponentialBackoff(10*time.Second, time.Hour, rand.Float64)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 10000
	}
	metrics, err := newDispatchMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("webhooks: dispatcher metrics: %w", err)
	}
	d := &Dispatcher{
		opts:    opts,
		log:     opts.Logger.With("component", "webhooks.dispatch"),
		metrics: metrics,
		workers: make(map[string]*worker, len(opts.Targets)),
	}
	targets, err := byName(opts.Targets)
	if err != nil {
		return nil, err
	}
	for name, t := range targets {
		d.workers[name] = newWorker(d, t)
	}
	return d, nil
}

// Place saves the place of every target that has none (a target new to
// the configuration) at the outbox's end now. The server calls it before
// it opens its listeners: otherwise a new target would take its place
// when its worker first runs, after the changes of the first moments,
// and never send them. Two instances placing one new target at once may
// set it back a little; what lies between is then delivered twice, which
// receivers deduplicate by webhook-id.
func (d *Dispatcher) Place(ctx context.Context) error {
	for _, name := range d.names() {
		if _, err := place(ctx, d.opts.Store, name); err != nil {
			return fmt.Errorf("webhooks: placing target %s: %w", name, err)
		}
	}
	return nil
}

// Run delivers until ctx ends or Close is called, then waits for the
// attempts under way (for at most Grace) and returns. It may be called
// once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("webhooks: dispatcher already ran")
	}
	d.running = true
	ctx, d.cancel = context.WithCancel(ctx)
	d.done = make(chan struct{})
	d.mu.Unlock()
	defer close(d.done)
	defer d.cancel()

	// Attempts outlive ctx by Grace, so that those under way finish.
	actx, acancel := context.WithCancel(context.WithoutCancel(ctx))
	defer acancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d.opts.Grace, acancel) })
	defer stop()

	d.mu.Lock()
	d.rctx, d.actx = ctx, actx
	for _, w := range d.workers {
		d.startWorker(w)
	}
	d.mu.Unlock()
	d.wg.Go(func() { d.pruneLoop(ctx) })
	<-ctx.Done()
	// No worker starts after this, so that none is added to wg while it
	// is waited for.
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// Close stops Run and waits for it to return: no new attempts start,
// those under way have Grace to finish. Records of attempts cut short stay
// pending and are retried after a restart.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// Replay puts target's dead delivery of eventID back to pending, as if
// the target had just taken the event (attempts from 0, the dead-letter
// age from now). ErrUnknownTarget for a target not configured here,
// optin.ErrNotFound without such a record, ErrNotDead unless it is dead.
func (d *Dispatcher) Replay(ctx context.Context, target, eventID string) (optin.OutboxDelivery, error) {
	w := d.worker(target)
	if w == nil {
		return optin.OutboxDelivery{}, fmt.Errorf("%w: %q", ErrUnknownTarget, target)
	}
	rec, err := d.opts.Store.Delivery(ctx, target, eventID)
	if err != nil {
		return optin.OutboxDelivery{}, err
	}
	if rec.Status != optin.DeliveryDead {
		return rec, fmt.Errorf("%w: it is %s", ErrNotDead, rec.Status)
	}
	now := d.opts.Now()
	rec.Status, rec.Attempts, rec.Created, rec.NextAt = optin.DeliveryPending, 0, now, now
	rec.LastError, rec.DoneAt = "", time.Time{}
	if err := d.opts.Store.SaveDeliveries(ctx, target, []optin.OutboxDelivery{rec}, ""); err != nil {
		return optin.OutboxDelivery{}, err
	}
	w.reloadSoon()
	d.log.Info("delivery replayed", "target", target, "event_id", eventID)
	return rec, nil
}

// List pages through delivery records (the dead-letter list is
// Status dead).
func (d *Dispatcher) List(ctx context.Context, q optin.DeliveryQuery) (optin.DeliveryPage, error) {
	if q.Status != "" && !q.Status.Valid() {
		return optin.DeliveryPage{}, fmt.Errorf("%w: delivery status %q", optin.ErrBadInput, q.Status)
	}
	return d.opts.Store.Deliveries(ctx, q)
}

// Prune deletes the dead and delivered records done more than RetiredFor
// ago and the outbox items older than that every target has passed, and
// returns how many went; a target no instance worked on for RetiredFor
// (removed from the configuration) is forgotten and holds nothing back.
// Run does it every PruneEvery on one instance.
func (d *Dispatcher) Prune(ctx context.Context) (int, error) {
	return d.opts.Store.PruneOutbox(ctx, d.opts.Now().Add(-d.opts.RetiredFor))
}

// pruneLoop prunes at start and every PruneEvery, on the instance that
// holds the lease "outbox:prune".
func (d *Dispatcher) pruneLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.PruneEvery)
	defer t.Stop()
	for {
		if ok, err := d.opts.Store.Lease(ctx, "outbox:prune", d.opts.PruneEvery); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("outbox prune lease", "err", err)
			}
		} else if ok {
			if n, err := d.Prune(ctx); err != nil {
				if ctx.Err() == nil {
					d.log.Warn("outbox prune", "err", err)
				}
			} else if n > 0 {
				d.log.Info("outbox pruned", "deleted", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
