package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testDiscovery(t *testing.T, s *server) {
	r := s.do(t, "GET", "/.well-known/openid-configuration", nil)
	must(t, r, http.StatusOK)
	checkDiscovery(t, s, r)
}

func checkDiscovery(t *testing.T, s *server, r response) {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(r.Body, &d); err != nil {
		t.Fatalf("%s: not JSON", r)
	}
	if d["issuer"] != s.Issuer {
		t.Errorf("%s: issuer = %v, want the --issuer value %s", r, d["issuer"], s.Issuer)
	}
	uri, _ := d["jwks_uri"].(string)
	if u, err := url.Parse(uri); err != nil || !u.IsAbs() || u.Host == "" {
		t.Errorf("%s: jwks_uri %q is not absolute", r, uri)
	}
	lists := func(member, alg string) bool {
		list, _ := d[member].([]any)
		for _, a := range list {
			if a == alg {
				return true
			}
		}
		return false
	}
	if !lists("id_token_signing_alg_values_supported", s.alg()) {
		t.Errorf("%s: id_token_signing_alg_values_supported lacks the signing algorithm %s", r, s.alg())
	}
	// Client JWTs (the JSON-RPC dialect) may be HS256 with a client secret,
	// or signed with a registered key.
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		if !lists("token_endpoint_auth_signing_alg_values_supported", alg) {
			t.Errorf("%s: token_endpoint_auth_signing_alg_values_supported lacks %s", r, alg)
		}
	}
}

var maxAgeRE = regexp.MustCompile(`(?i)(?:^|[,\s])max-age=(\d+)`)

func testJWKS(t *testing.T, s *server) {
	u := s.signup(t, "jwks")
	checkJWKS(t, s, u.JWT)
}

// checkJWKS checks the JWKS document, its caching headers and that the
// token's key is in it.
func checkJWKS(t *testing.T, s *server, tok string) {
	t.Helper()
	r, keys := s.jwkSet(t)
	if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("%s: Content-Type = %q, want JSON", r.What, ct)
	}
	cc := r.Header.Get("Cache-Control")
	if !regexp.MustCompile(`(?i)(^|[,\s])public($|[,\s])`).MatchString(cc) {
		t.Errorf("%s: Cache-Control = %q, want public", r.What, cc)
	}
	if m := maxAgeRE.FindStringSubmatch(cc); m == nil {
		t.Errorf("%s: Cache-Control = %q, want max-age", r.What, cc)
	} else if n, _ := strconv.Atoi(m[1]); n <= 0 || n >= 3600 {
		t.Errorf("%s: Cache-Control max-age=%d, want 0 < N < 3600 (shorter than the 1 h publish-ahead)", r.What, n)
	}
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Errorf("%s: no ETag", r.What)
	} else {
		v := s.jwks(t)
		nm := s.doURL(t, "GET", v.jwksURI, nil, true, withHeader("If-None-Match", etag))
		expect(t, nm, http.StatusNotModified)
		if len(nm.Body) != 0 {
			t.Errorf("%s: a 304 has no body", nm)
		}
		other := s.doURL(t, "GET", v.jwksURI, nil, true, withHeader("If-None-Match", `"not-the-etag"`))
		expect(t, other, http.StatusOK)
	}
	kids := map[string]map[string]any{}
	for _, k := range keys {
		kid, _ := k["kid"].(string)
		if kid == "" {
			t.Errorf("JWK %v: no kid", k)
		}
		kids[kid] = k
		if a, _ := k["alg"].(string); a == "" {
			t.Errorf("JWK %s: no alg", kid)
		}
		if k["use"] != "sig" {
			t.Errorf("JWK %s: use = %v, want sig", kid, k["use"])
		}
		for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[priv]; ok {
				t.Errorf("JWK %s publishes the private member %q", kid, priv)
			}
		}
		if tp := thumbprint(t, k); tp != kid {
			t.Errorf("JWK kid %q is not its RFC 7638 thumbprint %q", kid, tp)
		}
	}
	h, _, _ := tokenParts(t, tok)
	kid, _ := h["kid"].(string)
	k, ok := kids[kid]
	if !ok {
		t.Errorf("token kid %q is not in the JWKS (kids %v)", kid, keysOf(anyMap(kids)))
		return
	}
	if k["alg"] != s.alg() || h["alg"] != s.alg() {
		t.Errorf("JWK alg %v / token alg %v, want %s", k["alg"], h["alg"], s.alg())
	}
	wantKty := map[string]string{"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}[s.alg()]
	if k["kty"] != wantKty {
		t.Errorf("JWK %s: kty = %v, want %s for %s", kid, k["kty"], wantKty, s.alg())
	}
	switch s.alg() {
	case "ES256":
		if k["crv"] != "P-256" {
			t.Errorf("JWK %s: crv = %v, want P-256", kid, k["crv"])
		}
	case "EdDSA":
		if k["crv"] != "Ed25519" {
			t.Errorf("JWK %s: crv = %v, want Ed25519", kid, k["crv"])
		}
	}
}

