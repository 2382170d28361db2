package main

import (
	"math"
	"slices"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order: the smallest value that at least
// p % of the values are less than or equal to. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The rank is ceil(p/100 * n), 1-based. The product is rounded to a
	// millionth first, so that p = 99.9 and n = 1000 (999.0000000000001 in
	// floating point) gives rank 999, not 1000.
	x := math.Round(p/100*float64(n)*1e6) / 1e6
	rank := int(math.Ceil(x))
	rank = max(rank, 1)
	rank = min(rank, n)
	return sorted[rank-1]
}

// summary is what a set of latencies is reported as.
type summary struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
	Mean                     time.Duration
}

// summarize sorts d in place and summarizes it.
func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return summary{
		N:    len(d),
		P50:  percentile(d, 50),
		P90:  percentile(d, 90),
		P99:  percentile(d, 99),
		P999: percentile(d, 99.9),
		Max:  d[len(d)-1],
		Mean: sum / time.Duration(len(d)),
	}
}

// ms is a duration in milliseconds, rounded to a microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}
