// Package token issues and verifies ideapool's JWTs: access tokens
// (RFC 9068, typ "at+jwt") and OpenID Connect ID tokens (typ "JWT"), signed
// with the keys of a keyset.Keyset, and serves the public JWKS.
//
// The keyset is swapped atomically (SetKeyset) whenever the key source
// reports a change; which key signs is decided per call from the clock with
// keyset.Signing, so a pre-scheduled rotation needs no reload.
package token

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/ideapool/ideapool/internal/keyset"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidToken means a token was refused; the HTTP layer answers
	// 401. The wrapping error carries a short reason for the log.
	ErrInvalidToken = errors.New("invalid token")
	// ErrExpired means the token was valid but has expired. It wraps
	// ErrInvalidToken, as do the other refusals of VerifyAccess; every
	// refusal wraps exactly one of ErrExpired, ErrUnknownKey,
	// ErrBadSignature and ErrMalformed, so the caller can count why.
	ErrExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
	// ErrUnknownKey means the kid names no key of the keyset that is
	// published now (unknown, revoked, not yet published or removed).
	ErrUnknownKey = fmt.Errorf("%w: unknown kid", ErrInvalidToken)
	// ErrBadSignature means the signature cannot be what our key made: an
	// algorithm we do not allow (checked before the kid), another
	// algorithm than the key's, or a signature that does not verify
	// (tampered or forged).
	ErrBadSignature = fmt.Errorf("%w: bad signature", ErrInvalidToken)
	// ErrMalformed means the token is not an access token of ours at all:
	// not a compact JWS in canonical base64url, a header or claims we never
	// issue (typ, members, issuer, audience, missing or malformed claims).
	ErrMalformed = fmt.Errorf("%w: malformed", ErrInvalidToken)
	// ErrNoSigningKey means no keyset is loaded or no key signs now.
	ErrNoSigningKey = errors.New("no signing key")
)

// Defaults for zero Config fields.
const (
	DefaultLeeway     = 5 * time.Second
	MaxLeeway         = 5 * time.Second
	DefaultJWKSMaxAge = 5 * time.Minute
)

// Config configures a Manager. Zero values mean the defaults.
type Config struct {
	// Issuer is the iss of every token and the only one accepted.
	// +required
	Issuer string
	// Audience is the aud of access tokens and the one required when
	// verifying them. Default: Issuer.
	Audience string
	// Algorithms allowed for verification and advertised in discovery.
	// Default: RS256, ES256, EdDSA. Every key of a keyset must use one.
	Algorithms []string
	// Leeway tolerated on exp, nbf and iat; at most 5s. Default 5s.
	Leeway time.Duration
	// JWKSMaxAge is how long clients may cache the JWKS. Default 5m.
	JWKSMaxAge time.Duration
	// Now is the clock.
	// +required
	Now func() time.Time
	// Rand is the source of jti values (crypto/rand.Reader in main).
	// +required
	Rand io.Reader
}

func (c Config) resolve() (Config, error) {
	if c.Issuer == "" {
		return c, errors.New("token config: issuer is required")
	}
	if c.Audience == "" {
		c.Audience = c.Issuer
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{string(keyset.RS256), string(keyset.ES256), string(keyset.EdDSA)}
	}
	algs := make([]string, 0, len(c.Algorithms))
	for _, a := range c.Algorithms {
		if !keyset.Algorithm(a).Valid() {
			return c, fmt.Errorf("token config: algorithms: %q is not one of RS256, ES256, EdDSA", a)
		}
		if !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	c.Algorithms = algs
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return c, fmt.Errorf("token config: leeway %s is not within 0s..%s", c.Leeway, MaxLeeway)
	}
	switch {
	case c.JWKSMaxAge == 0:
		c.JWKSMaxAge = DefaultJWKSMaxAge
	case c.JWKSMaxAge < 0:
		return c, fmt.Errorf("token config: jwks_max_age %s is negative", c.JWKSMaxAge)
	}
	if c.Now == nil {
		return c, errors.New("token config: now is required")
	}
	if c.Rand == nil {
		return c, errors.New("token config: rand is required")
	}
	return c, nil
}

// Manager signs and verifies tokens with the current keyset. It is safe for
// concurrent use; SetKeyset swaps the keys atomically.
type Manager struct {
	cfg   Config
	state atomic.Pointer[state]
}

// state is one loaded keyset, ready to use.
type state struct {
	ks       keyset.Keyset
	keys     map[string]*entry
	jwks     atomic.Pointer[jwksDoc]
	verified verifiedCache
}

// entry is one key of the keyset in ready-to-use form.
type entry struct {
	key    keyset.Key
	alg    jwa.SignatureAlgorithm
	signer crypto.Signer
	public crypto.PublicKey
	jwk    jwk.Key // public, with kid, alg and use
	signed *signedCount
}

// signedCount counts the tokens one key signed. It is carried from one
// keyset state to the next while the kid stays in the keyset, and dropped
// with the kid, so the counts are bounded by the keyset.
type signedCount struct{ access, id atomic.Uint64 }

// KeyCount is how many tokens one key of the current keyset signed since
// the process started.
type KeyCount struct {
	KeyID  string
	Access uint64
	ID     uint64
}

// jwksDoc is an encoded JWKS and the kids it was encoded from.
type jwksDoc struct {
	kids string
	body []byte
	etag string
}

