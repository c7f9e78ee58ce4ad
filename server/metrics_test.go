package server_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/token"
)

// counters reads the counters of one metric family from reg, by the value
// of one label.
func counters(t testing.TB, reg prometheus.Gatherer, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			value := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					value = l.GetValue()
				}
			}
			out[value] += m.GetCounter().GetValue()
		}
	}
	return out
}

// foreignToken is a well-formed access token of our issuer signed by a key
// that is not in the server's keyset.
func foreignToken(t testing.TB, now func() time.Time) string {
	t.Helper()
	p := keyset.Policy{Algorithm: keyset.ES256, MaxTokenTTL: time.Hour}.WithDefaults()
	ks, _, err := keyset.Advance(keyset.Keyset{}, p, now().Add(-time.Hour), keyset.NewGenerator(rand.Reader))
	if err != nil {
		t.Fatal(err)
	}
	m, err := token.NewManager(token.Config{Issuer: testIssuer, Now: now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetKeyset(ks); err != nil {
		t.Fatal(err)
	}
	tok, _, err := m.SignAccess(token.AccessClaims{Subject: "u", SessionID: "s"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenVerificationResults: each access token the API checks moves
// exactly the result it deserves, a token recalled from the cache of
// verified tokens included.
func TestTokenVerificationResults(t *testing.T) {
	results := []string{"ok", "expired", "unknown_kid", "bad_signature", "revoked", "malformed"}
	cases := map[string]struct {
		// present returns the token to send, after whatever set it up.
		present func(t *testing.T, ts *testServer) string
		want    string
	}{
		"valid": {want: "ok", present: func(t *testing.T, ts *testServer) string {
			return ts.signup(t, "ok@example.com").JWT
		}},
		"valid again, from the cache": {want: "ok", present: func(t *testing.T, ts *testServer) string {
			p := ts.signup(t, "cached@example.com")
			if r := ts.do(t, "GET", "/me", nil, auth(p)...); r.status != http.StatusOK {
				t.Fatalf("first use: %d %s", r.status, r.body)
			}
			return p.JWT
		}},
		"expired": {want: "expired", present: func(t *testing.T, ts *testServer) string {
			p := ts.signup(t, "expired@example.com")
			ts.clock.Advance(11 * time.Minute)
			return p.JWT
		}},
		"expired, after it was cached": {want: "expired", present: func(t *testing.T, ts *testServer) string {
			p := ts.signup(t, "expired-cached@example.com")
			if r := ts.do(t, "GET", "/me", nil, auth(p)...); r.status != http.StatusOK {
				t.Fatalf("first use: %d %s", r.status, r.body)
			}
			ts.clock.Advance(11 * time.Minute)
			return p.JWT
		}},
		"signed by a key not in the keyset": {want: "unknown_kid", present: func(t *testing.T, ts *testServer) string {
			return foreignToken(t, ts.clock.Now)
		}},
		"tampered signature": {want: "bad_signature", present: func(t *testing.T, ts *testServer) string {
			p := strings.Split(ts.signup(t, "tampered@example.com").JWT, ".")
			sig := []byte(p[2])
			// Another base64url character: the signature still decodes,
			// to other bytes.
			if sig[0] == 'A' {
				sig[0] = 'B'
			} else {
				sig[0] = 'A'
			}
			return p[0] + "." + p[1] + "." + string(sig)
		}},
		"session logged out": {want: "revoked", present: func(t *testing.T, ts *testServer) string {
			p := ts.signup(t, "revoked@example.com")
			if r := ts.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": p.RefreshToken}, auth(p)...); r.status != http.StatusNoContent {
				t.Fatalf("logout: %d %s", r.status, r.body)
			}
			return p.JWT
		}},
		"not a JWT": {want: "malformed", present: func(*testing.T, *testServer) string {
			return "not-a-jwt"
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t)
			tok := tc.present(t, ts)
			before := counters(t, ts.reg, "ideapool_token_verifications_total", "result")
			r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+tok)
			wantStatus := http.StatusUnauthorized
			if tc.want == "ok" {
				wantStatus = http.StatusOK
			}
			if r.status != wantStatus {
				t.Fatalf("GET /me: %d %s, want %d", r.status, r.body, wantStatus)
			}
			after := counters(t, ts.reg, "ideapool_token_verifications_total", "result")
			for _, res := range results {
				if _, ok := after[res]; !ok {
					t.Errorf("result %q has no series", res)
				}
				want := before[res]
				if res == tc.want {
					want++
				}
				if after[res] != want {
					t.Errorf("result %q: %v -> %v, want %v", res, before[res], after[res], want)
				}
			}
			if len(after) != len(results) {
				t.Errorf("results %v, want exactly %v", after, results)
			}
		})
	}
}

// TestJWKSRequestsAndSignedTokens: JWKS answers are counted by code, and
// tokens by the key that signed them; promlint finds nothing to fix.
func TestJWKSRequestsAndSignedTokens(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "GET", "/.well-known/jwks.json", nil)
	for range 2 {
		if r := ts.do(t, "GET", "/.well-known/jwks.json", nil, "If-None-Match", r.header.Get("ETag")); r.status != http.StatusNotModified {
			t.Fatalf("conditional jwks: %d", r.status)
		}
	}
	if got := counters(t, ts.reg, "ideapool_jwks_requests_total", "code"); got["200"] != 1 || got["304"] != 2 || len(got) != 2 {
		t.Errorf("ideapool_jwks_requests_total by code = %v, want 200: 1, 304: 2", got)
	}

	ts.signup(t, "signed@example.com") // one access token
	kid := ts.tokens.ActiveKeyID()
	access := counters(t, ts.reg, "ideapool_tokens_signed_total", "kind")
	byKid := counters(t, ts.reg, "ideapool_tokens_signed_total", "kid")
	if access["access"] != 1 || access["id"] != 0 || byKid[kid] != 1 || len(byKid) != len(fixedKeyset(t).Keys) {
		t.Errorf("ideapool_tokens_signed_total: by kind %v, by kid %v; want one access token by %s", access, byKid, kid)
	}

	problems, err := testutil.GatherAndLint(ts.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMethodLabelsBounded: a client choosing its own HTTP methods must not
// add a series per method (the series live as long as the process).
func TestMethodLabelsBounded(t *testing.T) {
	ts := newTestServer(t)
	for i := range 50 {
		ts.do(t, fmt.Sprintf("X%d", i), "/healthz", nil)
		ts.do(t, fmt.Sprintf("M%d", i), "/nope", nil)
	}
	methods := counters(t, ts.reg, "ideapool_http_requests_total", "method")
	if len(methods) != 1 || methods["other"] != 100 {
		t.Fatalf("made-up methods gave the series %v, want only other=100", methods)
	}
}
