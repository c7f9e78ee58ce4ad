package password_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/password"
)

// TestWaitEndsWithContext: a caller that cannot get a hashing slot gives up
// when its context ends, and the hashes already running finish.
func TestWaitEndsWithContext(t *testing.T) {
	slow := password.Params{MemoryKiB: 64 * 1024, Iterations: 3, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	h, err := password.NewHasher(slow, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := h.Hash(context.Background(), "the-Secret-123"); done <- err }()
	time.Sleep(5 * time.Millisecond) // let it take the one slot
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "the-Secret-123"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hash with an ended context: %v, want context.DeadlineExceeded", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the running hash: %v", err)
	}
}
