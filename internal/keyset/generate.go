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

// Pregenerate makes the keys that pending (Plan's Generate) asks for with
// gen, and returns a Generator that hands them out before asking gen for
// more. A caller generates first and then takes the "now" it advances the
// keyset at: a new key counts as published from that now, and generating
// an RSA key on a loaded machine can take seconds, which must not be spent
// after the key's published time, before anyone can see it.
func Pregenerate(gen Generator, pending []PendingKey, rsaBits int) (Generator, error) {
	p := &pregenerated{gen: gen, keys: map[Algorithm][]crypto.Signer{}}
	for _, k := range pending {
		s, err := gen.Generate(k.Algorithm, rsaBits)
		if err != nil {
			return nil, err
		}
		p.keys[k.Algorithm] = append(p.keys[k.Algorithm], s)
	}
	return p, nil
}

type pregenerated struct {
	gen  Generator
	keys map[Algorithm][]crypto.Signer
}

func (p *pregenerated) Generate(alg Algorithm, rsaBits int) (crypto.Signer, error) {
	for i, s := range p.keys[alg] {
		if rsaKeyBits(s) == rsaBits || alg != RS256 {
			p.keys[alg] = append(p.keys[alg][:i], p.keys[alg][i+1:]...)
			return s, nil
		}
	}
	return p.gen.Generate(alg, rsaBits)
}

// rsaKeyBits is the modulus size of an RSA signer, 0 for other keys.
func rsaKeyBits(s crypto.Signer) int {
	if k, ok := s.(*rsa.PrivateKey); ok {
		return k.N.BitLen()
	}
	return 0
}
