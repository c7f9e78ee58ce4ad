//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package argon2id

func allocBlocks(_ *Memory, n int) []block { return make([]block, n) }
