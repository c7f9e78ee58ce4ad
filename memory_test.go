package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPlanMemory(t *testing.T) {
	const mib = 1 << 20
	tests := map[string]struct {
		requested, cpus int
		limit           int64 // cgroup
		envLimit        bool  // GOMEMLIMIT set
		wantSlots       int
		wantGoLimit     int64
	}{
		// No container limit: a slot per CPU, Go's defaults.
		"no limit":            {cpus: 2, wantSlots: 2},
		"no limit, many cpus": {cpus: 32, wantSlots: 32},
		"explicit, no limit":  {requested: 5, cpus: 2, wantSlots: 5},
		// 128 MiB: 40 MiB for the binary's pages and 48 for the heap
		// leave two slots of 19 MiB; the heap gets 90% of the rest.
		"128 MiB, 2 cpus":      {cpus: 2, limit: 128 * mib, wantSlots: 2, wantGoLimit: (128*mib - 40*mib - 2*19*mib) / 10 * 9},
		"128 MiB, 16 cpus":     {cpus: 16, limit: 128 * mib, wantSlots: 2, wantGoLimit: (128*mib - 40*mib - 2*19*mib) / 10 * 9},
		"tiny limit, one slot": {cpus: 8, limit: 96 * mib, wantSlots: 1, wantGoLimit: 48 * mib / 10 * 9},
		"1 GiB, 64 cpus":       {cpus: 64, limit: 1024 * mib, wantSlots: 49, wantGoLimit: (1024*mib - 40*mib - 49*19*mib) / 10 * 9},
		// An explicit concurrency is the operator's decision; the heap
		// keeps its floor.
		"explicit over the limit": {requested: 8, cpus: 2, limit: 128 * mib, wantSlots: 8, wantGoLimit: 48 * mib / 10 * 9},
		// GOMEMLIMIT in the environment wins over the derived one.
		"GOMEMLIMIT set": {cpus: 2, limit: 128 * mib, envLimit: true, wantSlots: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := planMemory(tc.requested, tc.cpus, tc.limit, tc.envLimit)
			if p.hashSlots != tc.wantSlots || p.goLimit != tc.wantGoLimit {
				t.Fatalf("planMemory = %d slots, Go limit %d; want %d, %d", p.hashSlots, p.goLimit, tc.wantSlots, tc.wantGoLimit)
			}
			if tc.limit > 0 && tc.requested == 0 && int64(p.hashSlots)*hashMemory+memoryReserve > tc.limit && p.hashSlots > 1 {
				t.Fatalf("%d slots do not fit %d bytes", p.hashSlots, tc.limit)
			}
		})
	}
}

// serve collects at GOGC=50 unless the environment says otherwise.
func TestApplyMemoryPlanGCPercent(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	before := debug.SetGCPercent(100)
	defer func() { debug.SetGCPercent(before); runtime.GOMAXPROCS(procs) }()
	for _, env := range []string{"", "200"} {
		t.Setenv("GOGC", env)
		debug.SetGCPercent(100)
		applyMemoryPlan(memoryPlan{hashSlots: 1}, 1)
		want := gcPercent
		if env != "" {
			want = 100 // left as the runtime set it from GOGC
		}
		if got := debug.SetGCPercent(100); got != want {
			t.Errorf("GOGC=%q: GC percent %d after applyMemoryPlan, want %d", env, got, want)
		}
	}
}