func anyMap[V any](m map[string]V) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// rsaPublic returns the server's RSA public key of kid from the JWKS.
func rsaPublic(t *testing.T, s *server, kid string) (*rsa.PublicKey, []byte) {
	t.Helper()
	r, keys := s.jwkSet(t)
	_ = r
	for _, k := range keys {
		if k["kid"] != kid {
			continue
		}
		raw, _ := json.Marshal(k)
		n, err1 := base64.RawURLEncoding.DecodeString(k["n"].(string))
		e, err2 := base64.RawURLEncoding.DecodeString(k["e"].(string))
		if err1 != nil || err2 != nil {
			t.Fatalf("JWK %s: bad n/e", kid)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, raw
	}
	t.Fatalf("kid %s not in the JWKS", kid)
	return nil, nil
}

// signWith signs claims with a header (alg from method) using key.
func signWith(t *testing.T, method jwt.SigningMethod, header map[string]any, claims jwt.MapClaims, key any) string {
	t.Helper()
	tk := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tk.Header[k] = v
	}
	str, err := tk.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", method.Alg(), err)
	}
	return str
}

func testAttacks(t *testing.T, s *server) {
	u := s.signup(t, "attack")
	victim := s.signup(t, "attack-victim")
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	h, payload, parts := tokenParts(t, u.JWT)
	_, _, vparts := tokenParts(t, victim.JWT)
	kid, _ := h["kid"].(string)

	// Fresh claims equal to the real token's, for re-signing.
	claims := jwt.MapClaims{}
	for k, v := range payload {
		claims[k] = v
	}
	claims["exp"] = time.Now().Add(5 * time.Minute).Unix()
	claims["iat"] = time.Now().Unix()

	type attack struct{ name, token string }
	var attacks []attack
	add := func(name, tok string) { attacks = append(attacks, attack{name, tok}) }

	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		hdr := b64json(t, map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid})
		add("alg "+alg+" without signature", hdr+"."+parts[1]+".")
		add("alg "+alg+" with the original signature", hdr+"."+parts[1]+"."+parts[2])
		add("alg "+alg+" fresh claims", hdr+"."+b64json(t, claims)+".")
	}
	add("alg missing", b64json(t, map[string]any{"typ": "at+jwt", "kid": kid})+"."+parts[1]+"."+parts[2])

	if h["alg"] == "RS256" {
		pub, rawJWK := rsaPublic(t, s, kid)
		pkix, _ := x509.MarshalPKIXPublicKey(pub)
		pkcs1 := x509.MarshalPKCS1PublicKey(pub)
		secrets := map[string][]byte{
			"PKIX PEM":          pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
			"PKCS1 PEM":         pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
			"PKIX DER":          pkix,
			"PKCS1 DER":         pkcs1,
			"modulus":           pub.N.Bytes(),
			"JWK JSON":          rawJWK,
			"PKIX PEM no \\n":   []byte(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})))),
			"base64url modulus": []byte(base64.RawURLEncoding.EncodeToString(pub.N.Bytes())),
		}
		for name, secret := range secrets {
			for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
				add(m.Alg()+" keyed with the public key as "+name, signWith(t, m, map[string]any{"kid": kid, "typ": "at+jwt"}, claims, secret))
			}
		}
		add("RS512 header over an RS256 signature", b64json(t, map[string]any{"alg": "RS512", "typ": "at+jwt", "kid": kid})+"."+parts[1]+"."+parts[2])
		add("PS256 header over an RS256 signature", b64json(t, map[string]any{"alg": "PS256", "typ": "at+jwt", "kid": kid})+"."+parts[1]+"."+parts[2])
	}

	foreignRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	foreignEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	add("foreign RSA key with our kid", signWith(t, jwt.SigningMethodRS256, map[string]any{"kid": kid, "typ": "at+jwt"}, claims, foreignRSA))
	add("foreign RSA key without kid", signWith(t, jwt.SigningMethodRS256, map[string]any{"typ": "at+jwt"}, claims, foreignRSA))
	add("foreign EC key with our kid", signWith(t, jwt.SigningMethodES256, map[string]any{"kid": kid, "typ": "at+jwt"}, claims, foreignEC))
	embedded := map[string]any{
		"kty": "RSA",
		"n":   base64.RawURLEncoding.EncodeToString(foreignRSA.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(foreignRSA.E)).Bytes()),
	}
	add("foreign key embedded as jwk header", signWith(t, jwt.SigningMethodRS256, map[string]any{"typ": "at+jwt", "jwk": embedded}, claims, foreignRSA))
	add("foreign key embedded as jwk header with our kid", signWith(t, jwt.SigningMethodRS256, map[string]any{"kid": kid, "typ": "at+jwt", "jwk": embedded}, claims, foreignRSA))
	add("foreign key via jku", signWith(t, jwt.SigningMethodRS256, map[string]any{"kid": kid, "typ": "at+jwt", "jku": "http://127.0.0.1:1/jwks.json"}, claims, foreignRSA))

	tamper := func(name string, f func(map[string]any)) {
		p := map[string]any{}
		for k, v := range payload {
			p[k] = v
		}
		f(p)
		add("tampered payload: "+name, parts[0]+"."+b64json(t, p)+"."+parts[2])
	}
	tamper("email", func(p map[string]any) { p["email"] = victim.Email })
	tamper("sub", func(p map[string]any) { p["sub"] = "someone-else" })
	tamper("exp", func(p map[string]any) { p["exp"] = time.Now().Add(24 * time.Hour).Unix() })
	tamper("extra claim", func(p map[string]any) { p["admin"] = true })
	add("tampered header kid", b64json(t, map[string]any{"alg": h["alg"], "typ": "at+jwt", "kid": kid + "x"})+"."+parts[1]+"."+parts[2])
	add("another token's signature", parts[0]+"."+parts[1]+"."+vparts[2])
	add("empty signature", parts[0]+"."+parts[1]+".")
	add("two parts", parts[0]+"."+parts[1])
	add("four parts", u.JWT+"."+parts[2])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if len(sig) > 0 {
		sig[len(sig)/2] ^= 1
		add("flipped signature bit", parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig))
	}
	add("JWS JSON serialization", `{"protected":"`+parts[0]+`","payload":"`+parts[1]+`","signature":"`+parts[2]+`"}`)

	// Control: the independent verifier accepts the real token and refuses
	// the forgeries, so the checks above are not vacuous.
	if !s.independentlyValid(t, u.JWT) {
		t.Errorf("control: the independent verifier refuses the real token")
	}
	for _, a := range attacks {
		if s.independentlyValid(t, a.token) {
			t.Errorf("control: the independent verifier accepts the forgery %q", a.name)
		}
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			expect(t, s.do(t, "GET", "/me", nil, withToken(a.token)), http.StatusUnauthorized)
			expect(t, s.do(t, "GET", "/ideas", nil, withBearer(a.token)), http.StatusUnauthorized)
		})
	}
	// The real token still works after all that.
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
}

