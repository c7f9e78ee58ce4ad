package keyset

import (
	"fmt"
	"time"
)

// Policy defaults, used for zero-valued fields.
const (
	DefaultAlgorithm        = RS256
	DefaultRSABits          = 2048
	DefaultRotationInterval = 720 * time.Hour
	DefaultPublishAhead     = time.Hour
	DefaultJWKSMaxAge       = 5 * time.Minute
	DefaultClockSkew        = time.Minute
	DefaultMaxTokenTTL      = 24 * time.Hour
)

// Policy says how keys are generated and rotated. Zero values mean the
// defaults above; call Validate once to check a policy.
type Policy struct {
	// Algorithm of newly generated keys. Default RS256, which every OIDC
	// relying party supports.
	Algorithm Algorithm
	// RSABits is the modulus size for RS256 keys: 2048, 3072 or 4096.
	RSABits int
	// RotationInterval is how long each key signs.
	RotationInterval time.Duration
	// PublishAhead is the least time a scheduled key is published before it
	// signs. It must cover JWKSMaxAge+ClockSkew so that every verifier that
	// cached our JWKS has refreshed it by then.
	PublishAhead time.Duration
	// JWKSMaxAge is how long clients may cache the JWKS (Cache-Control).
	JWKSMaxAge time.Duration
	// ClockSkew is the largest clock difference assumed between replicas
	// and verifiers.
	ClockSkew time.Duration
	// MaxTokenTTL is the longest lifetime of any token signed (access or ID
	// token). A retired key stays published for this long plus ClockSkew.
	MaxTokenTTL time.Duration
}

// WithDefaults returns p with zero fields set to their defaults.
func (p Policy) WithDefaults() Policy {
	if p.Algorithm == "" {
		p.Algorithm = DefaultAlgorithm
	}
	if p.RSABits == 0 {
		p.RSABits = DefaultRSABits
	}
	if p.RotationInterval == 0 {
		p.RotationInterval = DefaultRotationInterval
	}
	if p.PublishAhead == 0 {
		p.PublishAhead = DefaultPublishAhead
	}
	if p.JWKSMaxAge == 0 {
		p.JWKSMaxAge = DefaultJWKSMaxAge
	}
	if p.ClockSkew == 0 {
		p.ClockSkew = DefaultClockSkew
	}
	if p.MaxTokenTTL == 0 {
		p.MaxTokenTTL = DefaultMaxTokenTTL
	}
	return p
}

// Validate checks p with its defaults filled in and names the bad field.
func (p Policy) Validate() error {
	p = p.WithDefaults()
	switch {
	case !p.Algorithm.Valid():
		return fmt.Errorf("keyset policy: algorithm %q is not one of RS256, ES256, EdDSA", p.Algorithm)
	case p.RSABits != 2048 && p.RSABits != 3072 && p.RSABits != 4096:
		return fmt.Errorf("keyset policy: rsa_bits %d is not one of 2048, 3072, 4096", p.RSABits)
	case p.JWKSMaxAge < 0:
		return fmt.Errorf("keyset policy: jwks_max_age %s is negative", p.JWKSMaxAge)
	case p.ClockSkew < 0:
		return fmt.Errorf("keyset policy: clock_skew %s is negative", p.ClockSkew)
	case p.MaxTokenTTL < 0:
		return fmt.Errorf("keyset policy: max_token_ttl %s is negative", p.MaxTokenTTL)
	case p.PublishAhead < p.JWKSMaxAge+p.ClockSkew:
		return fmt.Errorf("keyset policy: publish_ahead %s is shorter than jwks_max_age + clock_skew (%s)", p.PublishAhead, p.JWKSMaxAge+p.ClockSkew)
	case p.RotationInterval < p.PublishAhead:
		return fmt.Errorf("keyset policy: rotation_interval %s is shorter than publish_ahead %s", p.RotationInterval, p.PublishAhead)
	}
	return nil
}

// propagation is how long a newly published key must be visible before it
// may sign: every cached JWKS has expired by then, on any clock.
func (p Policy) propagation() time.Duration { return p.JWKSMaxAge + p.ClockSkew }

// removeAfter is when a key retired at t may leave the JWKS.
func (p Policy) removeAfter(retired time.Time) time.Time {
	return retired.Add(p.MaxTokenTTL + p.ClockSkew)
}
