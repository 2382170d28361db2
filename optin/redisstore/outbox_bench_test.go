package redisstore

import (
	"context"
	"testing"
	"time"

	"optinproxy/optin"
)

// BenchmarkMemoryOutbox measures what the outbox costs in Redis: N
// subjects (OPTIN_MEMORY_RECORDS, default 20,000) get a consent each,
// which queues N items; one target then takes them all as pending
// records (saved 500 at a time, with its cursor), and they are saved
// again as retired, delivered after one attempt. Reported: the outbox
// stream's MEMORY USAGE per item, and used_memory per pending and per
// retired record (the record in its target's hash and its member in a
// status index). It ignores b.N: run it with -benchtime=1x.
func BenchmarkMemoryOutbox(b *testing.B) {
	n := envInt(b, "OPTIN_MEMORY_RECORDS", 20_000)
	s := benchStore(b)
	ctx := context.Background()
	l := ledger(b, s)
	const batch = 500
	for from := 0; from < n; from += batch {
		var changes []optin.Change
		for i := from; i < min(from+batch, n); i++ {
			changes = append(changes, grant(b, l, addr(b, "member%07d@example.com", i), i))
		}
		if _, err := s.Apply(ctx, changes); err != nil {
			b.Fatal(err)
		}
	}
	items := make([]optin.OutboxItem, 0, n)
	for after := ""; ; {
		p, err := s.OutboxRead(ctx, after, optin.MaxPageSize)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Items) == 0 {
			break
		}
		items, after = append(items, p.Items...), p.Next
	}
	if len(items) != n {
		b.Fatalf("%d grants queued %d items", n, len(items))
	}
	stream := s.rdb.MemoryUsage(ctx, s.keys.outbox(), 0).Val()

	save := func(status optin.DeliveryStatus) {
		now := time.Now()
		for from := 0; from < n; from += batch {
			ds := make([]optin.OutboxDelivery, 0, batch)
			for _, it := range items[from:min(from+batch, n)] {
				d := optin.OutboxDelivery{Target: "crm-webhook", EventID: it.Event.ID, EventType: it.Event.Type, Pos: it.Pos,
					SubjectID: it.SubjectID, Status: status, Created: now, NextAt: now.Add(30 * time.Second)}
				if status == optin.DeliveryRetired {
					d.NextAt, d.Attempts, d.LastAt, d.DoneAt = time.Time{}, 1, now.Add(120*time.Millisecond), now.Add(120*time.Millisecond)
				}
				ds = append(ds, d)
			}
			if err := s.SaveDeliveries(ctx, "crm-webhook", ds, items[min(from+batch, n)-1].Pos); err != nil {
				b.Fatal(err)
			}
		}
	}
	base := usedMemory(b, s.rdb)
	save(optin.DeliveryPending)
	pending := usedMemory(b, s.rdb) - base
	save(optin.DeliveryRetired)
	retired := usedMemory(b, s.rdb) - base
	hash := s.rdb.MemoryUsage(ctx, s.keys.records("crm-webhook"), 0).Val()
	index := s.rdb.MemoryUsage(ctx, s.keys.statusIndex("crm-webhook", optin.DeliveryRetired), 0).Val()

	b.ReportMetric(float64(n), "items")
	b.ReportMetric(float64(stream)/float64(n), "B/outbox-item")
	b.ReportMetric(float64(pending)/float64(n), "B/pending-record")
	b.ReportMetric(float64(retired)/float64(n), "B/retired-record")
	b.ReportMetric(float64(hash)/float64(n), "B/record-in-hash")
	b.ReportMetric(float64(index)/float64(n), "B/record-in-index")
}
