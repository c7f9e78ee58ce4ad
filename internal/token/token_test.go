package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/token"
)

func TestNewManagerConfig(t *testing.T) {
	clk := newClock(t0)
	base := func() token.Config {
		return token.Config{Issuer: issuer, Now: clk.Now, Rand: rand.Reader}
	}
	cases := map[string]struct {
		edit    func(*token.Config)
		wantErr string // names the bad field; empty means valid
	}{
		"defaults":          {edit: func(*token.Config) {}},
		"no issuer":         {edit: func(c *token.Config) { c.Issuer = "" }, wantErr: "issuer"},
		"leeway too long":   {edit: func(c *token.Config) { c.Leeway = 6 * time.Second }, wantErr: "leeway"},
		"negative leeway":   {edit: func(c *token.Config) { c.Leeway = -time.Second }, wantErr: "leeway"},
		"unknown algorithm": {edit: func(c *token.Config) { c.Algorithms = []string{"HS256"} }, wantErr: "algorithms"},
		"alg none":          {edit: func(c *token.Config) { c.Algorithms = []string{"none"} }, wantErr: "algorithms"},
		"no clock":          {edit: func(c *token.Config) { c.Now = nil }, wantErr: "now"},
		"no rand":           {edit: func(c *token.Config) { c.Rand = nil }, wantErr: "rand"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			m, err := token.NewManager(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewManager = %v, want error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Issuer() != issuer || m.Audience() != issuer || m.JWKSMaxAge() != 5*time.Minute {
				t.Errorf("defaults: issuer %q audience %q max age %s", m.Issuer(), m.Audience(), m.JWKSMaxAge())
			}
			if got := strings.Join(m.Algorithms(), ","); got != "RS256,ES256,EdDSA" {
				t.Errorf("Algorithms = %s", got)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	clk := newClock(t0)
	m, err := token.NewManager(token.Config{Issuer: issuer, Now: clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if m.Ready() || m.ActiveKeyID() != "" {
		t.Error("Ready without a keyset")
	}
	if _, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute); !errors.Is(err, token.ErrNoSigningKey) {
		t.Errorf("SignAccess = %v, want ErrNoSigningKey", err)
	}
	if _, err := m.VerifyAccess("a.b.c"); !errors.Is(err, token.ErrInvalidToken) {
		t.Errorf("VerifyAccess = %v", err)
	}
	if body, _ := m.JWKS(); string(body) != `{"keys":[]}` {
		t.Errorf("JWKS = %s", body)
	}
	// A keyset whose only key signs later is loaded but not ready.
	f := newFixture(t)
	if err := m.SetKeyset(keyset.Keyset{Keys: []keyset.Key{f.ed}}); err != nil {
		t.Fatal(err)
	}
	if m.Ready() {
		t.Error("Ready with no key signing now")
	}
}

func TestSetKeysetRefusesDisallowedAlgorithm(t *testing.T) {
	clk := newClock(t0)
	f := newFixture(t)
	m, err := token.NewManager(token.Config{Issuer: issuer, Algorithms: []string{"ES256", "EdDSA"}, Now: clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetKeyset(f.ks); err == nil || !strings.Contains(err.Error(), "RS256") {
		t.Fatalf("SetKeyset with an RS256 key = %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, alg := range keyset.Algorithms() {
		t.Run(string(alg), func(t *testing.T) {
			clk := newClock(t0)
			k := key(t, alg, 1, t0.Add(-2*time.Hour), t0.Add(-time.Hour))
			m := newManager(t, clk, keyset.Keyset{Keys: []keyset.Key{k}})
			if !m.Ready() || m.ActiveKeyID() != k.ID {
				t.Fatalf("Ready %v, ActiveKeyID %q", m.Ready(), m.ActiveKeyID())
			}
			in := token.AccessClaims{Subject: "user-1", SessionID: "sess-1", Email: "a@example.test", Name: "Ada",
				Username: "ada", Groups: []string{"admin"}, ClientID: "client-1"}
			tok, issued, err := m.SignAccess(in, 15*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(issued.ID) < 22 || !issued.IssuedAt.Equal(t0) || !issued.ExpiresAt.Equal(t0.Add(15*time.Minute)) {
				t.Errorf("issued claims %+v", issued)
			}
			h := decodeSegment(t, tok, 0)
			if h["alg"] != string(alg) || h["kid"] != k.ID || h["typ"] != "at+jwt" || len(h) != 3 {
				t.Errorf("header = %v", h)
			}
			p := decodeSegment(t, tok, 1)
			for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "sid", "email", "name", "preferred_username", "groups", "client_id"} {
				if _, ok := p[claim]; !ok {
					t.Errorf("claim %s missing from %v", claim, p)
				}
			}
			if p["aud"] != audience || p["iss"] != issuer {
				t.Errorf("iss/aud = %v/%v", p["iss"], p["aud"])
			}
			got, err := m.VerifyAccess(tok)
			if err != nil {
				t.Fatalf("VerifyAccess: %v", err)
			}
			if !reflect.DeepEqual(got, issued) {
				t.Errorf("verified claims\n%+v\nwant\n%+v", got, issued)
			}
		})
	}
}

func TestJTIUnique(t *testing.T) {
	clk := newClock(t0)
	f := newFixture(t)
	m := newManager(t, clk, f.ks)
	seen := map[string]bool{}
	for range 100 {
		_, c, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("jti %s repeated", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestVerifyAccessRefuses(t *testing.T) {
	clk := newClock(t0)
	f := newFixture(t)
	m := newManager(t, clk, f.ks)
	rsPriv := signers()[keyset.RS256][0].(*rsa.PrivateKey)
	edPriv := signers()[keyset.EdDSA][0].(ed25519.PrivateKey)
	foreignES, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreignJWK, _ := jwk.Import(foreignES.Public())
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsPriv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubJWK, _ := jwk.Import(&rsPriv.PublicKey)
	pubJWKJSON, _ := json.Marshal(pubJWK)

	atHeader := func(kid string) map[string]any {
		return map[string]any{"kid": kid, "typ": "at+jwt"}
	}
	claimsJSON, _ := json.Marshal(validClaims())
	other := newManager(t, clk, f.ks, withIssuer("https://evil.example.test"))
	otherAud := newManager(t, clk, f.ks, withAudience("https://other.example.test"))
	idTok, err := m.SignID(token.IDClaims{Subject: "user-1"}, audience, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	otherIssTok, _, _ := other.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
	otherAudTok, _, _ := otherAud.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
	good, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	edSign := func(in []byte) []byte { return ed25519.Sign(edPriv, in) }

	cases := map[string]struct {
		token  string
		wantOK bool
		reason string // substring of the refusal
	}{
		"control: valid RS256 token": {token: good, wantOK: true},
		"control: retired but published ES256 key": {wantOK: true,
			token: signRaw(t, jwa.ES256(), signers()[keyset.ES256][0], atHeader(f.es.ID), validClaims())},
		"control: aud as an array": {wantOK: true,
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "aud", []string{"x", audience}))},
		"control: typ application/at+jwt": {wantOK: true,
			token: signRaw(t, jwa.RS256(), rsPriv, map[string]any{"kid": f.rs.ID, "typ": "application/at+jwt"}, validClaims())},

		"alg none":                {token: assemble(`{"alg":"none","kid":"`+f.rs.ID+`","typ":"at+jwt"}`, string(claimsJSON), nil), reason: "empty signature"},
		"alg none with signature": {token: assemble(`{"alg":"none","kid":"`+f.rs.ID+`","typ":"at+jwt"}`, string(claimsJSON), edSign), reason: `alg "none" not allowed`},
		"alg NONE":                {token: assemble(`{"alg":"NONE","kid":"`+f.rs.ID+`","typ":"at+jwt"}`, string(claimsJSON), edSign), reason: "not allowed"},
		"alg nOnE":                {token: assemble(`{"alg":"nOnE","kid":"`+f.rs.ID+`","typ":"at+jwt"}`, string(claimsJSON), edSign), reason: "not allowed"},
		"HS256 keyed with the RSA public key PEM": {reason: "not allowed",
			token: signRaw(t, jwa.HS256(), pubPEM, atHeader(f.rs.ID), validClaims())},
		"HS256 keyed with the RSA public JWK": {reason: "not allowed",
			token: signRaw(t, jwa.HS256(), pubJWKJSON, atHeader(f.rs.ID), validClaims())},
		"alg differs from the key's": {reason: "does not match key",
			token: signRaw(t, jwa.ES256(), foreignES, atHeader(f.rs.ID), validClaims())},
		"foreign key with our kid": {reason: "bad signature",
			token: signRaw(t, jwa.ES256(), foreignES, atHeader(f.es.ID), validClaims())},
		"foreign key with its own kid": {reason: "unknown kid",
			token: signRaw(t, jwa.ES256(), foreignES, atHeader("foreign"), validClaims())},
		"no kid": {reason: "unknown kid",
			token: signRaw(t, jwa.RS256(), rsPriv, map[string]any{"typ": "at+jwt"}, validClaims())},
		"embedded jwk header": {reason: `"jwk" not accepted`,
			token: signRaw(t, jwa.ES256(), foreignES, map[string]any{"typ": "at+jwt", "jwk": foreignJWK}, validClaims())},
		"jku header": {reason: `"jku" not accepted`,
			token: signRaw(t, jwa.RS256(), rsPriv, map[string]any{"kid": f.rs.ID, "typ": "at+jwt", "jku": "https://evil.example.test/jwks"}, validClaims())},
		"x5u header": {reason: `"x5u" not accepted`,
			token: signRaw(t, jwa.RS256(), rsPriv, map[string]any{"kid": f.rs.ID, "typ": "at+jwt", "x5u": "https://evil.example.test/cert"}, validClaims())},
		"x5c header": {reason: `"x5c" not accepted`,
			token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","x5c":["MIIB"]}`, string(claimsJSON), edSign)},
		"crit header": {reason: `"crit" not accepted`,
			token: assemble(`{"alg":"EdDSA","kid":"`+f.ed.ID+`","typ":"at+jwt","crit":["exp"]}`, string(claimsJSON), edSign)},
		"duplicate alg member": {reason: "duplicate member",
			token: assemble(`{"alg":"EdDSA","alg":"none","kid":"`+f.ed.ID+`","typ":"at+jwt"}`, string(claimsJSON), edSign)},
		"tampered payload": {reason: "bad signature",
			token: parts[0] + "." + strings.Split(assemble("{}", strings.Replace(string(claimsJSON), "user-1", "admin", 1), nil), ".")[1] + "." + parts[2]},
		"tampered signature": {reason: "bad signature",
			token: parts[0] + "." + parts[1] + "." + flip(parts[2])},
		"empty signature":    {token: parts[0] + "." + parts[1] + ".", reason: "empty signature"},
		"two parts":          {token: parts[0] + "." + parts[1], reason: "not a compact JWS"},
		"JSON serialization": {token: `{"payload":"` + parts[1] + `","signatures":[]}`, reason: "not a compact JWS"},
		"empty":              {token: "", reason: "not a compact JWS"},
		"garbage header":     {token: "!!!." + parts[1] + "." + parts[2], reason: "header"},
		"too large":          {token: strings.Repeat("a", 9000), reason: "larger"},
		"ID token (typ JWT)": {token: idTok, reason: `typ "JWT"`},
		"no typ": {reason: "typ",
			token: signRaw(t, jwa.RS256(), rsPriv, map[string]any{"kid": f.rs.ID}, validClaims())},
		"other issuer":   {token: otherIssTok, reason: "issuer"},
		"other audience": {token: otherAudTok, reason: "audience"},
		"no aud": {reason: "aud",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "aud", nil))},
		"no sid": {reason: "sid",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "sid", nil))},
		"no sub": {reason: "sub",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "sub", nil))},
		"no exp": {reason: "exp",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "exp", nil))},
		"exp as a string": {reason: "exp",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "exp", "2099-01-01"))},
		"iat in the future": {reason: "future",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "iat", t0.Add(6*time.Second).Unix()))},
		"nbf in the future": {reason: "not valid yet",
			token: signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "nbf", t0.Add(time.Minute).Unix()))},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := m.VerifyAccess(tc.token)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("VerifyAccess: %v", err)
				}
				return
			}
			if !errors.Is(err, token.ErrInvalidToken) {
				t.Fatalf("VerifyAccess = %v, want ErrInvalidToken", err)
			}
			if errors.Is(err, token.ErrExpired) {
				t.Errorf("refusal reported as expiry: %v", err)
			}
			checkOneKind(t, err)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
		})
	}
}

