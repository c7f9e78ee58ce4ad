// Package password hashes and checks passwords with argon2id in PHC string
// format, under a concurrency bound so that a login flood cannot exhaust
// memory or starve the rest of the process: each hashing slot owns the
// working memory of one hash (19 MiB at OWASP's parameters), reused by every
// hash that runs in it, so the memory of hashing is the slots' and no more.
package password

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/ideapool/ideapool/internal/password/argon2id"
)

// Params are argon2id parameters. The defaults are OWASP's minimum
// recommendation: 19 MiB, 2 iterations, 1 lane.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLen     int
	KeyLen      uint32
}

// OWASP is the default parameter set.
var OWASP = Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// owaspDummy is a hash of a throwaway password with the OWASP parameters,
// made once offline: computing it at start would cost 19 MiB of resident
// memory for nothing. Verifying against it takes as long as a real check.
const owaspDummy = "$argon2id$v=19$m=19456,t=2,p=1$/nzMuGySjFzAunFmuGJ+Vw$0nZZGK2G1mAt9IDMvBt+yJ7U5UaTva8QK3LZjAYPhRE"

// MaxLen is the longest password accepted, in bytes. Longer ones are refused,
// never truncated.
const MaxLen = 1024

// ErrMismatch means the password does not match the hash.
var ErrMismatch = errors.New("password mismatch")

// Hasher hashes and verifies passwords. At most Concurrency hashes run at
// once; callers beyond that wait (bounded by their context).
type Hasher struct {
	params Params
	rand   io.Reader
	// slots holds one working memory per hashing slot: taking one is
	// taking the slot. Each is allocated by its first hash and kept.
	slots chan *argon2id.Memory
	// dummy is a valid hash used to spend the same time on unknown accounts.
	dummy string
}

// NewHasher returns a Hasher. concurrency <= 0 means one per CPU.
func NewHasher(p Params, rand io.Reader, concurrency int) (*Hasher, error) {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, rand: rand, slots: make(chan *argon2id.Memory, concurrency), dummy: owaspDummy}
	for range concurrency {
		h.slots <- &argon2id.Memory{}
	}
	if p != OWASP {
		d, err := h.hash(context.Background(), "ideapool-dummy-password")
		if err != nil {
			return nil, fmt.Errorf("prepare dummy hash: %w", err)
		}
		h.dummy = d
	}
	return h, nil
}

// Hash returns the PHC string of pw.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxLen {
		return "", fmt.Errorf("password longer than %d bytes", MaxLen)
	}
	return h.hash(ctx, pw)
}

func (h *Hasher) hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	mem, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	key := argon2id.Key(mem, []byte(pw), salt, h.params.Iterations, h.params.MemoryKiB, h.params.Parallelism, h.params.KeyLen)
	h.release(mem)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2id.Version,
		h.params.MemoryKiB, h.params.Iterations, h.params.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a PHC hash in constant time. It returns
// ErrMismatch when they differ.
func (h *Hasher) Verify(ctx context.Context, hash, pw string) error {
	if len(pw) > MaxLen {
		return ErrMismatch
	}
	p, salt, want, err := decode(hash)
	if err != nil {
		return err
	}
	mem, err := h.acquire(ctx)
	if err != nil {
		return err
	}
	got := argon2id.Key(mem, []byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want))) //nolint:gosec // decode bounds len(want) to 1024
	h.release(mem)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// VerifyDummy spends the time of one verification without a real hash, so
// that an unknown account answers as slowly as a wrong password.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) {
	_ = h.Verify(ctx, h.dummy, pw)
}

// acquire takes a hashing slot and returns its working memory, allocated
// at the Hasher's parameters by the slot's first hash. A hash of other
// parameters (an older stored hash) that needs more works in memory of its
// own, dropped afterwards.
func (h *Hasher) acquire(ctx context.Context) (*argon2id.Memory, error) {
	select {
	case mem := <-h.slots:
		if mem.Size() < h.params.MemoryKiB {
			mem = argon2id.NewMemory(h.params.MemoryKiB)
		}
		return mem, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
}

func (h *Hasher) release(mem *argon2id.Memory) { h.slots <- mem }

var b64 = base64.RawStdEncoding

// decode parses "$argon2id$v=19$m=..,t=..,p=..$salt$hash".
func decode(phc string) (Params, []byte, []byte, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Params{}, nil, nil, errors.New("decode password hash: not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2id.Version {
		return Params{}, nil, nil, fmt.Errorf("decode password hash: unsupported version %q", parts[2])
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return Params{}, nil, nil, fmt.Errorf("decode password hash parameters: %w", err)
	}
	if p.MemoryKiB == 0 || p.MemoryKiB > 1<<20 || p.Iterations == 0 || p.Iterations > 16 || p.Parallelism == 0 {
		return Params{}, nil, nil, errors.New("decode password hash: parameters out of range")
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("decode password salt: %w", err)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 1024 {
		return Params{}, nil, nil, errors.New("decode password hash: bad key")
	}
	return p, salt, key, nil
}
