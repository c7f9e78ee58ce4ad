package token_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/token"
)

// refusalKinds are the sentinels one of which every refusal wraps.
var refusalKinds = map[string]error{
	"expired":       token.ErrExpired,
	"unknown kid":   token.ErrUnknownKey,
	"bad signature": token.ErrBadSignature,
	"malformed":     token.ErrMalformed,
}

// kindsOf names the refusal kinds err wraps.
func kindsOf(err error) []string {
	var out []string
	for name, kind := range refusalKinds {
		if errors.Is(err, kind) {
			out = append(out, name)
		}
	}
	return out
}

// checkOneKind fails unless err wraps ErrInvalidToken and exactly one
// refusal kind, so that the API can count why it refused a token.
func checkOneKind(t testing.TB, err error) {
	t.Helper()
	if kinds := kindsOf(err); !errors.Is(err, token.ErrInvalidToken) || len(kinds) != 1 {
		t.Errorf("refusal %v wraps kinds %v, want ErrInvalidToken and exactly one of %v", err, kinds, refusalKinds)
	}
}

// TestVerifyAccessKinds: each refusal wraps the sentinel that says why,
// the same whether the token is verified in full or comes from the cache
// of verified tokens.
func TestVerifyAccessKinds(t *testing.T) {
	f := newFixture(t)
	foreignES, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsPriv := signers()[keyset.RS256][0]
	// unpublished: a key published an hour after t0, not yet in the JWKS.
	unpublished := key(t, keyset.ES256, 1, t0.Add(time.Hour), t0.Add(20*time.Hour))
	ks := keyset.Keyset{Keys: append(append([]keyset.Key{}, f.ks.Keys...), unpublished)}
	atHeader := func(kid string) map[string]any { return map[string]any{"kid": kid, "typ": "at+jwt"} }

	cases := map[string]struct {
		token func(m *token.Manager) string
		// at is when the token is presented (t0 unless set).
		at   time.Time
		want error
	}{
		"garbage": {want: token.ErrMalformed,
			token: func(*token.Manager) string { return "not-a-token" }},
		"ID token as access token": {want: token.ErrMalformed,
			token: func(m *token.Manager) string {
				tok, err := m.SignID(token.IDClaims{Subject: "u"}, audience, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}},
		"another issuer": {want: token.ErrMalformed,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "iss", "https://evil.example.test"))
			}},
		"no exp": {want: token.ErrMalformed,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), with(validClaims(), "exp", nil))
			}},
		"kid not in the keyset": {want: token.ErrUnknownKey,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.ES256(), foreignES, atHeader("foreign"), validClaims())
			}},
		"key not yet published": {want: token.ErrUnknownKey,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.ES256(), signers()[keyset.ES256][1], atHeader(unpublished.ID), validClaims())
			}},
		"key past its removal": {want: token.ErrUnknownKey, at: *f.es.RemoveAfter,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.ES256(), signers()[keyset.ES256][0], atHeader(f.es.ID),
					with(validClaims(), "exp", t0.Add(24*time.Hour).Unix()))
			}},
		"foreign key with our kid": {want: token.ErrBadSignature,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.ES256(), foreignES, atHeader(f.es.ID), validClaims())
			}},
		"another algorithm than the key's": {want: token.ErrBadSignature,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.ES256(), foreignES, atHeader(f.rs.ID), validClaims())
			}},
		"HS256": {want: token.ErrBadSignature,
			token: func(*token.Manager) string {
				return signRaw(t, jwa.HS256(), []byte("the-public-key"), atHeader(f.rs.ID), validClaims())
			}},
		"tampered signature": {want: token.ErrBadSignature,
			token: func(m *token.Manager) string {
				tok, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				p := strings.Split(tok, ".")
				return p[0] + "." + p[1] + "." + flip(p[2])
			}},
		"expired": {want: token.ErrExpired, at: t0.Add(time.Hour),
			token: func(m *token.Manager) string {
				tok, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			clk := newClock(t0)
			m := newManager(t, clk, ks)
			tok := tc.token(m)
			// Verified once at t0 (filling the cache when valid then), then
			// at the time of the case: both paths classify alike.
			_, _ = m.VerifyAccess(tok)
			if !tc.at.IsZero() {
				clk.Set(tc.at)
			}
			for _, path := range []string{"first", "again"} {
				_, err := m.VerifyAccess(tok)
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: VerifyAccess = %v, want %v", path, err, tc.want)
				}
				checkOneKind(t, err)
			}
		})
	}

	t.Run("no keyset loaded", func(t *testing.T) {
		m, err := token.NewManager(token.Config{Issuer: issuer, Now: newClock(t0).Now, Rand: rand.Reader})
		if err != nil {
			t.Fatal(err)
		}
		tok := signRaw(t, jwa.RS256(), rsPriv, atHeader(f.rs.ID), validClaims())
		if _, err := m.VerifyAccess(tok); !errors.Is(err, token.ErrUnknownKey) {
			t.Fatalf("VerifyAccess = %v, want ErrUnknownKey", err)
		}
	})
}

// TestSignedByKey: tokens are counted per signing key and kind; the counts
// survive a reload of the same keyset, and a kid that leaves the keyset is
// forgotten, so the counts stay bounded by the keyset.
func TestSignedByKey(t *testing.T) {
	f := newFixture(t)
	clk := newClock(t0)
	m := newManager(t, clk, f.ks)
	sign := func(access, id int) {
		t.Helper()
		for range access {
			if _, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		for range id {
			if _, err := m.SignID(token.IDClaims{Subject: "u"}, audience, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := func() map[string]token.KeyCount {
		out := map[string]token.KeyCount{}
		for _, c := range m.SignedByKey() {
			out[c.KeyID] = c
		}
		return out
	}

	sign(3, 2) // rs signs at t0
	want := map[string]token.KeyCount{
		f.es.ID: {KeyID: f.es.ID},
		f.rs.ID: {KeyID: f.rs.ID, Access: 3, ID: 2},
		f.ed.ID: {KeyID: f.ed.ID},
	}
	if got := counts(); !equalCounts(got, want) {
		t.Fatalf("after signing with rs: %+v, want %+v", got, want)
	}

	// The same keyset reloaded (a watch event, a file touch) keeps counting.
	if err := m.SetKeyset(f.ks); err != nil {
		t.Fatal(err)
	}
	sign(1, 0)
	want[f.rs.ID] = token.KeyCount{KeyID: f.rs.ID, Access: 4, ID: 2}
	if got := counts(); !equalCounts(got, want) {
		t.Fatalf("after a reload: %+v, want %+v", got, want)
	}

	// At the scheduled switch ed signs; rs keeps its count.
	clk.Set(f.ed.ActiveAt)
	sign(0, 1)
	want[f.ed.ID] = token.KeyCount{KeyID: f.ed.ID, ID: 1}
	if got := counts(); !equalCounts(got, want) {
		t.Fatalf("after the switch to ed: %+v, want %+v", got, want)
	}

	// es leaves the keyset: its kid is forgotten.
	if err := m.SetKeyset(keyset.Keyset{Keys: []keyset.Key{f.rs, f.ed}}); err != nil {
		t.Fatal(err)
	}
	delete(want, f.es.ID)
	if got := counts(); !equalCounts(got, want) {
		t.Fatalf("after es left the keyset: %+v, want %+v", got, want)
	}
}

func equalCounts(a, b map[string]token.KeyCount) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
