package accounts

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/randid"
	"github.com/ideapool/ideapool/internal/store"
)

// Client is an API client as its owner sees it: never with its secret.
type Client struct {
	ID        string          `json:"client_id"`
	Name      string          `json:"name"`
	Kind      string          `json:"kind"` // "secret" (HS256) or "key" (registered public key)
	Algorithm string          `json:"algorithm"`
	PublicJWK json.RawMessage `json:"jwk,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// Caller is who makes a request: the user and session of its access
// token, and the API client that started that session, if one did.
type Caller struct {
	UserID    string
	SessionID string
	ClientID  string
}

// mayManageClients is the rule for /api-clients: only a session started
// with the account's password may create, list or revoke its clients. A
// stolen client credential must not be able to mint a second client that
// outlives revoking the first.
func (c Caller) mayManageClients() error {
	if c.ClientID != "" {
		return apperr.New(apperr.Forbidden, "a session started by an API client cannot manage API clients; "+
			"sign in with the account's password to do that")
	}
	return nil
}

// CreateClient registers an API client of the caller's user. With a public
// JWK (RSA of at least 2048 bits, EC P-256 or Ed25519) the client signs its
// assertions with the matching private key and no secret exists; without
// one, a 256-bit secret for HS256 is returned, this once.
func (s *Service) CreateClient(ctx context.Context, caller Caller, name string, publicJWK json.RawMessage) (Client, string, error) {
	if err := caller.mayManageClients(); err != nil {
		return Client{}, "", err
	}
	userID := caller.UserID
	name = strings.TrimSpace(name)
	bad := map[string]string{}
	switch {
	case name == "":
		bad["name"] = "is required"
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > 100:
		bad["name"] = "must be at most 100 characters"
	}
	var pub []byte
	if len(publicJWK) > 0 && string(publicJWK) != "null" {
		k, err := parseClientKey(publicJWK)
		if err != nil {
			bad["jwk"] = err.Error()
		} else if pub, err = json.Marshal(k); err != nil {
			return Client{}, "", fmt.Errorf("encode client key: %w", err)
		}
	}
	if len(bad) > 0 {
		return Client{}, "", apperr.InvalidFields(bad)
	}
	id, err := randid.New(s.rand, 24)
	if err != nil {
		return Client{}, "", err
	}
	c := store.APIClient{ID: id, UserID: userID, Name: name, PublicJWK: pub, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	var secret string
	if pub == nil {
		if secret, err = randid.Secret(s.rand, 256); err != nil {
			return Client{}, "", err
		}
		c.Secret = []byte(secret)
	}
	if err := s.store.CreateAPIClient(ctx, c); err != nil {
		return Client{}, "", fmt.Errorf("create API client: %w", err)
	}
	s.audit(ctx, EventClientCreated, userID, id, slog.String("user_id", userID), slog.String("kind", clientView(c).Kind))
	return clientView(c), secret, nil
}

// Clients lists the live API clients of the caller's user, newest first.
func (s *Service) Clients(ctx context.Context, caller Caller) ([]Client, error) {
	if err := caller.mayManageClients(); err != nil {
		return nil, err
	}
	all, err := s.store.ListAPIClients(ctx, caller.UserID)
	if err != nil {
		return nil, fmt.Errorf("list API clients: %w", err)
	}
	out := []Client{}
	for _, c := range all {
		if c.RevokedAt == nil {
			out = append(out, clientView(c))
		}
	}
	return out, nil
}

// RevokeClient revokes one of the caller's user's clients and, in the same
// transaction, every session it started: once this returns, no refresh
// token of those sessions works and no new one can start, whatever was in
// flight.
func (s *Service) RevokeClient(ctx context.Context, caller Caller, id string) error {
	if err := caller.mayManageClients(); err != nil {
		return err
	}
	if !randid.Plausible(id) {
		return apperr.New(apperr.NotFound, "API client not found")
	}
	n, err := s.store.RevokeAPIClient(ctx, caller.UserID, id, s.now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "API client not found")
	}
	if err != nil {
		return fmt.Errorf("revoke API client: %w", err)
	}
	s.syncAfterRevoking(ctx, n)
	s.audit(ctx, EventClientRevoked, caller.UserID, id, slog.String("user_id", caller.UserID))
	s.auditRevoked(ctx, caller.UserID, caller.UserID, RevokedClientRevoked, n, slog.String("client_id", id))
	return nil
}

func clientView(c store.APIClient) Client {
	v := Client{ID: c.ID, Name: c.Name, CreatedAt: c.CreatedAt, Kind: "secret", Algorithm: "HS256"}
	if len(c.PublicJWK) > 0 {
		v.Kind, v.PublicJWK = "key", c.PublicJWK
		if k, err := jwk.ParseKey(c.PublicJWK); err == nil {
			if alg, err := clientAlgorithm(k); err == nil {
				v.Algorithm = alg.String()
			}
		}
	}
	return v
}

// parseClientKey accepts a public RSA (2048–8192 bits), EC P-256 or
// Ed25519 JWK and returns its public form with no optional members.
func parseClientKey(raw []byte) (jwk.Key, error) {
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, errors.New("must be a JWK object (RSA, EC P-256 or Ed25519 public key)")
	}
	if priv, err := jwk.IsPrivateKey(k); err == nil && priv {
		return nil, errors.New("must be the PUBLIC key only; never send a private key")
	}
	var rawKey any
	if err := jwk.Export(k, &rawKey); err != nil {
		return nil, errors.New("must be an RSA, EC P-256 or Ed25519 public key")
	}
	switch pk := rawKey.(type) {
	case *rsa.PublicKey:
		if bits := pk.N.BitLen(); bits < 2048 || bits > 8192 {
			return nil, errors.New("RSA keys must have 2048 to 8192 bits")
		}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return nil, errors.New("EC keys must be on P-256")
		}
	case ed25519.PublicKey:
	default:
		return nil, errors.New("must be an RSA, EC P-256 or Ed25519 public key")
	}
	return jwk.Import(rawKey)
}

// ClientAssertionAlgorithms are the algorithms a client JWT may be signed
// with: HS256 with a client secret, or the one algorithm of a registered
// key's type (clientAlgorithm).
var ClientAssertionAlgorithms = []string{"HS256", "RS256", "ES256", "EdDSA"}

// clientAlgorithm is the one algorithm accepted for a registered key.
func clientAlgorithm(k jwk.Key) (jwa.SignatureAlgorithm, error) {
	switch k.KeyType() {
	case jwa.RSA():
		return jwa.RS256(), nil
	case jwa.EC():
		return jwa.ES256(), nil
	case jwa.OKP():
		return jwa.EdDSA(), nil
	}
	return jwa.SignatureAlgorithm{}, fmt.Errorf("unsupported key type %s", k.KeyType())
}
