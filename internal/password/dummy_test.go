package password

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
)

// The shipped dummy hash must be a sound OWASP hash (a decode error would
// answer unknown accounts faster than wrong passwords).
func TestDummyIsAnOWASPHash(t *testing.T) {
	h, err := NewHasher(OWASP, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _, err := decode(h.dummy); err != nil || p.MemoryKiB != OWASP.MemoryKiB || p.Iterations != OWASP.Iterations || p.Parallelism != OWASP.Parallelism {
		t.Fatalf("dummy hash %q: params %+v, %v", h.dummy, p, err)
	}
	if err := h.Verify(context.Background(), h.dummy, "anything"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("verifying against the dummy hash: %v, want ErrMismatch", err)
	}
}
