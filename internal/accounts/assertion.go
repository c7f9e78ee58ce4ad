package accounts

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/randid"
	"github.com/ideapool/ideapool/internal/store"
)

// AssertionReason says why a client assertion was refused.
type AssertionReason string

// The reasons, each mapped to its own code by the JSON-RPC dialect.
const (
	AssertionMalformed      AssertionReason = "malformed"         // not a compact JWS with a JSON claim set
	AssertionClaimMissing   AssertionReason = "claim_missing"     // a mandatory claim is absent (Claim names it)
	AssertionExpired        AssertionReason = "expired"           // exp has passed
	AssertionUnknownClient  AssertionReason = "unknown_client"    // no such client, or revoked
	AssertionBadSignature   AssertionReason = "bad_signature"     // signature, or an algorithm other than the client's
	AssertionWrongIssuer    AssertionReason = "wrong_issuer"      // iss or sub is not the client id
	AssertionWrongAudience  AssertionReason = "wrong_audience"    // aud does not name our issuer
	AssertionTooLong        AssertionReason = "lifetime_too_long" // exp - iat over 5 minutes
	AssertionIssuedInFuture AssertionReason = "issued_in_future"  // iat more than 60 s ahead
	AssertionReplayed       AssertionReason = "replayed"          // jti already used
	AssertionNotYetValid    AssertionReason = "not_yet_valid"     // nbf is ahead
	AssertionExpBeforeIat   AssertionReason = "exp_before_iat"    // exp is before iat
)

// AssertionError is a refused client assertion (RFC 7523).
type AssertionError struct {
	Reason AssertionReason
	Claim  string // for AssertionClaimMissing
	Detail string
}

func (e *AssertionError) Error() string {
	if e.Claim != "" {
		return fmt.Sprintf("client assertion refused: %s: %s", e.Reason, e.Claim)
	}
	return fmt.Sprintf("client assertion refused: %s: %s", e.Reason, e.Detail)
}

// Limits of client assertions.
const (
	MaxAssertionLifetime = 5 * time.Minute
	MaxAssertionFuture   = 60 * time.Second
	assertionLeeway      = 5 * time.Second
	maxAssertionSize     = 8 << 10
)

// replicaClockSkew is how far apart the clocks of two replicas may be, and
// more than a request takes from reading the time to writing with it.
const replicaClockSkew = time.Minute

// assertionAcceptedUntil is the first instant an assertion expiring at exp
// is refused.
func assertionAcceptedUntil(exp time.Time) time.Time { return exp.Add(assertionLeeway) }

// assertionRememberedUntil is until when the jti of an assertion expiring
// at exp is remembered (and after which the cleanup deletes it): for as
// long as the assertion is accepted, plus replicaClockSkew, so that no
// replica's cleanup forgets it, and no replay finds it forgotten, while any
// replica could still accept the assertion.
func assertionRememberedUntil(exp time.Time) time.Time {
	return assertionAcceptedUntil(exp).Add(replicaClockSkew)
}

func refuse(reason AssertionReason, detail string) error {
	ae := &AssertionError{Reason: reason, Detail: detail}
	if reason == AssertionClaimMissing {
		ae.Claim = detail
	}
	return &apperr.Error{Code: apperr.Unauthorized, Message: ae.Error(), Err: ae}
}

