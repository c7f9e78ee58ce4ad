package e2e_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// verifier is what another service would hold: the discovery document and a
// JWKS client pointed at its jwks_uri.
type verifier struct {
	discovery map[string]any
	jwksURI   string
	kf        keyfunc.Keyfunc
}

// jwks returns the server's verifier, made once from the discovery document.
func (s *server) jwks(t testing.TB) *verifier {
	t.Helper()
	s.jwksOnce.Do(func() {
		r := s.do(t, "GET", "/.well-known/openid-configuration", nil)
		if r.Status != http.StatusOK {
			s.jwksErr = fmt.Errorf("discovery document: %s", r)
			return
		}
		var d map[string]any
		if err := json.Unmarshal(r.Body, &d); err != nil {
			s.jwksErr = fmt.Errorf("discovery document is not JSON: %s", r)
			return
		}
		uri, _ := d["jwks_uri"].(string)
		if u, err := url.Parse(uri); err != nil || !u.IsAbs() || u.Host == "" {
			s.jwksErr = fmt.Errorf("discovery document: jwks_uri %q is not an absolute URL", uri)
			return
		}
		var kf keyfunc.Keyfunc
		var err error
		if s.client != nil { // https with the test's CA
			kf, err = keyfunc.NewDefaultOverrideCtx(s.jwksContext(), []string{uri}, keyfunc.Override{Client: s.client})
		} else {
			kf, err = keyfunc.NewDefaultCtx(s.jwksContext(), []string{uri})
		}
		if err != nil {
			s.jwksErr = fmt.Errorf("keyfunc on %s: %w", uri, err)
			return
		}
		s.verifier = &verifier{discovery: d, jwksURI: uri, kf: kf}
	})
	if s.jwksErr != nil {
		t.Fatalf("cannot verify tokens independently: %v", s.jwksErr)
	}
	return s.verifier
}

// jwkSet fetches the JWKS from the jwks_uri.
func (s *server) jwkSet(t testing.TB) (response, []map[string]any) {
	t.Helper()
	v := s.jwks(t)
	r := s.doURL(t, "GET", v.jwksURI, nil, true)
	must(t, r, http.StatusOK)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("%s: want a JWK set with at least one key (%v)", r, err)
	}
	return r, set.Keys
}

func (s *server) alg() string {
	if s.Alg == "" {
		return "RS256"
	}
	return s.Alg
}

func (s *server) ttl() time.Duration {
	if s.TTL == 0 {
		return 10 * time.Minute
	}
	return s.TTL
}

// verify checks an access token the way another service would: signature
// through the JWKS of the discovery document, only the expected algorithm,
// issuer, expiry; then the header and claims the issue requires.
func (s *server) verify(t testing.TB, tok string) jwt.MapClaims {
	t.Helper()
	v := s.jwks(t)
	claims := jwt.MapClaims{}
	tk, err := s.parser().ParseWithClaims(tok, claims, v.kf.Keyfunc)
	if err != nil {
		t.Errorf("independent verification (golang-jwt + JWKS from %s) refuses the issued token: %v\ntoken: %s", v.jwksURI, err, tok)
		return nil
	}
	kid, _ := tk.Header["kid"].(string)
	if kid == "" {
		t.Errorf("token header %v: no kid", tk.Header)
	}
	if typ, _ := tk.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		t.Errorf("token header %v: typ = %q, want at+jwt (RFC 9068)", tk.Header, typ)
	}
	if a, _ := tk.Header["alg"].(string); a != s.alg() {
		t.Errorf("token header %v: alg = %q, want %s", tk.Header, a, s.alg())
	}
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "sid", "email", "name"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("token claims %v: no %q", claims, c)
		}
	}
	for _, c := range []string{"sub", "jti", "sid", "email", "name"} {
		if v, ok := claims[c].(string); !ok || v == "" {
			t.Errorf("token claims: %s = %#v, want a non-empty string", c, claims[c])
		}
	}
	if aud, err := claims.GetAudience(); err != nil || len(aud) == 0 || aud[0] == "" {
		t.Errorf("token claims: aud = %#v, want a non-empty audience", claims["aud"])
	}
	exp, err1 := claims.GetExpirationTime()
	iat, err2 := claims.GetIssuedAt()
	if err1 != nil || err2 != nil || exp == nil || iat == nil {
		t.Errorf("token claims: exp/iat not numeric dates: %v %v", claims["exp"], claims["iat"])
	} else {
		if d := exp.Sub(iat.Time); d != s.ttl() {
			t.Errorf("token claims: exp - iat = %v, want the access token TTL %v", d, s.ttl())
		}
		if d := time.Since(iat.Time); d < -5*time.Second || d > 60*time.Second {
			t.Errorf("token claims: iat %v is not near now", iat.Time)
		}
	}
	return claims
}

func (s *server) parser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{s.alg()}),
		jwt.WithIssuer(s.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
	)
}

// independentlyValid: does the independent verifier accept tok?
func (s *server) independentlyValid(t testing.TB, tok string) bool {
	t.Helper()
	_, err := s.parser().Parse(tok, s.jwks(t).kf.Keyfunc)
	return err == nil
}

// thumbprint is the RFC 7638 JWK thumbprint of a public JWK.
func thumbprint(t testing.TB, k map[string]any) string {
	t.Helper()
	str := func(name string) string {
		v, ok := k[name].(string)
		if !ok {
			t.Errorf("JWK %v: member %q missing", k, name)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	var canon string
	switch k["kty"] {
	case "RSA":
		canon = `{"e":` + str("e") + `,"kty":"RSA","n":` + str("n") + `}`
	case "EC":
		canon = `{"crv":` + str("crv") + `,"kty":"EC","x":` + str("x") + `,"y":` + str("y") + `}`
	case "OKP":
		canon = `{"crv":` + str("crv") + `,"kty":"OKP","x":` + str("x") + `}`
	default:
		t.Errorf("JWK %v: unexpected kty", k)
		return ""
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenParts splits a compact JWS and decodes its header and payload.
func tokenParts(t testing.TB, tok string) (header, payload map[string]any, parts []string) {
	t.Helper()
	parts = strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", tok)
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("token part %d is not base64url: %v", i, err)
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(dst); err != nil {
			t.Fatalf("token part %d is not JSON: %v", i, err)
		}
	}
	return header, payload, parts
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
