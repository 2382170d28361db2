package webhooks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// SetTargets makes targets the Dispatcher's targets, while it runs or
// before (a configuration reload). A target new by name takes its place
// at the outbox's end first, as Place does, so that it sends every change
// from now on; a target no longer named stops taking events, after the
// attempts it has under way, and what it had pending stays in the store
// (a target added back later goes on with it); a target whose name stays
// but whose value changed (another secret, other events) is restarted
// with the new value, from its saved place. Targets equal to the ones
// running are left alone. Names must be valid and distinct, or nothing
// changes. An error placing a new target is returned after the change is
// made: that target then takes its place when its worker first runs.
func (d *Dispatcher) SetTargets(ctx context.Context, targets []Target) error {
	d.setting.Lock()
	defer d.setting.Unlock()
	next, err := byName(targets)
	if err != nil {
		return err
	}
	// Workers to stop leave the map at once, so that a Run starting
	// meanwhile does not start them.
	d.mu.Lock()
	type running struct {
		w      *worker
		stop   context.CancelFunc
		exited chan struct{}
	}
	var stop []running
	var start []*worker
	for name, w := range d.workers {
		if !sameTarget(w.t, next[name]) {
			stop = append(stop, running{w, w.stop, w.exited})
			delete(d.workers, name)
		}
	}
	for name, t := range next {
		if d.workers[name] == nil {
			start = append(start, newWorker(d, t))
		}
	}
	d.mu.Unlock()
	for _, r := range stop {
		if r.stop != nil {
			r.stop()
			<-r.exited
		}
		if next[r.w.name] == nil {
			d.metrics.pending.DeleteLabelValues(r.w.name)
			d.log.Info("target removed", "target", r.w.name)
		}
	}
	var placeErr error
	for _, w := range start {
		if _, err := place(ctx, d.opts.Store, w.name); err != nil {
			placeErr = errors.Join(placeErr, fmt.Errorf("webhooks: placing target %s: %w", w.name, err))
		}
	}
	d.mu.Lock()
	for _, w := range start {
		d.workers[w.name] = w
		if d.rctx != nil {
			d.startWorker(w)
		}
		d.log.Info("target in force", "target", w.name)
	}
	d.mu.Unlock()
	return placeErr
}

// byName indexes targets by name, checking the names are valid and
// distinct.
func byName(targets []Target) (map[string]Target, error) {
	m := make(map[string]Target, len(targets))
	for _, t := range targets {
		name := t.Name()
		if !validTargetName(name) {
			return nil, fmt.Errorf("webhooks: target name %q: want [a-z0-9-], at most 40 bytes", name)
		}
		if m[name] != nil {
			return nil, fmt.Errorf("webhooks: two targets named %q", name)
		}
		m[name] = t
	}
	return m, nil
}

// startWorker runs w beside Run's other goroutines, unless Run is
// stopping. Call with d.mu held, after Run set rctx.
func (d *Dispatcher) startWorker(w *worker) {
	if d.stopping {
		return
	}
	ctx, cancel := context.WithCancel(d.rctx)
	w.stop, w.exited = cancel, make(chan struct{})
	actx := d.actx
	d.wg.Go(func() {
		defer close(w.exited)
		w.run(ctx, actx)
	})
}

// worker is the worker of the target called name, nil when none is.
func (d *Dispatcher) worker(name string) *worker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.workers[name]
}

// names are the targets' names, sorted.
func (d *Dispatcher) names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.workers))
}

// sameTarget reports whether b is a, without comparing values that
// cannot be compared (they count as changed).
func sameTarget(a, b Target) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}
