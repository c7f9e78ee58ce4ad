package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupPages hands the binary's read-only pages (code and constant
// data) back to the kernel once serve is listening. The binary also holds
// the operator and the Kubernetes clients, and by the time serve listens
// every linked package has run its init code: the kernel has mapped about
// 45 MiB of the executable (a fault maps its neighbours too), most of which
// serving never touches again. MADV_PAGEOUT drops those pages; the ones
// serving needs come back on first use, from the page cache or the file.
// It returns how many mappings it advised.
func releaseStartupPages() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("release startup pages: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("release startup pages: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return n, fmt.Errorf("release startup pages: unreadable mapping %q", fields[0])
		}
		// A raw address range, not Go memory: madvise through the system
		// call rather than unix.Madvise, which wants a []byte.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return n, fmt.Errorf("release startup pages: madvise %s: %w", fields[0], errno)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("release startup pages: %w", err)
	}
	return n, nil
}
