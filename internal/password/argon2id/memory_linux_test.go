package argon2id

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
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
	// Cleanups run on their own goroutine after a collection: give the
	// unmapping (of huge pages, slower than of small ones) time to finish.
	var grown int64
	for range 100 {
		runtime.GC()
		if grown = vmSize(t) - before; grown <= 200<<20 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("address space grew by %d MiB after dropping 1000 Memories: they are not unmapped", grown>>20)
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

// The hash memory asks for transparent huge pages: its mapping carries the
// kernel's "hg" (MADV_HUGEPAGE) flag, whatever the machine's THP setting.
func TestMemoryAdvisesHugePages(t *testing.T) {
	m := NewMemory(19 * 1024)
	start := uint64(uintptr(unsafe.Pointer(&m.blocks[0])))
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	inMapping := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if lo, hi, ok := mappingRange(line); ok {
			inMapping = lo <= start && start < hi
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && inMapping {
			if !slices.Contains(strings.Fields(flags), "hg") {
				t.Fatalf("the hash memory's mapping has VmFlags %q, without hg (MADV_HUGEPAGE)", flags)
			}
			runtime.KeepAlive(m)
			return
		}
	}
	t.Fatal("the hash memory's mapping is not in /proc/self/smaps")
}

// mappingRange parses the "lo-hi perms ..." header of a smaps entry.
func mappingRange(line string) (lo, hi uint64, ok bool) {
	addrs, _, found := strings.Cut(line, " ")
	l, h, dash := strings.Cut(addrs, "-")
	if !found || !dash {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(l, 16, 64)
	hi, err2 := strconv.ParseUint(h, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
}
