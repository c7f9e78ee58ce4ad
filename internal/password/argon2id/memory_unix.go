//go:build linux || darwin || freebsd || netbsd || openbsd

package argon2id

import (
	"runtime"
	"syscall"
	"unsafe"
)

// allocBlocks maps n blocks of anonymous memory, unmapped when owner is
// collected. If the kernel refuses, they come from Go's heap instead.
func allocBlocks(owner *Memory, n int) []block {
	if n == 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, n*blockWords*8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]block, n)
	}
	adviseHugePages(b)
	runtime.AddCleanup(owner, func(b []byte) { _ = syscall.Munmap(b) }, b)
	return unsafe.Slice((*block)(unsafe.Pointer(unsafe.SliceData(b))), n) //nolint:gosec // the mapping is exactly n blocks, page-aligned, and lives as long as owner
}