// TestAlgorithms: servers with --key-algorithm ES256 and EdDSA issue tokens
// that verify with that algorithm through the JWKS.
func TestAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "--key-algorithm", alg)
			s.Alg = alg
			u := s.signup(t, "alg")
			checkJWKS(t, s, u.JWT)
			testDiscovery(t, s)
			expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
			r := s.login(t, u.Email, u.Password)
			must(t, r, http.StatusCreated)
			s.tokenPair(t, r)
			r = s.refresh(t, u.Refresh)
			must(t, r, http.StatusOK)
			s.verify(t, r.object(t)["jwt"].(string))
			s.createIdea(t, u.JWT, "alg "+alg, 1, 2, 3)
			// A token signed by a foreign key of the same kind, with our kid.
			h, payload, _ := tokenParts(t, u.JWT)
			claims := jwt.MapClaims{}
			for k, v := range payload {
				claims[k] = v
			}
			foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			forged := signWith(t, jwt.SigningMethodES256, map[string]any{"kid": h["kid"], "typ": "at+jwt"}, claims, foreign)
			expect(t, s.do(t, "GET", "/me", nil, withToken(forged)), http.StatusUnauthorized)
			hdr := b64json(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": h["kid"]})
			expect(t, s.do(t, "GET", "/me", nil, withToken(hdr+"."+b64json(t, claims)+".")), http.StatusUnauthorized)
		})
	}
}

