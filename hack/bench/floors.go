package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/password"
	"github.com/ideapool/ideapool/internal/token"
)

// The floors of refresh and login are measured here, in the bench process,
// while the server idles: nothing but the cryptography the server's request
// does once, on as many goroutines as the workload has connections (the
// server runs one per connection too), over GOMAXPROCS CPUs.

// rawSigning signs access tokens with the keyset file the server uses,
// through the same token.Manager.
func rawSigning(ctx context.Context, keysPath, issuer string, workers int, win window) (loadResult, string, error) {
	data, err := os.ReadFile(strings.TrimPrefix(keysPath, "file:"))
	if err != nil {
		return loadResult{}, "", fmt.Errorf("read the server's keyset: %w", err)
	}
	ks, err := keyset.Parse(data)
	if err != nil {
		return loadResult{}, "", err
	}
	m, err := token.NewManager(token.Config{Issuer: issuer, Now: time.Now, Rand: rand.Reader})
	if err != nil {
		return loadResult{}, "", err
	}
	if err := m.SetKeyset(ks); err != nil {
		return loadResult{}, "", err
	}
	alg := ""
	for _, k := range ks.Keys {
		if k.ID == m.ActiveKeyID() {
			alg = string(k.Algorithm)
		}
	}
	c := token.AccessClaims{Subject: "user-0123456789", SessionID: "session-0123456789",
		Email: "bench-00@example.com", Name: "Bench User 00"}
	r := runClosedLoop(ctx, workers, win, func(context.Context, int) error {
		_, _, err := m.SignAccess(c, 10*time.Minute)
		return err
	})
	return r, alg, nil
}

// rawXCrypto computes golang.org/x/crypto/argon2's IDKey at OWASP
// parameters, as many at once as there are CPUs: the argon2id most Go
// programs use, allocating its 19 MiB per hash.
func rawXCrypto(ctx context.Context, workers int, win window) loadResult {
	p := password.OWASP
	salt := []byte("0123456789abcdef")
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	return runClosedLoop(ctx, workers, win, func(ctx context.Context, _ int) error {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		argon2.IDKey([]byte(benchPassword(0)), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen)
		<-slots
		return nil
	})
}

// rawHashing verifies a password with the server's Hasher at OWASP
// parameters, as many at once as the Hasher admits (one per CPU): exactly
// the hashing a correct login does, nothing else.
func rawHashing(ctx context.Context, workers int, win window) (loadResult, error) {
	h, err := password.NewHasher(password.OWASP, rand.Reader, 0)
	if err != nil {
		return loadResult{}, err
	}
	hash, err := h.Hash(ctx, benchPassword(0))
	if err != nil {
		return loadResult{}, err
	}
	return runClosedLoop(ctx, workers, win, func(ctx context.Context, _ int) error {
		return h.Verify(ctx, hash, benchPassword(0))
	}), nil
}
