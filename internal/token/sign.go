package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// Token types (the JWS typ header). Access and ID tokens carry different
// types so one can never be accepted as the other (RFC 8725 section 3.12).
const (
	TypeAccess = "at+jwt"
	TypeID     = "JWT"
)

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	// Subject is the user id (sub). Required.
	Subject string
	// SessionID is the login session (sid). Required.
	SessionID string
	// Email and Name are informational and may be empty.
	Email string
	Name  string
	// Username (preferred_username) and Groups (groups) say who the
	// subject is to a resource server's RBAC; omitted when empty.
	Username string
	Groups   []string
	// ClientID is the API client whose session the token belongs to
	// (client_id, RFC 9068); omitted when the session was started with the
	// user's password.
	ClientID string
	// ID is the jti; SignAccess sets it.
	ID string
	// IssuedAt and ExpiresAt are set by SignAccess (whole seconds).
	IssuedAt  time.Time
	ExpiresAt time.Time
}

type accessPayload struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	SessionID string   `json:"sid"`
	ClientID  string   `json:"client_id,omitempty"`
	Email     string   `json:"email,omitempty"`
	Name      string   `json:"name,omitempty"`
	Username  string   `json:"preferred_username,omitempty"`
	Groups    []string `json:"groups,omitempty"`
}

// IDClaims are the claims of an OpenID Connect ID token.
type IDClaims struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	// Username (preferred_username) and Groups (groups), as in
	// AccessClaims.
	Username string
	Groups   []string
	// AuthTime is when the user authenticated; omitted when zero.
	AuthTime time.Time
	// ClientID is the API client that started the session (client_id), as
	// in AccessClaims; omitted for a session started with a password.
	ClientID string
	// Nonce echoes the authentication request's nonce; omitted when empty.
	Nonce string
}

type idPayload struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      string   `json:"aud"`
	ExpiresAt     int64    `json:"exp"`
	IssuedAt      int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	ClientID      string   `json:"client_id,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	Username      string   `json:"preferred_username,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

// SignAccess signs an access token for c that lives ttl, with the key that
// signs now. It returns the token and the claims as issued (jti, iat, exp
// filled in). exp is capped so the token never outlives its key's place in
// the JWKS.
func (m *Manager) SignAccess(c AccessClaims, ttl time.Duration) (string, AccessClaims, error) {
	if c.Subject == "" || c.SessionID == "" {
		return "", AccessClaims{}, errors.New("sign access token: subject and session id are required")
	}
	now := m.cfg.Now()
	e, err := m.signingKey(now)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("sign access token: %w", err)
	}
	iat, exp, err := lifetime(e, now, ttl)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("sign access token: %w", err)
	}
	jti, err := newID(m.cfg.Rand)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("sign access token: %w", err)
	}
	c.ID, c.IssuedAt, c.ExpiresAt = jti, iat, exp
	tok, err := m.sign(e, TypeAccess, accessPayload{
		Issuer: m.cfg.Issuer, Subject: c.Subject, Audience: m.cfg.Audience,
		ExpiresAt: exp.Unix(), IssuedAt: iat.Unix(), ID: jti, SessionID: c.SessionID,
		ClientID: c.ClientID, Email: c.Email, Name: c.Name, Username: c.Username, Groups: c.Groups,
	})
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("sign access token: %w", err)
	}
	e.signed.access.Add(1)
	return tok, c, nil
}

// SignID signs an ID token for c addressed to audience (the client id)
// that lives ttl.
func (m *Manager) SignID(c IDClaims, audience string, ttl time.Duration) (string, error) {
	if c.Subject == "" || audience == "" {
		return "", errors.New("sign id token: subject and audience are required")
	}
	now := m.cfg.Now()
	e, err := m.signingKey(now)
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	iat, exp, err := lifetime(e, now, ttl)
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	p := idPayload{
		Issuer: m.cfg.Issuer, Subject: c.Subject, Audience: audience,
		ExpiresAt: exp.Unix(), IssuedAt: iat.Unix(), Nonce: c.Nonce, ClientID: c.ClientID, Email: c.Email, Name: c.Name,
		Username: c.Username, Groups: c.Groups,
	}
	if !c.AuthTime.IsZero() {
		p.AuthTime = c.AuthTime.Unix()
	}
	if c.Email != "" {
		p.EmailVerified = &c.EmailVerified
	}
	tok, err := m.sign(e, TypeID, p)
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	e.signed.id.Add(1)
	return tok, nil
}

// lifetime returns iat and exp in whole seconds, exp capped at the key's
// RemoveAfter: a token must not outlive the key that verifies it.
func lifetime(e *entry, now time.Time, ttl time.Duration) (iat, exp time.Time, err error) {
	if ttl <= 0 {
		return iat, exp, fmt.Errorf("ttl %s is not positive", ttl)
	}
	iat = now.Truncate(time.Second)
	exp = now.Add(ttl).Truncate(time.Second)
	if ra := e.key.RemoveAfter; ra != nil && exp.After(*ra) {
		exp = ra.Truncate(time.Second)
	}
	if !exp.After(iat) {
		return iat, exp, fmt.Errorf("key %s leaves the JWKS before the token could expire", e.key.ID)
	}
	return iat, exp, nil
}

func (m *Manager) sign(e *entry, typ string, payload any) (string, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, e.key.ID); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return "", err
	}
	tok, err := jws.Sign(body, jws.WithKey(e.alg, e.signer, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(tok), nil
}

// newID returns 128 random bits, base64url.
func newID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("read random jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