// TestAccessTokenTTL: --access-token-ttl 2m gives exp - iat = 2 min.
func TestAccessTokenTTL(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--access-token-ttl", "2m")
	s.TTL = 2 * time.Minute
	u := s.signup(t, "ttl")
	r := s.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	s.tokenPair(t, r)
	r = s.refresh(t, u.Refresh)
	must(t, r, http.StatusOK)
	s.verify(t, r.object(t)["jwt"].(string))
}

// TestExpiredToken: with --access-token-ttl 1s, a token is refused 7 s later
// (the leeway is at most 5 s); the refresh token then gets a new one.
func TestExpiredToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--access-token-ttl", "1s")
	s.TTL = time.Second
	u := s.signup(t, "expiry")
	issued := time.Now()
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	idea := s.createIdea(t, u.JWT, "expiry", 1, 1, 1)
	time.Sleep(time.Until(issued.Add(7 * time.Second)))
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/me", nil, withBearer(u.JWT)), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/ideas", nil, withToken(u.JWT)), http.StatusUnauthorized)
	expect(t, s.do(t, "PUT", "/ideas/"+idea.ID, ideaBody("x", 2, 2, 2), withToken(u.JWT)), http.StatusUnauthorized)
	expect(t, s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": u.Refresh}, withToken(u.JWT)), http.StatusUnauthorized)
	// As the seed says: once expired, refresh.
	r := s.refresh(t, u.Refresh)
	must(t, r, http.StatusOK)
	fresh := r.object(t)["jwt"].(string)
	s.remember(fresh)
	s.verify(t, fresh)
	expect(t, s.do(t, "GET", "/me", nil, withToken(fresh)), http.StatusOK)
	if list := s.listIdeas(t, fresh, ""); len(list) != 1 || list[0].ID != idea.ID {
		t.Errorf("after refresh, GET /ideas = %s", ids(list))
	}
}

// TestRefreshTokenAbsoluteExpiry: --refresh-token-ttl counts from login;
// using the refresh token does not extend it.
func TestRefreshTokenAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--access-token-ttl", "2s", "--refresh-token-ttl", "6s")
	s.TTL = 2 * time.Second
	u := s.signup(t, "abs")
	start := time.Now()
	for _, at := range []time.Duration{1500 * time.Millisecond, 3500 * time.Millisecond} {
		time.Sleep(time.Until(start.Add(at)))
		r := s.refresh(t, u.Refresh)
		expect(t, r, http.StatusOK)
	}
	time.Sleep(time.Until(start.Add(7500 * time.Millisecond)))
	expect(t, s.refresh(t, u.Refresh), http.StatusUnauthorized)
	r := s.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	_, refresh := s.tokenPair(t, r)
	expect(t, s.refresh(t, refresh), http.StatusOK)
}
