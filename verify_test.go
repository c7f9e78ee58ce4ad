package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/ideapool/ideapool/internal/contract"
)

// fakeIssuer serves a JWKS of chosen keys with a chosen Cache-Control and
// counts the fetches.
type fakeIssuer struct {
	mu           sync.Mutex
	keys         []jwk.Key
	cacheControl string
	fetches      atomic.Int64
}

func (f *fakeIssuer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.fetches.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Cache-Control", f.cacheControl)
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": f.keys})
}

func (f *fakeIssuer) publish(keys ...jwk.Key) {
	f.mu.Lock()
	f.keys = keys
	f.mu.Unlock()
}

type testKey struct {
	kid  string
	priv *ecdsa.PrivateKey
	pub  jwk.Key
}

func newTestKey(t *testing.T, kid string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.ES256(), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return testKey{kid: kid, priv: priv, pub: pub}
}

// sign makes an access token as ideapool does, with changes applied.
func (k testKey) sign(t *testing.T, iss string, now time.Time, change func(jwt.Token, jws.Headers)) string {
	t.Helper()
	tok := jwt.New()
	for name, v := range map[string]any{jwt.IssuerKey: iss, jwt.AudienceKey: []string{iss}, jwt.SubjectKey: "u1",
		jwt.IssuedAtKey: now, jwt.ExpirationKey: now.Add(10 * time.Minute)} {
		if err := tok.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, k.kid)
	_ = h.Set(jws.TypeKey, "at+jwt")
	if change != nil {
		change(tok, h)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVerifyLoadVerify: the verifier accepts what a resource server accepts
// and refuses the rest, caching the JWKS for its max-age.
func TestVerifyLoadVerify(t *testing.T) {
	const iss = "http://pool.test.svc"
	a, b, stranger := newTestKey(t, "a"), newTestKey(t, "b"), newTestKey(t, "s")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		published []jwk.Key                    // the issuer's JWKS
		signer    testKey                      // key that signs the token
		change    func(jwt.Token, jws.Headers) // edits of the token
		want      string                       // "" verified, else part of the error
	}{
		"good token":        {published: []jwk.Key{a.pub}, signer: a},
		"second key":        {published: []jwk.Key{a.pub, b.pub}, signer: b},
		"wrong typ":         {published: []jwk.Key{a.pub}, signer: a, change: func(_ jwt.Token, h jws.Headers) { _ = h.Set(jws.TypeKey, "JWT") }, want: "typ"},
		"other issuer":      {published: []jwk.Key{a.pub}, signer: a, change: func(tok jwt.Token, _ jws.Headers) { _ = tok.Set(jwt.IssuerKey, "http://evil") }, want: "iss"},
		"other audience":    {published: []jwk.Key{a.pub}, signer: a, change: func(tok jwt.Token, _ jws.Headers) { _ = tok.Set(jwt.AudienceKey, []string{"x"}) }, want: "aud"},
		"expired":           {published: []jwk.Key{a.pub}, signer: a, change: func(tok jwt.Token, _ jws.Headers) { _ = tok.Set(jwt.ExpirationKey, t0.Add(-time.Minute)) }, want: "exp"},
		"key not published": {published: []jwk.Key{a.pub}, signer: stranger, want: "kid s"},
		"kid of another key": {published: []jwk.Key{a.pub}, signer: stranger,
			change: func(_ jwt.Token, h jws.Headers) { _ = h.Set(jws.KeyIDKey, "a") }, want: "kid a"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := &fakeIssuer{cacheControl: "public, max-age=300"}
			f.publish(tc.published...)
			srv := httptest.NewServer(f)
			defer srv.Close()
			v := newVerifyLoad(verifyConfig{leeway: 5 * time.Second}, srv.Client(), func() time.Time { return t0 })
			v.issuer, v.jwks = iss, newJWKSCache(srv.Client(), srv.URL, v.now)
			kid, err := v.verify(context.Background(), tc.signer.sign(t, iss, t0, tc.change))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused a good token (kid %s): %v", kid, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

// TestJWKSCache: the JWKS is fetched again only when its max-age has
// passed, or (at most once a second) when a token names an unknown kid,
// which is reported.
func TestJWKSCache(t *testing.T) {
	a, b := newTestKey(t, "a"), newTestKey(t, "b")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at          time.Duration // since t0
		publish     []jwk.Key     // the issuer's JWKS from this step on (nil: unchanged)
		kid         string
		wantMissed  bool
		wantFetches int64 // total so far
	}{
		{at: 0, publish: []jwk.Key{a.pub}, kid: "a", wantFetches: 1},
		{at: 30 * time.Second, kid: "a", wantFetches: 1},                                        // cached
		{at: 40 * time.Second, publish: []jwk.Key{a.pub, b.pub}, kid: "a", wantFetches: 1},      // b published, not seen yet
		{at: 59 * time.Second, kid: "b", wantMissed: true, wantFetches: 2},                      // unknown kid: fetched again
		{at: 59*time.Second + 500*time.Millisecond, kid: "c", wantMissed: true, wantFetches: 2}, // rate-limited
		{at: 61 * time.Second, kid: "b", wantFetches: 2},                                        // got b at 59s
		{at: 59*time.Second + 61*time.Second, kid: "b", wantFetches: 3},                         // max-age from the refetch passed
	}
	f := &fakeIssuer{cacheControl: "public, max-age=60"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var now time.Time
	c := newJWKSCache(srv.Client(), srv.URL, func() time.Time { return now })
	for i, s := range steps {
		now = t0.Add(s.at)
		if s.publish != nil {
			f.publish(s.publish...)
		}
		set, missed, err := c.keys(context.Background(), s.kid)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if missed != s.wantMissed || f.fetches.Load() != s.wantFetches {
			t.Fatalf("step %d (kid %s at %s): missed %v, %d fetches; want %v, %d", i, s.kid, s.at, missed, f.fetches.Load(), s.wantMissed, s.wantFetches)
		}
		// Every kid but the forged "c" is published by then, so the set
		// returned (fetched again if need be) holds it.
		if _, ok := set.LookupKeyID(s.kid); ok != (s.kid != "c") {
			t.Fatalf("step %d: key %s in the returned set: %v", i, s.kid, ok)
		}
	}
}

func TestMaxAge(t *testing.T) {
	cases := map[string]struct {
		cacheControl, age string
		want              time.Duration
	}{
		"max-age":         {cacheControl: "public, max-age=300", want: 300 * time.Second},
		"less age":        {cacheControl: "max-age=300", age: "100", want: 200 * time.Second},
		"age beyond":      {cacheControl: "max-age=300", age: "400", want: 0},
		"no-store":        {cacheControl: "no-store, max-age=300", want: 0},
		"no-cache":        {cacheControl: "No-Cache", want: 0},
		"none":            {want: jwksDefaultMaxAge},
		"garbage":         {cacheControl: "max-age=soon", want: jwksDefaultMaxAge},
		"quoted":          {cacheControl: `max-age="60"`, want: time.Minute},
		"upper-case name": {cacheControl: "MAX-AGE=5", want: 5 * time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tc.cacheControl != "" {
				h.Set("Cache-Control", tc.cacheControl)
			}
			if tc.age != "" {
				h.Set("Age", tc.age)
			}
			if got := maxAge(h); got != tc.want {
				t.Errorf("maxAge = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestVerifyLoadCheck: --check (the chart's helm test) waits for /readyz,
// then requires discovery and a JWKS with a key.
func TestVerifyLoadCheck(t *testing.T) {
	a := newTestKey(t, "a")
	cases := map[string]struct {
		notReady int       // /readyz answers 503 this many times first
		keys     []jwk.Key // the JWKS
		jwksURI  bool      // discovery names the JWKS
		want     string    // "" success, else part of the error
	}{
		"ready at once":        {keys: []jwk.Key{a.pub}, jwksURI: true},
		"ready after a while":  {notReady: 10, keys: []jwk.Key{a.pub}, jwksURI: true},
		"never ready":          {notReady: 1000, keys: []jwk.Key{a.pub}, jwksURI: true, want: "did not answer 200 within 2m0s"},
		"empty JWKS":           {keys: []jwk.Key{}, jwksURI: true, want: "has no key"},
		"discovery without it": {keys: []jwk.Key{a.pub}, want: "no issuer or jwks_uri"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := &fakeIssuer{cacheControl: "max-age=60"}
			f.publish(tc.keys...)
			var readyCalls atomic.Int64
			mux := http.NewServeMux()
			srv := httptest.NewServer(mux)
			defer srv.Close()
			mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
				if readyCalls.Add(1) <= int64(tc.notReady) {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			})
			mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
				// The issuer's public host does not resolve here (as in
				// a cluster whose ingress host is outside): the JWKS is
				// fetched through --url.
				// Its path (/idp) is a proxy's: the server serves the
				// JWKS at contract.JWKSPath.
				d := map[string]string{"issuer": "https://id.example.invalid/idp"}
				if tc.jwksURI {
					d["jwks_uri"] = "https://id.example.invalid/idp" + contract.JWKSPath
				}
				_ = json.NewEncoder(w).Encode(d)
			})
			mux.Handle(contract.JWKSPath, f)
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			v := newVerifyLoad(verifyConfig{url: srv.URL, checkWait: 2 * time.Minute}, srv.Client(), func() time.Time { return now })
			var out strings.Builder
			err := v.check(context.Background(), &out, func(d time.Duration) { now = now.Add(d) })
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("check failed: %v", err)
			case tc.want == "" && !strings.Contains(out.String(), "publishes 1 keys"):
				t.Fatalf("check said %q", out.String())
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

// TestPinnedCertificate: --pinned-certificate trusts exactly the pinned
// server certificate, whatever names it carries.
func TestPinnedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	// Another certificate for the same names (httptest's servers share one).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{"localhost", "example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	otherDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pinFile := func(name string, ders ...[]byte) string {
		f := filepath.Join(dir, name)
		var b []byte
		for _, der := range ders {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no pem here"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		file string
		want string // "" success, else part of the error
	}{
		"the server's own certificate": {file: pinFile("own.pem", srv.Certificate().Raw)},
		"own, then a chain":            {file: pinFile("chain.pem", srv.Certificate().Raw, otherDER)},
		"another certificate":          {file: pinFile("other.pem", otherDER), want: "is not the one of --pinned-certificate"},
		"only after another one":       {file: pinFile("second.pem", otherDER, srv.Certificate().Raw), want: "is not the one of --pinned-certificate"},
		"no certificate in the file":   {file: empty, want: "holds no PEM certificate"},
		"no file":                      {file: filepath.Join(dir, "missing.pem"), want: "no such file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tr, err := pinnedTransport(tc.file)
			if err == nil {
				// The test server's certificate names 127.0.0.1 and
				// example.com; reach it by another name.
				u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
				var resp *http.Response
				if resp, err = (&http.Client{Transport: tr}).Get(u); err == nil {
					resp.Body.Close()
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("request failed: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

// --pinned-certificate pins an https server: with an http URL it is an error,
// not silently ignored.
func TestPinnedCertificateNeedsHTTPS(t *testing.T) {
	var out, errOut strings.Builder
	err := runVerifyLoad(t.Context(), []string{"--check", "--url=http://app.ns.svc", "--pinned-certificate=/tls/tls.crt"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "must be https") {
		t.Fatalf("error %v, want one saying --url must be https", err)
	}
}
