package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/ideapool/ideapool/internal/keyset"
)

// maxTokenSize bounds what VerifyAccess looks at.
const maxTokenSize = 8 << 10

// allowedHeaders are the only protected header members accepted: the ones
// we issue. In particular jwk, jku, x5u, x5c (keys named by the token
// itself) and crit are refused outright.
var allowedHeaders = []string{"alg", "kid", "typ"}

// refuse is a refusal of kind (ErrMalformed, ErrUnknownKey or
// ErrBadSignature) with a short reason for the log.
func refuse(kind error, format string, args ...any) error {
	return fmt.Errorf("verify access token: %w: %s", kind, fmt.Sprintf(format, args...))
}

func malformed(format string, args ...any) error { return refuse(ErrMalformed, format, args...) }

// VerifyAccess checks an access token and returns its claims. It accepts
// only tokens signed by a published key of the current keyset with that
// key's algorithm (which must be allowed), typ at+jwt, our issuer and
// audience, and unexpired (within the leeway). Every refusal wraps
// ErrInvalidToken and exactly one of ErrExpired, ErrUnknownKey,
// ErrBadSignature and ErrMalformed, also when it comes from the cache.
func (m *Manager) VerifyAccess(token string) (AccessClaims, error) {
	now := m.cfg.Now()
	st := m.state.Load()
	if st == nil || len(token) > maxTokenSize {
		c, _, err := m.verifyAccess(token, now, st)
		return c, err
	}
	sum := sha256.Sum256([]byte(token))
	if c, err, ok := st.recall(sum, now, m.cfg.Leeway); ok {
		return c, err
	}
	c, kid, err := m.verifyAccess(token, now, st)
	if err == nil {
		st.remember(sum, c, kid)
	}
	return c, err
}

// verifyAccess is VerifyAccess without the cache, against one keyset
// state; it also returns the kid of the key that verified the token.
func (m *Manager) verifyAccess(token string, now time.Time, st *state) (AccessClaims, string, error) {
	if len(token) > maxTokenSize {
		return AccessClaims{}, "", malformed("token larger than %d bytes", maxTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return AccessClaims{}, "", malformed("not a compact JWS")
	}
	if parts[2] == "" {
		return AccessClaims{}, "", malformed("empty signature")
	}
	// One token, one spelling: padding, the standard alphabet or unused
	// trailing bits would give a valid token other accepted forms, and defeat
	// anything that compares token strings (deny lists, replay caches).
	for i, name := range []string{"header", "payload", "signature"} {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(parts[i]); err != nil {
			return AccessClaims{}, "", malformed("%s is not canonical base64url", name)
		}
	}
	hdr, err := parseHeader(parts[0])
	if err != nil {
		return AccessClaims{}, "", malformed("header: %v", err)
	}
	if !strings.EqualFold(hdr.typ, TypeAccess) && !strings.EqualFold(hdr.typ, "application/"+TypeAccess) {
		return AccessClaims{}, "", malformed("typ %q is not %s", hdr.typ, TypeAccess)
	}
	if !slices.Contains(m.cfg.Algorithms, hdr.alg) {
		return AccessClaims{}, "", refuse(ErrBadSignature, "alg %q not allowed", hdr.alg)
	}
	if st == nil {
		return AccessClaims{}, "", refuse(ErrUnknownKey, "no keyset loaded")
	}
	e, ok := st.keys[hdr.kid]
	if !ok {
		return AccessClaims{}, "", refuse(ErrUnknownKey, "kid not in the keyset")
	}
	if !published(e.key, now) {
		return AccessClaims{}, "", refuse(ErrUnknownKey, "key %s is not published", e.key.ID)
	}
	if hdr.alg != e.alg.String() {
		return AccessClaims{}, "", refuse(ErrBadSignature, "alg %s does not match key %s", hdr.alg, e.key.ID)
	}
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKey(e.alg, e.public))
	if err != nil {
		return AccessClaims{}, "", refuse(ErrBadSignature, "signature does not verify")
	}
	c, err := m.accessClaims(payload, now)
	return c, e.key.ID, err
}

