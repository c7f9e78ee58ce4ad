package main

import (
	"context"
	"math/bits"
	"sync"
	"time"
)

// window is one measurement: workers start together, run warmup unmeasured,
// then duration measured. Only operations that complete inside the measured
// window count, whenever they started: in steady state that gives the true
// rate even when one operation takes a large part of the window (logins).
type window struct {
	warmup   time.Duration
	duration time.Duration
}

// op is one operation of worker w. A non-nil error counts as an error (a
// transport failure or an unexpected status); its text is kept as a sample.
type op func(ctx context.Context, w int) error

// loadResult is what one closed-loop run measured.
type loadResult struct {
	ops       int64 // completed in the window, errors included
	errors    int64
	elapsed   time.Duration
	latencies *histogram // of the operations counted in ops
	samples   []string   // first few error texts
}

func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops-r.errors) / r.elapsed.Seconds()
}

// runClosedLoop runs workers goroutines, each issuing f back to back, and
// measures the window. Operations still running when the window ends are
// allowed to finish (they are not counted) so a server is never left with
// half-read requests; ctx bounds them all the same.
func runClosedLoop(ctx context.Context, workers int, win window, f op) loadResult {
	start := time.Now()
	from, until := start.Add(win.warmup), start.Add(win.warmup+win.duration)
	type part struct {
		ops, errors int64
		h           *histogram
		samples     []string
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := &parts[w]
			p.h = newHistogram()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				err := f(ctx, w)
				t1 := time.Now()
				if t1.Before(from) || !t1.Before(until) {
					if err != nil && len(p.samples) < 3 && ctx.Err() == nil {
						p.samples = append(p.samples, err.Error())
					}
					continue
				}
				p.ops++
				p.h.record(t1.Sub(t0))
				if err != nil {
					p.errors++
					if len(p.samples) < 3 {
						p.samples = append(p.samples, err.Error())
					}
				}
			}
		})
	}
	wg.Wait()
	r := loadResult{elapsed: win.duration, latencies: newHistogram()}
	for _, p := range parts {
		r.ops += p.ops
		r.errors += p.errors
		r.latencies.merge(p.h)
		for _, s := range p.samples {
			if len(r.samples) < 5 {
				r.samples = append(r.samples, s)
			}
		}
	}
	return r
}

// histogram is an HDR-style log-linear histogram of durations in
// nanoseconds: exact below 128 ns, then 64 buckets per power of two, so a
// quantile is within 1.6% of the truth. Recording is one array increment.
type histogram struct {
	counts [64 << subShift]int64
	total  int64
}

const (
	subBits  = 7 // values below 1<<subBits are exact
	subShift = subBits - 1
)

func newHistogram() *histogram { return &histogram{} }

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits
	return e<<subShift + int(v>>e) //nolint:gosec // v>>e < 1<<subBits
}

// bucketMid is the middle of bucket i's range.
func bucketMid(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i) //nolint:gosec // i >= 0
	}
	e := i>>subShift - 1
	lo := uint64(i-e<<subShift) << e //nolint:gosec // i-e<<subShift is within [64, 128)
	return lo + (uint64(1)<<e)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the q-quantile (0 < q <= 1), zero for no data.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := int64(q*float64(h.total) + 0.5)
	rank = max(rank, 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketMid(i)) //nolint:gosec // bounded by the largest recorded duration
		}
	}
	return 0
}

// sliceWarmup is the unmeasured start of every slice but the first, while
// the closed loop refills.
const sliceWarmup = 200 * time.Millisecond

// interleave measures x and y in alternating slices (x, y, x, y, ...) that
// add up to win.duration each, so that both see the same share of whatever
// else the machine is doing at the time: on a shared machine a baseline
// measured a minute apart from its workload makes a noisy ratio.
func interleave(win window, rounds int, x, y func(window) loadResult) (loadResult, loadResult) {
	r := interleaveN(win, rounds, x, y)
	return r[0], r[1]
}

// interleaveN is interleave of any number of workloads.
func interleaveN(win window, rounds int, fs ...func(window) loadResult) []loadResult {
	rounds = max(rounds, 1)
	slice := window{warmup: win.warmup, duration: win.duration / time.Duration(rounds)}
	out := make([]loadResult, len(fs))
	for i := range rounds {
		if i > 0 {
			slice.warmup = sliceWarmup
		}
		for n, f := range fs {
			out[n] = out[n].add(f(slice))
		}
	}
	return out
}

// add sums two measurements of the same workload.
func (r loadResult) add(o loadResult) loadResult {
	if r.latencies == nil {
		r.latencies = newHistogram()
	}
	r.ops += o.ops
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.latencies.merge(o.latencies)
	for _, s := range o.samples {
		if len(r.samples) < 5 {
			r.samples = append(r.samples, s)
		}
	}
	return r
}
