// Package keyset is the one model of ideapool's signing keys: the document
// that holds them, the policy that rotates them, and the pure decisions
// "which key signs now, which keys are published, what changes next and why".
//
// Nothing here reads a file, a clock or global randomness: every decision
// takes the keyset, the policy and now, so the standalone server and the
// Kubernetes operator reach the same answer from the same inputs.
//
// A key goes through three states on one timeline:
//
//	PublishedAt ──── ActiveAt ──── RetiredAt ──── RemoveAfter
//	    │   Next        │  Active     │  Retired       │ gone from the JWKS
//
// Keys are ordered by ActiveAt. When a key is scheduled after another, the
// earlier one's RetiredAt is set to the later one's ActiveAt at that moment,
// so every replica switches signing keys from its own clock without a write.
package keyset

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Algorithm is a JWS signature algorithm a key is used with.
type Algorithm string

// The supported algorithms.
const (
	RS256 Algorithm = "RS256"
	ES256 Algorithm = "ES256"
	EdDSA Algorithm = "EdDSA"
)

// Algorithms lists the supported algorithms.
func Algorithms() []Algorithm { return []Algorithm{RS256, ES256, EdDSA} }

// Valid reports whether a is a supported algorithm.
func (a Algorithm) Valid() bool { return a == RS256 || a == ES256 || a == EdDSA }

// ErrInvalid is wrapped by every error Parse returns for a malformed or
// inconsistent keyset.
var ErrInvalid = errors.New("invalid keyset")

// ErrUnknownKey means the named kid is not in the keyset.
var ErrUnknownKey = errors.New("unknown key")

// maxDocumentSize bounds what Parse accepts; a keyset is a handful of keys.
const maxDocumentSize = 1 << 20

// maxKeys bounds the number of keys in a keyset.
const maxKeys = 64

// Keyset is the stored document: every key that is, was or will be used to
// sign, with its schedule.
type Keyset struct {
	// Keys in the order of their ActiveAt (Advance keeps them sorted).
	Keys []Key `json:"keys"`
}

// Key is one signing key and its schedule.
type Key struct {
	// ID is the kid: the RFC 7638 SHA-256 thumbprint of the public key,
	// base64url without padding.
	ID string `json:"kid"`
	// Algorithm is the only algorithm this key signs with.
	Algorithm Algorithm `json:"alg"`
	// Private is the private key as a JWK JSON object. Never log it.
	Private json.RawMessage `json:"private"`
	// CreatedAt is when the key was generated.
	CreatedAt time.Time `json:"created_at"`
	// PublishedAt is when the key entered the JWKS.
	PublishedAt time.Time `json:"published_at"`
	// ActiveAt is when the key starts (or started) signing.
	ActiveAt time.Time `json:"active_at"`
	// RetiredAt is when the key stops (or stopped) signing: the next key's
	// ActiveAt. Nil while no later key is scheduled.
	// +optional
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	// RemoveAfter is when the key may leave the JWKS: RetiredAt plus the
	// longest token lifetime plus clock skew. Set together with RetiredAt.
	// +optional
	RemoveAfter *time.Time `json:"remove_after,omitempty"`
}