// AuthenticateClient checks a JWT that an API client signed for itself
// (RFC 7523 client authentication, with OpenID Connect's single-use jti) and
// starts a session for the client's owner. audience is our issuer.
func (s *Service) AuthenticateClient(ctx context.Context, clientID, assertion, audience string) (Grant, error) {
	if clientID == "" || assertion == "" || len(assertion) > maxAssertionSize {
		return Grant{}, refuse(AssertionMalformed, "expected Authorization: Bearer <client_id> <client JWT>")
	}
	if !randid.Plausible(clientID) {
		// No client has such an id; the database is not even asked (nor is
		// the id logged: it may be anything).
		return Grant{}, s.clientFailed(ctx, "", "", refuse(AssertionUnknownClient, "unknown client"))
	}
	c, err := s.store.APIClientByID(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, s.clientFailed(ctx, clientID, "", refuse(AssertionUnknownClient, "unknown client"))
	}
	if err != nil {
		return Grant{}, fmt.Errorf("authenticate client: %w", err)
	}
	if c.RevokedAt != nil {
		return Grant{}, s.clientFailed(ctx, clientID, c.UserID, refuse(AssertionUnknownClient, "client revoked"))
	}
	claims, err := checkAssertion(c, assertion, audience, s.now())
	if err != nil {
		return Grant{}, s.clientFailed(ctx, clientID, c.UserID, err)
	}
	// The jti is written with the time of the write, not of the check: an
	// assertion whose window closed while its signature was checked is
	// refused, and one still in it meets any earlier use of its jti.
	at := s.now()
	if !at.Before(assertionAcceptedUntil(claims.exp)) {
		return Grant{}, s.clientFailed(ctx, clientID, c.UserID, refuse(AssertionExpired, "exp has passed"))
	}
	switch err := s.store.UseClientAssertion(ctx, clientID, claims.jti, assertionRememberedUntil(claims.exp).UTC(), at.UTC()); {
	case errors.Is(err, store.ErrConflict):
		return Grant{}, s.clientFailed(ctx, clientID, c.UserID, refuse(AssertionReplayed, "jti already used"))
	case err != nil:
		return Grant{}, fmt.Errorf("record client assertion: %w", err)
	}
	u, err := s.store.UserByID(ctx, c.UserID)
	if err != nil {
		return Grant{}, fmt.Errorf("authenticate client: load owner: %w", err)
	}
	if u.DisabledAt != nil {
		return Grant{}, s.clientFailed(ctx, clientID, c.UserID, refuse(AssertionUnknownClient, "the client's owner is disabled"))
	}
	g, err := s.beginSession(ctx, u, clientID)
	if errors.Is(err, store.ErrRevoked) {
		// The client was revoked, or its owner disabled, while the
		// assertion was being checked.
		return Grant{}, s.clientFailed(ctx, clientID, c.UserID, refuse(AssertionUnknownClient, "client revoked or its owner disabled"))
	}
	if err != nil {
		return Grant{}, err
	}
	s.audit(ctx, EventLoginSucceeded, u.ID, u.ID, slog.String("sid", g.SessionID),
		slog.String("method", "client_assertion"), slog.String("client_id", clientID))
	return g, nil
}

// clientFailed counts and logs a refused client assertion and returns err.
func (s *Service) clientFailed(ctx context.Context, clientID, userID string, err error) error {
	s.obs.LoginFailed(DialectOf(ctx), ReasonClientAssertion)
	reason := AssertionMalformed
	var ae *AssertionError
	if errors.As(err, &ae) {
		reason = ae.Reason
	}
	s.audit(ctx, EventLoginFailed, "", userID, slog.String("method", "client_assertion"),
		slog.String("reason", string(reason)), slog.String("client_id", clientID))
	return err
}

// checkAssertion verifies the signature and the claims of an assertion.
func checkAssertion(c store.APIClient, assertion, audience string, now time.Time) (clientClaims, error) {
	payload, err := verifyAssertion(c, assertion)
	if err != nil {
		return clientClaims{}, err
	}
	claims, err := assertionClaims(payload)
	if err != nil {
		return clientClaims{}, err
	}
	return claims, claims.check(c.ID, audience, now)
}

// verifyAssertion checks the signature with the client's own key and its
// one algorithm; key-carrying headers (jwk, jku, x5u, x5c) are refused.
func verifyAssertion(c store.APIClient, assertion string) ([]byte, error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 || parts[2] == "" {
		return nil, refuse(AssertionMalformed, "not a compact JWS")
	}
	hdrJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, refuse(AssertionMalformed, "header is not base64url")
	}
	var hdr map[string]any
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return nil, refuse(AssertionMalformed, "header is not a JSON object")
	}
	for _, h := range []string{"jwk", "jku", "x5u", "x5c", "crit"} {
		if _, ok := hdr[h]; ok {
			return nil, refuse(AssertionBadSignature, "header member "+h+" is not accepted")
		}
	}
	alg, key, err := clientVerifier(c)
	if err != nil {
		return nil, err
	}
	if got, _ := hdr["alg"].(string); got != alg.String() {
		return nil, refuse(AssertionBadSignature, fmt.Sprintf("this client signs with %s", alg))
	}
	payload, err := jws.Verify([]byte(assertion), jws.WithCompact(), jws.WithKey(alg, key))
	if err != nil {
		return nil, refuse(AssertionBadSignature, "signature does not verify")
	}
	return payload, nil
}

