package argon2id

import (
	"testing"

	"golang.org/x/crypto/argon2"
)

// One hash at OWASP's parameters (19 MiB, t=2, p=1): this package with its
// memory reused, without, and x/crypto's for comparison. The figures are
// only comparable within one run.

var pw, salt = []byte("the-Secret-123"), []byte("somesaltsomesalt")

func BenchmarkKeyReused(b *testing.B) {
	mem := NewMemory(19 * 1024)
	for b.Loop() {
		Key(mem, pw, salt, 2, 19*1024, 1, 32)
	}
}

func BenchmarkKeyFresh(b *testing.B) {
	for b.Loop() {
		Key(nil, pw, salt, 2, 19*1024, 1, 32)
	}
}

func BenchmarkXCrypto(b *testing.B) {
	for b.Loop() {
		argon2.IDKey(pw, salt, 2, 19*1024, 1, 32)
	}
}

func BenchmarkCompress(b *testing.B) {
	var s, out, x, y block
	b.SetBytes(1024)
	for b.Loop() {
		compress(&s, &out, &x, &y, true)
	}
}

func BenchmarkCompressGeneric(b *testing.B) {
	var s, out, x, y block
	b.SetBytes(1024)
	for b.Loop() {
		compressGeneric(&s, &out, &x, &y, true)
	}
}
