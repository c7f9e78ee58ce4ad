package argon2id

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// A Memory lives outside Go's heap, and is unmapped once collected: a
// thousand dropped 19 MiB memories (19 GiB) leave the address space as it
// was, and none of them counts toward the heap.
func TestMemoryUnmappedWhenCollected(t *testing.T) {
	runtime.GC()
	before := vmSize(t)
	var ms0, ms1 runtime.MemStats
	for i := range 1000 {
		if i == 0 {
			runtime.ReadMemStats(&ms0)
		}
		m := NewMemory(19 * 1024)
		if i == 0 {
			runtime.ReadMemStats(&ms1)
			if n := ms1.TotalAlloc - ms0.TotalAlloc; n > 1<<20 {
				t.Fatalf("NewMemory allocated %d bytes on the heap: the Memory is on the heap", n)
			}
		}
		m.blocks[len(m.blocks)-1][0] = uint64(i) // one page resident
		if i%50 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	runtime.GC()
	if grown := vmSize(t) - before; grown > 200<<20 {
		t.Fatalf("address space grew by %d MiB after dropping 1000 Memories: they are not unmapped", grown>>20)
	}
}

func vmSize(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmSize in /proc/self/status")
	return 0
}
