package password_test

import (
	"context"
	"crypto/rand"
	"runtime"
	"testing"

	"github.com/ideapool/ideapool/internal/password"
)

// The floor of every password login: one argon2id at OWASP parameters.
// hack/bench measures the same thing (Parallel, one hash per CPU) as the
// baseline of the login workload.

func BenchmarkHash(b *testing.B) {
	h := benchHasher(b, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "the-Secret-123"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := benchHasher(b, 1)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "the-Secret-123")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := h.Verify(ctx, hash, "the-Secret-123"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParallel verifies on every CPU through the Hasher's own
// bound, as a login flood does: ns/op is the inverse of the machine's
// hashes per second.
func BenchmarkVerifyParallel(b *testing.B) {
	h := benchHasher(b, 0)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "the-Secret-123")
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(1) // GOMAXPROCS goroutines: as many as the Hasher admits
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := h.Verify(ctx, hash, "the-Secret-123"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
}

func benchHasher(b *testing.B, concurrency int) *password.Hasher {
	b.Helper()
	h, err := password.NewHasher(password.OWASP, rand.Reader, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	return h
}