func published(k keyset.Key, now time.Time) bool {
	return !k.PublishedAt.After(now) && (k.RemoveAfter == nil || now.Before(*k.RemoveAfter))
}

type header struct{ alg, kid, typ string }

// parseHeader decodes a protected header strictly: an object of string
// members from allowedHeaders, each at most once (a duplicate could be read
// differently by another parser).
func parseHeader(b64 string) (header, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil {
		return header{}, err
	}
	members, err := decodeObject(raw)
	if err != nil {
		return header{}, err
	}
	var h header
	for name, v := range members {
		if !slices.Contains(allowedHeaders, name) {
			return header{}, fmt.Errorf("member %q not accepted", name)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return header{}, fmt.Errorf("member %q is not a string", name)
		}
		switch name {
		case "alg":
			h.alg = s
		case "kid":
			h.kid = s
		case "typ":
			h.typ = s
		}
	}
	return h, nil
}

// decodeObject decodes a JSON object into its members, refusing duplicate
// names and trailing data.
func decodeObject(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := t.(string)
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("trailing data")
	}
	return members, nil
}

// accessClaims validates the verified payload's claims.
func (m *Manager) accessClaims(payload []byte, now time.Time) (AccessClaims, error) {
	members, err := decodeObject(payload)
	if err != nil {
		return AccessClaims{}, malformed("claims: %v", err)
	}
	var c AccessClaims
	var iss string
	strs := map[string]*string{"iss": &iss, "sub": &c.Subject, "sid": &c.SessionID, "jti": &c.ID,
		"email": &c.Email, "name": &c.Name, "client_id": &c.ClientID, "preferred_username": &c.Username}
	for name, dst := range strs {
		if v, ok := members[name]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return AccessClaims{}, malformed("claim %s is not a string", name)
			}
		}
	}
	if v, ok := members["groups"]; ok {
		if err := json.Unmarshal(v, &c.Groups); err != nil {
			return AccessClaims{}, malformed("claim groups is not an array of strings")
		}
	}
	if iss != m.cfg.Issuer {
		return AccessClaims{}, malformed("issuer %q not accepted", iss)
	}
	aud, err := audience(members["aud"])
	if err != nil {
		return AccessClaims{}, malformed("claim aud: %v", err)
	}
	if !slices.Contains(aud, m.cfg.Audience) {
		return AccessClaims{}, malformed("audience not accepted")
	}
	if c.Subject == "" || c.SessionID == "" {
		return AccessClaims{}, malformed("sub and sid are required")
	}
	leeway := m.cfg.Leeway
	exp, ok, err := numericDate(members["exp"])
	if err != nil || !ok {
		return AccessClaims{}, malformed("exp missing or malformed")
	}
	iat, ok, err := numericDate(members["iat"])
	if err != nil || !ok {
		return AccessClaims{}, malformed("iat missing or malformed")
	}
	if iat.After(now.Add(leeway)) {
		return AccessClaims{}, malformed("issued in the future")
	}
	if nbf, ok, err := numericDate(members["nbf"]); err != nil {
		return AccessClaims{}, malformed("nbf malformed")
	} else if ok && nbf.After(now.Add(leeway)) {
		return AccessClaims{}, malformed("not valid yet")
	}
	if !now.Before(exp.Add(leeway)) {
		return AccessClaims{}, fmt.Errorf("verify access token: %w", ErrExpired)
	}
	c.IssuedAt, c.ExpiresAt = iat, exp
	return c, nil
}

// audience decodes aud, a string or an array of strings (RFC 7519 4.1.3).
func audience(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, fmt.Errorf("missing")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("not a string or array of strings")
	}
	return many, nil
}

// numericDate decodes a NumericDate (seconds since the epoch, possibly
// fractional). ok is false when the claim is absent.
func numericDate(raw json.RawMessage) (t time.Time, ok bool, err error) {
	if raw == nil {
		return time.Time{}, false, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, true, err
	}
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, true, fmt.Errorf("out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}
