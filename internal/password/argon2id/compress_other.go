//go:build !amd64 || purego

package argon2id

func compress(scratch, out, x, y *block, xor bool) { compressGeneric(scratch, out, x, y, xor) }
