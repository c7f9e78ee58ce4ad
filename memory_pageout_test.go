//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFileKiB is the resident file-backed memory of this process.
func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseStartupPages: the test binary, like serve, has run the init code
// of everything it links; releasing its read-only pages must shrink its
// resident file-backed memory, and what it then runs still works (this test).
func TestReleaseStartupPages(t *testing.T) {
	before := rssFileKiB(t)
	n, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	if n == 0 || after >= before/2 {
		t.Fatalf("advised %d mappings; resident file pages %d KiB -> %d KiB, want less than half", n, before, after)
	}
	t.Logf("advised %d mappings; resident file pages %d KiB -> %d KiB", n, before, after)
}
