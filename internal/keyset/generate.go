package keyset

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"io"
)

// Generator creates private keys. Advance, RequestRotation and Revoke take
// one so that tests can substitute a deterministic source.
type Generator interface {
	// Generate returns a new private key for alg; rsaBits applies to RS256.
	Generate(alg Algorithm, rsaBits int) (crypto.Signer, error)
}

// NewGenerator returns the production Generator, drawing key material from
// rand (crypto/rand.Reader in main). ECDSA P-256 and Ed25519 keys are
// derived from rand directly. RSA keys come from crypto/rsa, which since
// Go 1.26 ignores the reader and always uses the system's secure source.
func NewGenerator(rand io.Reader) Generator { return readerGenerator{rand: rand} }

type readerGenerator struct{ rand io.Reader }

var _ Generator = readerGenerator{}

func (g readerGenerator) Generate(alg Algorithm, rsaBits int) (crypto.Signer, error) {
	switch alg {
	case RS256:
		if rsaBits != 2048 && rsaBits != 3072 && rsaBits != 4096 {
			return nil, fmt.Errorf("generate key: rsa bits %d not one of 2048, 3072, 4096", rsaBits)
		}
		return rsa.GenerateKey(g.rand, rsaBits)
	case ES256:
		// Rejection sampling: a 32-byte value is a valid scalar unless it is
		// zero or not below the group order, which is vanishingly rare.
		buf := make([]byte, 32)
		for range 64 {
			if _, err := io.ReadFull(g.rand, buf); err != nil {
				return nil, fmt.Errorf("generate key: %w", err)
			}
			if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), buf); err == nil {
				return k, nil
			}
		}
		return nil, fmt.Errorf("generate key: no valid P-256 scalar from the random source")
	case EdDSA:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(g.rand, seed); err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	return nil, fmt.Errorf("generate key: unsupported alg %q", alg)
}