// flip changes the first character of a base64url segment.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestVerifyAccessAllowList(t *testing.T) {
	clk := newClock(t0)
	es := key(t, keyset.ES256, 1, t0.Add(-time.Hour), t0.Add(-time.Hour))
	m := newManager(t, clk, keyset.Keyset{Keys: []keyset.Key{es}}, withAlgorithms("ES256"))
	rsPriv := signers()[keyset.RS256][0]
	tok := signRaw(t, jwa.RS256(), rsPriv, map[string]any{"kid": es.ID, "typ": "at+jwt"}, validClaims())
	if _, err := m.VerifyAccess(tok); !errors.Is(err, token.ErrInvalidToken) || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("RS256 token with ES256-only allow-list: %v", err)
	}
}

func TestVerifyAccessExpiry(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	tok, c, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		now         time.Time
		wantExpired bool
	}{
		"just issued":              {now: c.IssuedAt},
		"one second before exp":    {now: c.ExpiresAt.Add(-time.Second)},
		"at exp, within leeway":    {now: c.ExpiresAt},
		"4.9s late, within leeway": {now: c.ExpiresAt.Add(4900 * time.Millisecond)},
		"5s late: expired":         {now: c.ExpiresAt.Add(5 * time.Second), wantExpired: true},
		"an hour late":             {now: c.ExpiresAt.Add(time.Hour), wantExpired: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			clk.Set(tc.now)
			_, err := m.VerifyAccess(tok)
			if !tc.wantExpired {
				if err != nil {
					t.Fatalf("VerifyAccess: %v", err)
				}
				return
			}
			if !errors.Is(err, token.ErrExpired) || !errors.Is(err, token.ErrInvalidToken) {
				t.Fatalf("VerifyAccess = %v, want ErrExpired wrapping ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifyAccessRemovedKey(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	// A token from the retired ES256 key, forged to live long, stops
	// verifying when the key leaves the JWKS.
	tok := signRaw(t, jwa.ES256(), signers()[keyset.ES256][0], map[string]any{"kid": f.es.ID, "typ": "at+jwt"},
		with(validClaims(), "exp", t0.Add(24*time.Hour).Unix()))
	if _, err := m.VerifyAccess(tok); err != nil {
		t.Fatalf("before removal: %v", err)
	}
	clk.Set(*f.es.RemoveAfter)
	if _, err := m.VerifyAccess(tok); !errors.Is(err, token.ErrInvalidToken) || !strings.Contains(err.Error(), "not published") {
		t.Fatalf("after removal: %v", err)
	}
}

func TestExpCappedAtKeyRemoval(t *testing.T) {
	clk := newClock(t0)
	k := retire(key(t, keyset.ES256, 1, t0.Add(-time.Hour), t0.Add(-time.Hour)), t0.Add(10*time.Minute), t0.Add(30*time.Minute))
	next := key(t, keyset.EdDSA, 1, t0.Add(-time.Hour), t0.Add(10*time.Minute))
	m := newManager(t, clk, keyset.Keyset{Keys: []keyset.Key{k, next}})
	_, c, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("exp = %s, want capped at %s", c.ExpiresAt, t0.Add(30*time.Minute))
	}
	if _, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, 0); err == nil {
		t.Error("SignAccess with ttl 0 succeeded")
	}
}

func TestKeySwitch(t *testing.T) {
	f := newFixture(t)
	switchAt := f.ed.ActiveAt
	clk := newClock(switchAt.Add(-time.Second))
	m := newManager(t, clk, f.ks)
	sign := func() (string, string) {
		tok, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok, decodeSegment(t, tok, 0)["kid"].(string)
	}
	before, kid := sign()
	if kid != f.rs.ID || m.ActiveKeyID() != f.rs.ID {
		t.Fatalf("before the switch signed with %s", kid)
	}
	clk.Set(switchAt)
	after, kid := sign()
	if kid != f.ed.ID || m.ActiveKeyID() != f.ed.ID {
		t.Fatalf("after the switch signed with %s", kid)
	}
	if decodeSegment(t, after, 0)["alg"] != "EdDSA" {
		t.Error("new key's algorithm not used")
	}
	for _, tok := range []string{before, after} {
		if _, err := m.VerifyAccess(tok); err != nil {
			t.Errorf("VerifyAccess after the switch: %v", err)
		}
	}
}

func TestSignID(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	tok, err := m.SignID(token.IDClaims{
		Subject: "user-1", Email: "a@example.test", EmailVerified: true, Name: "Ada",
		AuthTime: t0.Add(-time.Minute), Nonce: "n-1",
	}, "client-1", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if h := decodeSegment(t, tok, 0); h["typ"] != "JWT" || h["kid"] != f.rs.ID {
		t.Errorf("header = %v", h)
	}
	p := decodeSegment(t, tok, 1)
	want := map[string]any{
		"iss": issuer, "sub": "user-1", "aud": "client-1", "email": "a@example.test", "email_verified": true,
		"name": "Ada", "nonce": "n-1", "auth_time": float64(t0.Add(-time.Minute).Unix()),
		"iat": float64(t0.Unix()), "exp": float64(t0.Add(5 * time.Minute).Unix()),
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("claim %s = %v, want %v", k, p[k], v)
		}
	}
	if _, ok := p["sid"]; ok {
		t.Error("ID token carries sid")
	}
	if _, ok := p["client_id"]; ok {
		t.Error("ID token of a password session carries client_id")
	}
	byClient, err := m.SignID(token.IDClaims{Subject: "user-1", ClientID: "c-1"}, "client-1", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeSegment(t, byClient, 1)["client_id"]; got != "c-1" {
		t.Errorf("client_id of an API client's session = %v, want c-1", got)
	}
	if _, err := m.SignID(token.IDClaims{Subject: "u"}, "", time.Minute); err == nil {
		t.Error("SignID without audience succeeded")
	}
}

func TestJWKS(t *testing.T) {
	f := newFixture(t)
	// A key published later and one already removed never appear.
	later := key(t, keyset.ES256, 1, t0.Add(time.Hour), t0.Add(20*time.Hour))
	f.ed = retire(f.ed, later.ActiveAt, later.ActiveAt.Add(time.Hour))
	ks := keyset.Keyset{Keys: []keyset.Key{f.es, f.rs, f.ed, later}}
	clk := newClock(t0)
	m := newManager(t, clk, ks)

	body, etag := m.JWKS()
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		kids = append(kids, kid)
		if alg, ok := k.Algorithm(); !ok || alg.String() == "" {
			t.Errorf("key %s has no alg", kid)
		}
		if use, _ := k.KeyUsage(); use != "sig" {
			t.Errorf("key %s use = %q", kid, use)
		}
		if priv, _ := jwk.IsPrivateKey(k); priv {
			t.Errorf("key %s is private", kid)
		}
	}
	if got, want := strings.Join(kids, ","), strings.Join([]string{f.es.ID, f.rs.ID, f.ed.ID}, ","); got != want {
		t.Errorf("published kids = %s, want %s", got, want)
	}
	var raw struct{ Keys []map[string]any }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range raw.Keys {
		for _, member := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[member]; ok {
				t.Errorf("key %v has private member %q", k["kid"], member)
			}
		}
	}
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
		t.Errorf("etag %s is not a quoted strong tag", etag)
	}

	// Same set: same body and ETag, also after reloading the same keyset.
	clk.Set(t0.Add(time.Minute))
	if b2, e2 := m.JWKS(); e2 != etag || string(b2) != string(body) {
		t.Error("ETag changed without the set changing")
	}
	if err := m.SetKeyset(ks); err != nil {
		t.Fatal(err)
	}
	if _, e2 := m.JWKS(); e2 != etag {
		t.Error("ETag changed after reloading the same keyset")
	}
	// The ES256 key leaves at t0+1h and the later key arrives at the same
	// instant: the set and the ETag change.
	clk.Set(t0.Add(time.Hour))
	b3, e3 := m.JWKS()
	if e3 == etag {
		t.Error("ETag unchanged after the set changed")
	}
	if strings.Contains(string(b3), f.es.ID) || !strings.Contains(string(b3), later.ID) {
		t.Errorf("JWKS at t0+1h = %s", b3)
	}
}

