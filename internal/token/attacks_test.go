package token_test

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/token"
)

// TestVerifyAccessAttacks adds to TestVerifyAccessRefuses the attacks of
// issue 7 it lacks: duplicate claims, injected kids, alg none in more
// letter cases, headers naming keys together with our real signature,
// opaque refresh tokens and non-canonical encodings of a valid token. Every
// token here is signed with a key of the keyset unless said otherwise, so
// only the rule under test refuses it.
func TestVerifyAccessAttacks(t *testing.T) {
	clk := newClock(t0)
	f := newFixture(t)
	m := newManager(t, clk, f.ks)
	rsPriv := signers()[keyset.RS256][0].(*rsa.PrivateKey)
	edPriv := signers()[keyset.EdDSA][0].(ed25519.PrivateKey)
	edSign := func(in []byte) []byte { return ed25519.Sign(edPriv, in) }
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	edHeader := `{"alg":"EdDSA","kid":"` + f.ed.ID + `","typ":"at+jwt"}`
	claims := js(validClaims())
	// dup appends a second member to the claims: last-wins parsers read it.
	dup := func(name string, v any) string {
		return strings.TrimSuffix(claims, "}") + "," + js(name) + ":" + js(v) + "}"
	}
	good, _, err := m.SignAccess(token.AccessClaims{Subject: "user-1", SessionID: "s"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")

	cases := map[string]struct {
		token  string
		reason string // substring of the refusal
	}{
		"control would pass": {token: assemble(edHeader, claims, edSign)},

		"duplicate sub":             {token: assemble(edHeader, dup("sub", "admin"), edSign), reason: "duplicate member"},
		"duplicate sid":             {token: assemble(edHeader, dup("sid", "other-session"), edSign), reason: "duplicate member"},
		"duplicate exp":             {token: assemble(edHeader, dup("exp", t0.Add(1000*time.Hour).Unix()), edSign), reason: "duplicate member"},
		"duplicate iss":             {token: assemble(edHeader, dup("iss", "https://evil.example.test"), edSign), reason: "duplicate member"},
		"duplicate aud":             {token: assemble(edHeader, dup("aud", "https://evil.example.test"), edSign), reason: "duplicate member"},
		"duplicate typ header":      {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","typ":"JWT"}`, claims, edSign), reason: "duplicate member"},
		"duplicate kid header":      {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","kid":"x"}`, claims, edSign), reason: "duplicate member"},
		"claims with trailing data": {token: assemble(edHeader, claims+`{"sub":"admin"}`, edSign), reason: "trailing"},
		"claims an array":           {token: assemble(edHeader, `[`+claims+`]`, edSign), reason: "not a JSON object"},

		"kid path traversal":       {token: assemble(`{"alg":"EdDSA","kid":"../../../../etc/passwd","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid /dev/null":            {token: assemble(`{"alg":"EdDSA","kid":"/dev/null","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid SQL injection":        {token: assemble(`{"alg":"EdDSA","kid":"x' OR '1'='1","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid SQL injection suffix": {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`'--","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid with a NUL":           {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`\u0000","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid empty":                {token: assemble(`{"alg":"EdDSA","kid":"","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid a number":             {token: assemble(`{"alg":"EdDSA","kid":1,"typ":"at+jwt"}`, claims, edSign), reason: "not a string"},
		"kid an object":            {token: assemble(`{"alg":"EdDSA","kid":{"$ne":""},"typ":"at+jwt"}`, claims, edSign), reason: "not a string"},
		"kid null":                 {token: assemble(`{"alg":"EdDSA","kid":null,"typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},
		"kid of another case":      {token: assemble(`{"alg":"EdDSA","kid":"`+strings.ToUpper(f.ed.ID)+`","typ":"at+jwt"}`, claims, edSign), reason: "unknown kid"},

		"alg None":                 {token: assemble(`{"alg":"None","kid":"`+f.ed.ID+`","typ":"at+jwt"}`, claims, edSign), reason: "not allowed"},
		"alg NoNe":                 {token: assemble(`{"alg":"NoNe","kid":"`+f.ed.ID+`","typ":"at+jwt"}`, claims, edSign), reason: "not allowed"},
		"alg none, no kid":         {token: assemble(`{"alg":"none","typ":"at+jwt"}`, claims, nil), reason: "empty signature"},
		"alg none, real signature": {token: `eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.` + parts[1] + "." + parts[2], reason: "not allowed"},
		"alg eddsa (lower case)":   {token: assemble(`{"alg":"eddsa","kid":"`+f.ed.ID+`","typ":"at+jwt"}`, claims, edSign), reason: "not allowed"},
		"alg HS256 keyed with the public key bytes": {reason: "not allowed",
			token: signRaw(t, jwa.HS256(), []byte(edPriv.Public().(ed25519.PublicKey)), map[string]any{"kid": f.ed.ID, "typ": "at+jwt"}, validClaims())},

		"jwk header with our own key":   {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","jwk":{"kty":"OKP","crv":"Ed25519","x":"AA"}}`, claims, edSign), reason: `"jwk" not accepted`},
		"jku header, real signature":    {token: signRaw(t, jwa.RS256(), rsPriv, map[string]any{"kid": f.rs.ID, "typ": "at+jwt", "jku": "file:///etc/passwd"}, validClaims()), reason: `"jku" not accepted`},
		"x5u header, real signature":    {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","x5u":"http://169.254.169.254/"}`, claims, edSign), reason: `"x5u" not accepted`},
		"x5t header":                    {token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","x5t":"AA"}`, claims, edSign), reason: `"x5t" not accepted`},
		"empty signature of a real one": {token: parts[0] + "." + parts[1] + ".", reason: "empty signature"},
		"exp missing":                   {token: assemble(edHeader, js(with(validClaims(), "exp", nil)), edSign), reason: "exp"},
		"exp null":                      {token: assemble(edHeader, strings.Replace(claims, `"exp":`, `"exp":null,"x":`, 1), edSign), reason: "exp"},
		"exp NaN-like huge":             {token: assemble(edHeader, js(with(validClaims(), "exp", 1e300)), edSign), reason: "exp"},
		"iss other":                     {token: assemble(edHeader, js(with(validClaims(), "iss", "https://evil.example.test")), edSign), reason: "issuer"},
		"iss with a trailing slash":     {token: assemble(edHeader, js(with(validClaims(), "iss", issuer+"/")), edSign), reason: "issuer"},
		"aud other":                     {token: assemble(edHeader, js(with(validClaims(), "aud", "https://evil.example.test")), edSign), reason: "audience"},
		"aud an empty array":            {token: assemble(edHeader, js(with(validClaims(), "aud", []string{})), edSign), reason: "audience"},

		"opaque refresh token":           {token: "rt_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", reason: "not a compact JWS"},
		"refresh token with two dots":    {token: "aaaa.bbbb.cccc", reason: "header"},
		"payload re-encoded with '='":    {token: parts[0] + "." + parts[1] + "=." + parts[2], reason: ""},
		"header re-encoded with padding": {token: parts[0] + "==." + parts[1] + "." + parts[2], reason: "header"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := m.VerifyAccess(tc.token)
			if name == "control would pass" {
				if err != nil {
					t.Fatalf("the control token (same header and claims, no attack) is refused, so the cases prove nothing: %v", err)
				}
				return
			}
			if !errors.Is(err, token.ErrInvalidToken) {
				t.Fatalf("VerifyAccess = %v, want ErrInvalidToken", err)
			}
			checkOneKind(t, err)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
		})
	}
}

// TestVerifyAccessCanonicalEncoding: a valid token is accepted in exactly
// one spelling. The signature segment re-encoded (standard-alphabet
// characters, different unused low bits in its last character) is a
// different string that another system (a deny list, a replay cache keyed
// by the token) would not recognise as the same token: RFC 7515 allows
// only unpadded base64url.
func TestVerifyAccessCanonicalEncoding(t *testing.T) {
	clk := newClock(t0)
	f := newFixture(t)
	m := newManager(t, clk, f.ks)
	toks := map[string]string{
		"RS256": signRaw(t, jwa.RS256(), signers()[keyset.RS256][0], map[string]any{"kid": f.rs.ID, "typ": "at+jwt"}, validClaims()),
		"ES256": signRaw(t, jwa.ES256(), signers()[keyset.ES256][0], map[string]any{"kid": f.es.ID, "typ": "at+jwt"}, validClaims()),
		"EdDSA": signRaw(t, jwa.EdDSA(), signers()[keyset.EdDSA][0], map[string]any{"kid": f.ed.ID, "typ": "at+jwt"}, validClaims()),
	}
	for alg, tok := range toks {
		if _, err := m.VerifyAccess(tok); err != nil {
			t.Fatalf("%s control: %v", alg, err)
		}
		p := strings.Split(tok, ".")
		variants := map[string]string{
			"last signature character +1":    lastCharPlus(p[2], 1),
			"last signature character +2":    lastCharPlus(p[2], 2),
			"signature with padding":         p[2] + strings.Repeat("=", (4-len(p[2])%4)%4),
			"signature in standard alphabet": strings.NewReplacer("-", "+", "_", "/").Replace(p[2]),
		}
		for name, sig := range variants {
			if sig == p[2] {
				continue // nothing to re-encode in this signature
			}
			t.Run(alg+" "+name, func(t *testing.T) {
				if _, err := m.VerifyAccess(p[0] + "." + p[1] + "." + sig); err == nil {
					t.Errorf("VerifyAccess accepts the valid token with its signature re-encoded (%s): one token, several accepted spellings", name)
				}
			})
		}
	}
}
