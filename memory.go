package main

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/ideapool/ideapool/internal/password"
)

// Memory of `ideapool serve`. A password hash needs 19 MiB (OWASP's argon2id
// parameters); each hashing slot keeps that memory, outside Go's heap, and
// reuses it (internal/password), so the memory of hashing is the slots' and
// no more. What is left to decide is how many slots a container's memory
// limit allows, and the Go heap's limit within the rest. Both are decided
// here, from the cgroup (v1 or v2) limit, so that a plain binary behaves the
// same as the image: no GODEBUG or GOMEMLIMIT a user would have to know to
// set.

// hashMemory is the working memory of one hashing slot.
var hashMemory = int64(password.OWASP.MemoryKiB) << 10

// binaryPages is what the binary's own pages (code and data) take of a
// container's memory: about 45 MiB resident once every linked package has
// run its init code, about 20-26 MiB under load after serve releases the
// ones it does not use (releaseStartupPages); counted at the higher figure.
// The page cache they live in is charged to the container, and if the
// limit leaves them no room the kernel evicts code that runs and reads it
// in again, over and over.
const binaryPages = 40 << 20

// memoryReserve is what a server needs besides its hashing slots: the
// binary's pages, and at least 48 MiB for the Go heap (connections,
// requests, the garbage collector's headroom).
const memoryReserve = binaryPages + 48<<20

// memoryPlan is how `serve` uses its memory.
type memoryPlan struct {
	// cgroupLimit is the container's memory limit, 0 if none.
	cgroupLimit int64
	// hashSlots is how many password hashes run at once.
	hashSlots int
	// goLimit is the Go runtime's soft memory limit to set, 0 to leave
	// Go's default (none) or the GOMEMLIMIT of the environment.
	goLimit int64
	// slotsCapped is true when the limit lowered the slots below the CPUs.
	slotsCapped bool
}

// planMemory decides the hashing slots and the Go memory limit. requested
// is --password-hash-concurrency (0 for the default, one per CPU); a limit
// that cannot hold that many lowers the default, never an explicit value.
// goMemLimitSet means GOMEMLIMIT is in the environment, which wins.
func planMemory(requested, cpus int, cgroupLimit int64, goMemLimitSet bool) memoryPlan {
	p := memoryPlan{cgroupLimit: cgroupLimit, hashSlots: requested}
	if p.hashSlots == 0 {
		p.hashSlots = cpus
		if cgroupLimit > 0 {
			fit := int(max(cgroupLimit-memoryReserve, 0) / hashMemory)
			if fit < p.hashSlots {
				p.hashSlots, p.slotsCapped = max(fit, 1), true
			}
		}
	}
	if cgroupLimit > 0 && !goMemLimitSet {
		// The slots' memory is outside the Go heap, and so are the
		// binary's pages; the heap may have 90% of the rest (the margin
		// Go's documentation suggests for what the runtime does not
		// count), and never less than the reserve's share.
		p.goLimit = max(cgroupLimit-binaryPages-int64(p.hashSlots)*hashMemory, memoryReserve-binaryPages) / 10 * 9
	}
	return p
}

// cgroupMemoryLimit is the memory limit of the cgroup this process runs
// in, 0 if there is none (or no cgroup).
func cgroupMemoryLimit(log *slog.Logger) int64 {
	limit, err := memlimit.FromCgroup()
	switch {
	case err == nil && limit > 0 && limit < 1<<62:
		return int64(limit)
	case err == nil, errors.Is(err, memlimit.ErrNoLimit), errors.Is(err, memlimit.ErrNoCgroup), errors.Is(err, memlimit.ErrCgroupsNotSupported):
		return 0
	default:
		log.Warn("cannot read the cgroup memory limit; assuming none", "error", err)
		return 0
	}
}

// applyMemoryPlan sets the Go memory limit and gives every hashing slot a
// scheduler slot of its own: a hash is 10 ms of CPU, and with as many Ps as
// CPUs a login flood would hold every P while other requests queue behind
// it; one more P per slot leaves a CPU's worth for the rest, and the kernel
// shares the CPUs between them.
func applyMemoryPlan(p memoryPlan, cpus int) {
	if p.goLimit > 0 {
		debug.SetMemoryLimit(p.goLimit)
	}
	runtime.GOMAXPROCS(cpus + p.hashSlots)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// gcPercent is serve's GOGC unless the environment sets one: the heap may
// grow by half its live size between collections instead of doubling.
// Measured with make bench (same machine, minutes apart, against GOGC=100):
// the login flood's peak RSS 81.2 → 78.5 MiB, reads' 52.4 → 48.2 MiB, with
// 0.006 instead of 0.003 collections per read and no change in the server's
// CPU per read (0.13 ms) or per login.
const gcPercent = 50

func goMemLimitInEnv() bool { return os.Getenv("GOMEMLIMIT") != "" }

// goMemoryLimit is the Go runtime's memory limit, 0 for none.
func goMemoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l
	}
	return 0
}