// NewManager validates cfg, filling defaults. The Manager is not Ready
// until SetKeyset loads a keyset with a signing key.
func NewManager(cfg Config) (*Manager, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: c}, nil
}

// SetKeyset parses ks into ready-to-use keys and makes it current. On error
// the previous keyset stays in use.
func (m *Manager) SetKeyset(ks keyset.Keyset) error {
	st := &state{ks: ks, keys: make(map[string]*entry, len(ks.Keys))}
	prev := m.state.Load()
	for _, k := range ks.Keys {
		if !slices.Contains(m.cfg.Algorithms, string(k.Algorithm)) {
			return fmt.Errorf("set keyset: key %s uses %s, which is not among the allowed algorithms", k.ID, k.Algorithm)
		}
		alg, ok := jwa.LookupSignatureAlgorithm(string(k.Algorithm))
		if !ok {
			return fmt.Errorf("set keyset: key %s: unknown algorithm %s", k.ID, k.Algorithm)
		}
		signer, err := k.Signer()
		if err != nil {
			return fmt.Errorf("set keyset: %w", err)
		}
		pub, err := jwk.Import(signer.Public())
		if err != nil {
			return fmt.Errorf("set keyset: key %s: %w", k.ID, err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: k.ID, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: jwk.ForSignature} {
			if err := pub.Set(name, v); err != nil {
				return fmt.Errorf("set keyset: key %s: %w", k.ID, err)
			}
		}
		if _, dup := st.keys[k.ID]; dup {
			return fmt.Errorf("set keyset: duplicate kid %s", k.ID)
		}
		e := &entry{key: k, alg: alg, signer: signer, public: signer.Public(), jwk: pub, signed: &signedCount{}}
		if prev != nil && prev.keys[k.ID] != nil {
			e.signed = prev.keys[k.ID].signed
		}
		st.keys[k.ID] = e
	}
	m.state.Store(st)
	return nil
}

// Ready reports whether a keyset is loaded and one of its keys signs now.
func (m *Manager) Ready() bool {
	_, err := m.signingKey(m.cfg.Now())
	return err == nil
}

// ActiveKeyID returns the kid of the key that signs now, or "".
func (m *Manager) ActiveKeyID() string {
	e, err := m.signingKey(m.cfg.Now())
	if err != nil {
		return ""
	}
	return e.key.ID
}

// SignedByKey returns the tokens signed by each key of the current keyset,
// in the keyset's order. A kid that left the keyset is forgotten.
func (m *Manager) SignedByKey() []KeyCount {
	st := m.state.Load()
	if st == nil {
		return nil
	}
	out := make([]KeyCount, 0, len(st.ks.Keys))
	for _, k := range st.ks.Keys {
		c := st.keys[k.ID].signed
		out = append(out, KeyCount{KeyID: k.ID, Access: c.access.Load(), ID: c.id.Load()})
	}
	return out
}

// Algorithms returns the allowed algorithms, for discovery.
func (m *Manager) Algorithms() []string { return slices.Clone(m.cfg.Algorithms) }

// Issuer returns the configured issuer.
func (m *Manager) Issuer() string { return m.cfg.Issuer }

// Audience returns the audience of access tokens.
func (m *Manager) Audience() string { return m.cfg.Audience }

// JWKSMaxAge is how long clients may cache the JWKS (for Cache-Control).
func (m *Manager) JWKSMaxAge() time.Duration { return m.cfg.JWKSMaxAge }

func (m *Manager) signingKey(now time.Time) (*entry, error) {
	st := m.state.Load()
	if st == nil {
		return nil, ErrNoSigningKey
	}
	k, ok := keyset.Signing(st.ks, now)
	if !ok {
		return nil, ErrNoSigningKey
	}
	return st.keys[k.ID], nil
}

// JWKS returns the public keys published now, as a JSON Web Key Set, and a
// strong ETag (the quoted SHA-256 of the body). The body is encoded once
// per published set and reused until the set changes. Before a keyset is
// loaded it is an empty set.
func (m *Manager) JWKS() (body []byte, etag string) {
	st := m.state.Load()
	if st == nil {
		return encodeJWKS("", nil)
	}
	published := keyset.Published(st.ks, m.cfg.Now())
	ids := make([]string, len(published))
	for i, k := range published {
		ids[i] = k.ID
	}
	kids := strings.Join(ids, ",")
	if doc := st.jwks.Load(); doc != nil && doc.kids == kids {
		return doc.body, doc.etag
	}
	keys := make([]jwk.Key, len(published))
	for i, k := range published {
		keys[i] = st.keys[k.ID].jwk
	}
	body, etag = encodeJWKS(kids, keys)
	st.jwks.Store(&jwksDoc{kids: kids, body: body, etag: etag})
	return body, etag
}

func encodeJWKS(kids string, keys []jwk.Key) ([]byte, string) {
	if keys == nil {
		keys = []jwk.Key{}
	}
	body, err := json.Marshal(struct {
		Keys []jwk.Key `json:"keys"`
	}{keys})
	if err != nil {
		// Public keys built by SetKeyset always encode.
		panic(fmt.Sprintf("encode jwks %s: %v", kids, err))
	}
	sum := sha256.Sum256(body)
	return body, `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
}