// TestIndependentVerification checks tokens with jwx's own JWT parser
// against the served JWKS, as a relying party would.
func TestIndependentVerification(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	body, _ := m.JWKS()
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{t0, f.ed.ActiveAt} {
		clk.Set(at)
		tok, c, err := m.SignAccess(token.AccessClaims{Subject: "user-1", SessionID: "s"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(clk.Now)),
			jwt.WithIssuer(issuer), jwt.WithAudience(audience))
		if err != nil {
			t.Fatalf("jwt.Parse at %s: %v", at, err)
		}
		if sub, _ := parsed.Subject(); sub != "user-1" {
			t.Errorf("sub = %q", sub)
		}
		var sid string
		if err := parsed.Get("sid", &sid); err != nil || sid != "s" {
			t.Errorf("sid = %q, %v", sid, err)
		}
		if jti, _ := parsed.JwtID(); jti != c.ID {
			t.Errorf("jti = %q, want %q", jti, c.ID)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if i == 0 && j%10 == 0 {
					if err := m.SetKeyset(f.ks); err != nil {
						t.Error(err)
					}
				}
				tok, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := m.VerifyAccess(tok); err != nil {
					t.Error(err)
					return
				}
				m.JWKS()
			}
		})
	}
	wg.Wait()
}

func benchManager(b *testing.B, alg keyset.Algorithm) *token.Manager {
	clk := newClock(t0)
	k := key(b, alg, 1, t0.Add(-time.Hour), t0.Add(-time.Hour))
	cfg := token.Config{Issuer: issuer, Now: clk.Now, Rand: mrand.NewChaCha8([32]byte{1})}
	m, err := token.NewManager(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.SetKeyset(keyset.Keyset{Keys: []keyset.Key{k}}); err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkSignAccess(b *testing.B) {
	for _, alg := range keyset.Algorithms() {
		b.Run(string(alg), func(b *testing.B) {
			m := benchManager(b, alg)
			c := token.AccessClaims{Subject: "user-1", SessionID: "sess-1", Email: "a@example.test"}
			for b.Loop() {
				if _, _, err := m.SignAccess(c, 15*time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyAccess(b *testing.B) {
	for _, alg := range keyset.Algorithms() {
		b.Run(string(alg), func(b *testing.B) {
			m := benchManager(b, alg)
			tok, _, err := m.SignAccess(token.AccessClaims{Subject: "user-1", SessionID: "sess-1"}, 15*time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := m.VerifyAccess(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A token verified (and cached) before its key was revoked is refused after:
// revocation replaces the keyset, and the cache lives with the keyset.
func TestVerifyAccessAfterRevocation(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	tok, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second verification comes from the cache
		if _, err := m.VerifyAccess(tok); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}
	var rest []keyset.Key
	for _, k := range f.ks.Keys {
		if k.ID != f.rs.ID {
			rest = append(rest, k)
		}
	}
	rest = append(rest, key(t, keyset.ES256, 1, t0.Add(-time.Minute), t0.Add(-time.Minute)))
	if err := m.SetKeyset(keyset.Keyset{Keys: rest}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.VerifyAccess(tok); !errors.Is(err, token.ErrInvalidToken) {
		t.Fatalf("after revocation: %v, want ErrInvalidToken", err)
	}
}
