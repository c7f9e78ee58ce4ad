package token_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/token"
)

const (
	issuer   = "https://id.example.test"
	audience = "https://api.example.test"
)

// t0 is the fixed clock's start.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable fake clock.
type clock = clocktest.Clock

func newClock(t time.Time) *clock { return clocktest.New(t) }

// signers are generated once per test binary: RSA generation is slow.
var signers = sync.OnceValue(func() map[keyset.Algorithm][]crypto.Signer {
	gen := keyset.NewGenerator(mrand.NewChaCha8([32]byte{42}))
	out := map[keyset.Algorithm][]crypto.Signer{}
	for range 2 {
		r, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[keyset.RS256] = append(out[keyset.RS256], r)
		for _, alg := range []keyset.Algorithm{keyset.ES256, keyset.EdDSA} {
			s, err := gen.Generate(alg, 0)
			if err != nil {
				panic(err)
			}
			out[alg] = append(out[alg], s)
		}
	}
	return out
})

// key builds a keyset key from the n-th test signer of alg.
func key(t testing.TB, alg keyset.Algorithm, n int, published, active time.Time) keyset.Key {
	t.Helper()
	k, err := keyset.NewKey(signers()[alg][n], alg, published, published, active)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// retire sets a key's retirement and removal times.
func retire(k keyset.Key, retired, remove time.Time) keyset.Key {
	k.RetiredAt, k.RemoveAfter = &retired, &remove
	return k
}

// fixture is the keyset most tests share, at t0:
//
//	es: ES256, retired at t0-1h, published until t0+1h
//	rs: RS256, signing since t0-1h, retires at t0+10h
//	ed: EdDSA, published at t0-1h, signs from t0+10h
type fixture struct {
	es, rs, ed keyset.Key
	ks         keyset.Keyset
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	f := fixture{
		es: retire(key(t, keyset.ES256, 0, t0.Add(-40*time.Hour), t0.Add(-20*time.Hour)), t0.Add(-time.Hour), t0.Add(time.Hour)),
		rs: retire(key(t, keyset.RS256, 0, t0.Add(-30*time.Hour), t0.Add(-time.Hour)), t0.Add(10*time.Hour), t0.Add(12*time.Hour)),
		ed: key(t, keyset.EdDSA, 0, t0.Add(-time.Hour), t0.Add(10*time.Hour)),
	}
	f.ks = keyset.Keyset{Keys: []keyset.Key{f.es, f.rs, f.ed}}
	if err := f.ks.Validate(); err != nil {
		t.Fatal(err)
	}
	return f
}

type option func(*token.Config)

func withIssuer(s string) option   { return func(c *token.Config) { c.Issuer = s } }
func withAudience(s string) option { return func(c *token.Config) { c.Audience = s } }
func withAlgorithms(a ...string) option {
	return func(c *token.Config) { c.Algorithms = a }
}

// newManager builds a Manager on clk with ks loaded.
func newManager(t testing.TB, clk *clock, ks keyset.Keyset, opts ...option) *token.Manager {
	t.Helper()
	cfg := token.Config{
		Issuer: issuer, Audience: audience,
		Now: clk.Now, Rand: mrand.NewChaCha8([32]byte{7}),
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := token.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetKeyset(ks); err != nil {
		t.Fatal(err)
	}
	return m
}

// signRaw signs claims with any key and any protected headers, the way an
// attacker (or a buggy issuer) could.
func signRaw(t testing.TB, alg jwa.SignatureAlgorithm, k any, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	for name, v := range hdr {
		if err := h.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, k, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// assemble builds a compact token from raw header and claims JSON and a
// signature computed by sign over the signing input.
func assemble(header, claims string, sign func(input []byte) []byte) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

// validClaims are the claims of a valid access token at t0.
func validClaims() map[string]any {
	return map[string]any{
		"iss": issuer, "aud": audience, "sub": "user-1", "sid": "session-1", "jti": "j1",
		"iat": t0.Unix(), "exp": t0.Add(10 * time.Minute).Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// decodeSegment decodes one base64url JSON segment of a token.
func decodeSegment(t testing.TB, tok string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