// Parse decodes and strictly validates a keyset document: known fields only,
// a supported algorithm per key, a kid equal to the key's thumbprint, a
// private key of the type the algorithm needs, no duplicate kid or ActiveAt,
// and ordered times.
func Parse(data []byte) (Keyset, error) {
	if len(data) > maxDocumentSize {
		return Keyset{}, fmt.Errorf("%w: document larger than %d bytes", ErrInvalid, maxDocumentSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ks Keyset
	if err := dec.Decode(&ks); err != nil {
		return Keyset{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return Keyset{}, fmt.Errorf("%w: trailing data after document", ErrInvalid)
	}
	if err := ks.Validate(); err != nil {
		return Keyset{}, err
	}
	return ks, nil
}

// Marshal validates ks and encodes it as indented JSON, so an invalid keyset
// is never written.
func Marshal(ks Keyset) ([]byte, error) {
	if err := ks.Validate(); err != nil {
		return nil, err
	}
	if ks.Keys == nil {
		ks.Keys = []Key{}
	}
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal keyset: %w", err)
	}
	return append(b, '\n'), nil
}

// Validate checks what Parse checks, on a keyset built in memory.
func (ks Keyset) Validate() error {
	if err := ks.validateSchedule(); err != nil {
		return err
	}
	for i, k := range ks.Keys {
		p, err := parsePrivate(k.Private, k.Algorithm)
		if err != nil {
			return fmt.Errorf("%w: key %d: %w", ErrInvalid, i, err)
		}
		if k.ID != p.kid {
			return fmt.Errorf("%w: key %d: kid %q does not match the key's thumbprint", ErrInvalid, i, k.ID)
		}
	}
	return nil
}

func (k Key) validateTimes() error {
	if k.CreatedAt.IsZero() || k.PublishedAt.IsZero() || k.ActiveAt.IsZero() {
		return errors.New("created_at, published_at and active_at are required")
	}
	if k.PublishedAt.Before(k.CreatedAt) {
		return errors.New("published_at is before created_at")
	}
	if k.ActiveAt.Before(k.PublishedAt) {
		return errors.New("active_at is before published_at")
	}
	if (k.RetiredAt == nil) != (k.RemoveAfter == nil) {
		return errors.New("retired_at and remove_after must be set together")
	}
	if k.RetiredAt != nil {
		if !k.RetiredAt.After(k.ActiveAt) {
			return errors.New("retired_at is not after active_at")
		}
		if k.RemoveAfter.Before(*k.RetiredAt) {
			return errors.New("remove_after is before retired_at")
		}
	}
	return nil
}

// Signer parses the key's private JWK into a crypto.Signer
// (*rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey).
func (k Key) Signer() (crypto.Signer, error) {
	p, err := parsePrivate(k.Private, k.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.ID, err)
	}
	return p.signer, nil
}

type parsedKey struct {
	signer crypto.Signer
	kid    string
}

// privateMembers lists the JWK members a private key document may hold,
// by key type. Anything else (x5c, jku, use, key_ops...) is refused: the
// document holds key material, not metadata.
var privateMembers = map[string]map[string]bool{
	"RSA": {"kty": true, "n": true, "e": true, "d": true, "p": true, "q": true, "dp": true, "dq": true, "qi": true, "kid": true, "alg": true},
	"EC":  {"kty": true, "crv": true, "x": true, "y": true, "d": true, "kid": true, "alg": true},
	"OKP": {"kty": true, "crv": true, "x": true, "d": true, "kid": true, "alg": true},
}

func parsePrivate(raw json.RawMessage, alg Algorithm) (parsedKey, error) {
	if len(raw) == 0 {
		return parsedKey{}, errors.New("private key missing")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return parsedKey{}, fmt.Errorf("private key: %w", err)
	}
	var kty string
	if err := json.Unmarshal(members["kty"], &kty); err != nil {
		return parsedKey{}, errors.New("private key: kty missing or not a string")
	}
	if want := ktyFor(alg); kty != want {
		return parsedKey{}, fmt.Errorf("private key: kty %q does not fit alg %s", kty, alg)
	}
	for name := range members {
		if !privateMembers[kty][name] {
			return parsedKey{}, fmt.Errorf("private key: unexpected member %q", name)
		}
	}
	if _, ok := members["d"]; !ok {
		return parsedKey{}, errors.New("private key: not a private key")
	}
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return parsedKey{}, fmt.Errorf("private key: %w", err)
	}
	if err := key.Validate(); err != nil {
		return parsedKey{}, fmt.Errorf("private key: %w", err)
	}
	if a, ok := key.Algorithm(); ok && a.String() != string(alg) {
		return parsedKey{}, fmt.Errorf("private key: alg member %q does not match %s", a, alg)
	}
	var rawKey any
	if err := jwk.Export(key, &rawKey); err != nil {
		return parsedKey{}, fmt.Errorf("private key: %w", err)
	}
	signer, err := checkSigner(rawKey, alg)
	if err != nil {
		return parsedKey{}, fmt.Errorf("private key: %w", err)
	}
	kid, err := Thumbprint(signer.Public())
	if err != nil {
		return parsedKey{}, err
	}
	if v, ok := key.KeyID(); ok && v != kid {
		return parsedKey{}, fmt.Errorf("private key: kid member %q does not match the thumbprint", v)
	}
	return parsedKey{signer: signer, kid: kid}, nil
}

func ktyFor(alg Algorithm) string {
	switch alg {
	case RS256:
		return "RSA"
	case ES256:
		return "EC"
	case EdDSA:
		return "OKP"
	}
	return ""
}

// checkSigner verifies that a decoded private key is the type alg needs and
// is internally consistent (its public half belongs to its private half).
func checkSigner(rawKey any, alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case RS256:
		k, ok := rawKey.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%T is not an RSA private key", rawKey)
		}
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return nil, fmt.Errorf("RSA key of %d bits, want 2048 to 8192", bits)
		}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		// Keys decoded from a JWK may lack the CRT values that make
		// signing fast.
		k.Precompute()
		return k, nil
	case ES256:
		k, ok := rawKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%T is not an ECDSA private key", rawKey)
		}
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA key is not on P-256")
		}
		priv, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		pub, err := k.PublicKey.ECDH()
		if err != nil {
			return nil, err
		}
		if !priv.PublicKey().Equal(pub) {
			return nil, errors.New("ECDSA public key does not match the private key")
		}
		return k, nil
	case EdDSA:
		k, ok := rawKey.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%T is not an Ed25519 private key", rawKey)
		}
		if len(k) != ed25519.PrivateKeySize || !ed25519.NewKeyFromSeed(k.Seed()).Equal(k) {
			return nil, errors.New("Ed25519 public key does not match the private key")
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported alg %q", alg)
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a public key,
// base64url without padding: the kid of every key in a keyset.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.Import(pub)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// NewKey wraps a freshly generated private key into a Key with the given
// schedule. The kid is computed from the key.
func NewKey(signer crypto.Signer, alg Algorithm, created, published, active time.Time) (Key, error) {
	if _, err := checkSigner(signer, alg); err != nil {
		return Key{}, fmt.Errorf("new key: %w", err)
	}
	k, err := jwk.Import(signer)
	if err != nil {
		return Key{}, fmt.Errorf("new key: %w", err)
	}
	priv, err := json.Marshal(k)
	if err != nil {
		return Key{}, fmt.Errorf("new key: %w", err)
	}
	kid, err := Thumbprint(signer.Public())
	if err != nil {
		return Key{}, err
	}
	return Key{
		ID:          kid,
		Algorithm:   alg,
		Private:     priv,
		CreatedAt:   created,
		PublishedAt: published,
		ActiveAt:    active,
	}, nil
}
