package smtpproxy

import (
	"context"
	"sync"
	"time"

	"optinproxy/optin"
)

// Deliveries remembers which recipients the upstream already accepted a
// message for, so that a client's retry after a partial failure delivers
// only the rest (SPEC §4). key identifies the message across retries.
// Implementations are safe for concurrent use.
type Deliveries interface {
	// Delivered reports, per recipient, whether the message already went
	// to it within the window.
	Delivered(ctx context.Context, key string, rcpts []optin.Address) ([]bool, error)
	// Remember records that the message went to rcpts, until until.
	Remember(ctx context.Context, key string, rcpts []optin.Address, until time.Time) error
}

// MemoryDeliveries keeps Deliveries in this process. It forgets on
// restart and is not shared between instances; the store-backed one is.
type MemoryDeliveries struct {
	now func() time.Time

	mu     sync.Mutex
	until  map[string]time.Time
	writes int
}

// NewMemoryDeliveries returns an empty set; now is the clock.
func NewMemoryDeliveries(now func() time.Time) *MemoryDeliveries {
	return &MemoryDeliveries{now: now, until: make(map[string]time.Time)}
}

func deliveryKey(key string, a optin.Address) string { return key + "\x00" + a.String() }

func (m *MemoryDeliveries) Delivered(_ context.Context, key string, rcpts []optin.Address) ([]bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make([]bool, len(rcpts))
	for i, a := range rcpts {
		if t, ok := m.until[deliveryKey(key, a)]; ok && now.Before(t) {
			seen[i] = true
		}
	}
	return seen, nil
}

func (m *MemoryDeliveries) Remember(_ context.Context, key string, rcpts []optin.Address, until time.Time) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range rcpts {
		m.until[deliveryKey(key, a)] = until
	}
	// Sweep now and then, so the map holds only the window.
	if m.writes++; m.writes%256 == 0 {
		for k, t := range m.until {
			if !now.Before(t) {
				delete(m.until, k)
			}
		}
	}
	return nil
}
