package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	// 1..1000 ms: the p-th percentile by nearest rank is p*10 ms.
	var d []time.Duration
	for i := 1000; i >= 1; i-- { // unsorted on purpose: summarize sorts
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", s.P50, 500 * time.Millisecond},
		{"p90", s.P90, 900 * time.Millisecond},
		{"p99", s.P99, 990 * time.Millisecond},
		{"p99.9", s.P999, 999 * time.Millisecond},
		{"max", s.Max, 1000 * time.Millisecond},
		{"mean", s.Mean, 500500 * time.Microsecond},
	} {
		if c.got != c.want {
			t.Errorf("%s of 1..1000 ms = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.N != 1000 {
		t.Errorf("N = %d, want 1000", s.N)
	}
}

func TestPercentileSmall(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, c := range []struct {
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99.9, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond}, // rank ceil(1) = 1
		{ms(1, 2), 51, 2 * time.Millisecond}, // rank ceil(1.02) = 2
		{ms(1, 2, 3, 4), 75, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		// One slow message in 100: p99 does not see it, p99.9 and max do.
		{append(ms(make([]int, 99)...), 50*time.Millisecond), 99, 0},
		{append(ms(make([]int, 99)...), 50*time.Millisecond), 99.9, 50 * time.Millisecond},
	} {
		if got := percentile(c.values, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.values, c.p, got, c.want)
		}
	}
}

func TestRecipients(t *testing.T) {
	r, err := newRecipients("r{n}@sink.test", 5, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Message seq takes rcpts consecutive numbers from start, cycling over count.
	for _, c := range []struct {
		seq  int64
		want []string
	}{
		{0, []string{"r5@sink.test", "r6@sink.test"}},
		{1, []string{"r7@sink.test", "r5@sink.test"}},
		{2, []string{"r6@sink.test", "r7@sink.test"}},
	} {
		got := r.forMessage(c.seq, nil)
		if len(got) != len(c.want) || got[0] != c.want[0] || got[1] != c.want[1] {
			t.Errorf("message %d: %v, want %v", c.seq, got, c.want)
		}
	}
	if _, err := newRecipients("fixed@sink.test", 0, 10, 2); err == nil {
		t.Error("a pattern without {n} and 2 recipients per message: want an error")
	}
	if _, err := newRecipients("r{n}@sink.test", 0, 1, 2); err == nil {
		t.Error("2 recipients per message from a range of 1: want an error")
	}
	if r, err := newRecipients("fixed@sink.test", 0, 1, 1); err != nil || r.forMessage(9, nil)[0] != "fixed@sink.test" {
		t.Errorf("a fixed address: %v", err)
	}
}
