package optin_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"optinproxy/optin"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestDomainRates(t *testing.T) {
	var c clock
	c.set(time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC))
	r := optin.NewDomainRates(c.now)

	r.Sent("Shop.Example", 1000) // domains are case-insensitive
	if rate, sent, n := r.Complaint("shop.example"); rate != 0.001 || sent != 1000 || n != 1 {
		t.Errorf("Complaint = %v, %d, %d; want 0.001, 1000, 1", rate, sent, n)
	}
	// 23 hours later the first hour still counts.
	c.advance(23 * time.Hour)
	r.Sent("shop.example", 1000)
	if rate, sent, n := r.Rate("shop.example"); rate != 0.0005 || sent != 2000 || n != 1 {
		t.Errorf("after 23h: Rate = %v, %d, %d; want 0.0005, 2000, 1", rate, sent, n)
	}
	// 24 hours after the first, its bucket has left the window.
	c.advance(time.Hour)
	if rate, sent, n := r.Rate("shop.example"); rate != 0 || sent != 1000 || n != 0 {
		t.Errorf("after 24h: Rate = %v, %d, %d; want 0, 1000, 0", rate, sent, n)
	}
	// A bucket reused a day later starts from zero.
	c.advance(23 * time.Hour)
	r.Sent("shop.example", 10)
	if _, sent, _ := r.Rate("shop.example"); sent != 10 {
		t.Errorf("a day later: sent %d, want 10", sent)
	}
	// No copies counted: no rate.
	if rate, sent, n := r.Complaint("elsewhere.example"); rate != 0 || sent != 0 || n != 1 {
		t.Errorf("Complaint without sends = %v, %d, %d; want 0, 0, 1", rate, sent, n)
	}
	// Non-positive counts count nothing.
	r.Sent("none.example", 0)
	if _, sent, _ := r.Rate("none.example"); sent != 0 {
		t.Errorf("Sent(0) counted %d", sent)
	}
}

// TestDomainRatesConcurrent is for the race detector: the relay counts
// from many goroutines while complaints come in.
func TestDomainRatesConcurrent(t *testing.T) {
	r := optin.NewDomainRates(nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				r.Sent(fmt.Sprintf("d%d.example", i%4), 1)
				if i%100 == g {
					r.Complaint("d0.example")
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		_, sent, _ := r.Rate(fmt.Sprintf("d%d.example", i))
		total += sent
	}
	if total != 8000 {
		t.Errorf("sent %d, want 8000", total)
	}
}

func BenchmarkDomainRatesSent(b *testing.B) {
	r := optin.NewDomainRates(nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Sent("shop.example", 1)
		}
	})
}