func clientVerifier(c store.APIClient) (jwa.SignatureAlgorithm, any, error) {
	if len(c.PublicJWK) == 0 {
		return jwa.HS256(), c.Secret, nil
	}
	k, err := jwk.ParseKey(c.PublicJWK)
	if err != nil {
		return jwa.SignatureAlgorithm{}, nil, fmt.Errorf("stored key of client %s: %w", c.ID, err)
	}
	alg, err := clientAlgorithm(k)
	if err != nil {
		return jwa.SignatureAlgorithm{}, nil, fmt.Errorf("stored key of client %s: %w", c.ID, err)
	}
	return alg, k, nil
}

type clientClaims struct {
	iss, sub, jti string
	aud           []string
	exp, iat      time.Time
	nbf           *time.Time // optional
}

// assertionClaims decodes the claim set; every mandatory claim must be
// present with the right type.
func assertionClaims(payload []byte) (clientClaims, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return clientClaims{}, refuse(AssertionMalformed, "claims are not a JSON object")
	}
	var c clientClaims
	for _, name := range []string{"iss", "sub", "aud", "exp", "iat", "jti"} {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return clientClaims{}, refuse(AssertionClaimMissing, name)
		}
	}
	str := func(name string, dst *string) error {
		if json.Unmarshal(raw[name], dst) != nil || *dst == "" {
			return refuse(AssertionMalformed, name+" must be a non-empty string")
		}
		return nil
	}
	num := func(name string, dst *time.Time) error {
		var f float64
		if json.Unmarshal(raw[name], &f) != nil || math.IsNaN(f) || f < 0 || f > 1e12 {
			return refuse(AssertionMalformed, name+" must be a NumericDate")
		}
		*dst = time.Unix(int64(f), 0)
		return nil
	}
	for _, err := range []error{str("iss", &c.iss), str("sub", &c.sub), str("jti", &c.jti), num("exp", &c.exp), num("iat", &c.iat)} {
		if err != nil {
			return clientClaims{}, err
		}
	}
	if v, ok := raw["nbf"]; ok && string(v) != "null" {
		var nbf time.Time
		if err := num("nbf", &nbf); err != nil {
			return clientClaims{}, err
		}
		c.nbf = &nbf
	}
	var one string
	if json.Unmarshal(raw["aud"], &one) == nil {
		c.aud = []string{one}
	} else if json.Unmarshal(raw["aud"], &c.aud) != nil {
		return clientClaims{}, refuse(AssertionMalformed, "aud must be a string or an array of strings")
	}
	return c, nil
}

// check applies RFC 7523 section 3 to the claims, allowing assertionLeeway
// of clock difference on exp and nbf.
func (c clientClaims) check(clientID, audience string, now time.Time) error {
	switch {
	case !now.Before(assertionAcceptedUntil(c.exp)):
		return refuse(AssertionExpired, "exp has passed")
	case c.nbf != nil && c.nbf.After(now.Add(assertionLeeway)):
		return refuse(AssertionNotYetValid, "nbf is in the future")
	case c.exp.Before(c.iat):
		return refuse(AssertionExpBeforeIat, "exp is before iat")
	case c.iss != clientID || c.sub != clientID:
		return refuse(AssertionWrongIssuer, "iss and sub must both be the client id")
	case !slices.Contains(c.aud, audience):
		return refuse(AssertionWrongAudience, "aud must be "+audience)
	case c.iat.After(now.Add(MaxAssertionFuture)):
		return refuse(AssertionIssuedInFuture, "iat is more than 60 s in the future")
	case c.exp.Sub(c.iat) > MaxAssertionLifetime:
		return refuse(AssertionTooLong, "exp - iat is over 5 minutes")
	}
	return nil
}
