//go:build amd64 && !purego

package argon2id

import "golang.org/x/sys/cpu"

// useAVX2 chooses the AVX2 compression function, four words per
// instruction; x/crypto's own is SSE4.1, two.
var useAVX2 = cpu.X86.HasAVX2

//go:noescape
func compressAVX2(scratch, out, x, y *block, xor bool)

func compress(scratch, out, x, y *block, xor bool) {
	if useAVX2 {
		compressAVX2(scratch, out, x, y, xor)
		return
	}
	compressGeneric(scratch, out, x, y, xor)
}
