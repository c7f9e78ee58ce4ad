package keyset_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/keyset"
)

// t0 is the fake clock's origin.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr(t time.Time) *time.Time { return &t }

// testPolicy is small enough that a walk through several rotations stays
// readable: keys sign 10h, tokens live 1h.
var testPolicy = keyset.Policy{
	Algorithm:        keyset.ES256,
	RotationInterval: 10 * time.Hour,
	PublishAhead:     time.Hour,
	JWKSMaxAge:       5 * time.Minute,
	ClockSkew:        time.Minute,
	MaxTokenTTL:      time.Hour,
}

// detGen is a deterministic Generator: ECDSA and Ed25519 keys come from a
// seeded ChaCha8 stream, RSA keys from a small pool generated once per test
// binary (crypto/rsa ignores custom readers since Go 1.26).
type detGen struct {
	mu   sync.Mutex
	next keyset.Generator
	rsaN int
}

func newDetGen(seed byte) *detGen {
	return &detGen{next: keyset.NewGenerator(mrand.NewChaCha8([32]byte{seed}))}
}

func (g *detGen) Generate(alg keyset.Algorithm, bits int) (crypto.Signer, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if alg == keyset.RS256 {
		k := rsaPool()[g.rsaN%len(rsaPool())]
		g.rsaN++
		return k, nil
	}
	return g.next.Generate(alg, bits)
}

var rsaPool = sync.OnceValue(func() []*rsa.PrivateKey {
	var keys []*rsa.PrivateKey
	for range 3 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	return keys
})

// mustKey generates a real key with the given schedule.
func mustKey(t testing.TB, g keyset.Generator, alg keyset.Algorithm, published, active time.Time) keyset.Key {
	t.Helper()
	s, err := g.Generate(alg, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyset.NewKey(s, alg, published, published, active)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sched builds a key that has a schedule but no key material, for the
// decisions that only look at times.
func sched(id string, published, active time.Time, retired ...time.Time) keyset.Key {
	k := keyset.Key{ID: id, Algorithm: keyset.ES256, CreatedAt: published, PublishedAt: published, ActiveAt: active}
	if len(retired) > 0 {
		k.RetiredAt = ptr(retired[0])
		k.RemoveAfter = ptr(retired[1])
	}
	return k
}

func ids(keys []keyset.Key) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}
