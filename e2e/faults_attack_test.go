package e2e_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAttackTokenConfusion: tokens of other kinds, all issued by the server
// itself, are not access tokens: the ID token and the refresh tokens of
// /v1/auth, /api/user/authenticate and /access-tokens are refused where an
// access token is required, and access or ID tokens are not refresh tokens.
// With --id-token-audience set to the issuer, an ID token has the issuer,
// audience and key of an access token and differs only in its type.
func TestAttackTokenConfusion(t *testing.T) {
	t.Parallel()
	for _, sameAudience := range []bool{false, true} {
		t.Run(fmt.Sprintf("id-token-audience-is-issuer=%v", sameAudience), func(t *testing.T) {
			t.Parallel()
			o := serverOptions{}
			if sameAudience {
				o.port = freePort(t)
				o.args = []string{"--id-token-audience", fmt.Sprintf("http://127.0.0.1:%d", o.port)}
			}
			s := startServerOpts(t, o)
			u := s.signup(t, "confusion")
			r := s.do(t, "POST", "/v1/auth", map[string]any{"username": u.Email, "password": u.Password})
			must(t, r, http.StatusOK)
			var v1 struct {
				Tokens struct{ IDToken, AccessToken, RefreshToken string }
			}
			r.decode(t, &v1)
			r = s.do(t, "POST", "/api/user/authenticate", map[string]any{"userName": u.Email, "password": u.Password})
			must(t, r, http.StatusOK)
			var ua struct{ AccessToken, RefreshToken string }
			r.decode(t, &ua)
			for _, sec := range []string{v1.Tokens.IDToken, v1.Tokens.AccessToken, v1.Tokens.RefreshToken, ua.AccessToken, ua.RefreshToken} {
				if sec == "" {
					t.Fatalf("a dialect returned an empty token: %+v %+v", v1, ua)
				}
				s.remember(sec)
			}
			if sameAudience {
				_, p, _ := tokenParts(t, v1.Tokens.IDToken)
				if p["aud"] != s.Issuer || p["iss"] != s.Issuer {
					t.Fatalf("ID token claims %v: want iss and aud %s for this case", p, s.Issuer)
				}
			}

			// Controls: the real access tokens work.
			for _, tok := range []string{u.JWT, v1.Tokens.AccessToken, ua.AccessToken} {
				expect(t, s.do(t, "GET", "/me", nil, withToken(tok)), http.StatusOK)
			}
			notAccess := map[string]string{
				"ID token of /v1/auth":                    v1.Tokens.IDToken,
				"refresh token of /v1/auth":               v1.Tokens.RefreshToken,
				"refresh token of /api/user/authenticate": ua.RefreshToken,
				"refresh token of POST /users":            u.Refresh,
			}
			for name, tok := range notAccess {
				t.Run(name+" as an access token", func(t *testing.T) {
					expect(t, s.do(t, "GET", "/me", nil, withToken(tok)), http.StatusUnauthorized)
					expect(t, s.do(t, "GET", "/ideas", nil, withBearer(tok)), http.StatusUnauthorized)
					expect(t, s.do(t, "POST", "/ideas", ideaBody("confused", 1, 1, 1), withToken(tok)), http.StatusUnauthorized)
					expect(t, s.do(t, "POST", "/api-clients", map[string]any{"name": "confused"}, withToken(tok)), http.StatusUnauthorized)
				})
			}
			notRefresh := map[string]string{
				"ID token":                      v1.Tokens.IDToken,
				"access token of /v1/auth":      v1.Tokens.AccessToken,
				"access token of POST /users":   u.JWT,
				"access token of /api/user/...": ua.AccessToken,
			}
			for name, tok := range notRefresh {
				t.Run(name+" as a refresh token", func(t *testing.T) {
					expect(t, s.refresh(t, tok), http.StatusUnauthorized)
					r := s.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{"refreshtoken": tok})
					if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "Invalid Refresh Token") {
						t.Errorf("%s: want 400 Invalid Refresh Token", r)
					}
				})
			}
			// Nothing above ended a session.
			expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
			expect(t, s.refresh(t, u.Refresh), http.StatusOK)
		})
	}
}

// serverKey reads the private RSA key of kid from the server's key file:
// the test plays an attacker who holds the real signing key but must still
// not get past the claim and header rules, and uses it to prove its forging
// machinery works (the control token is accepted).
func serverKey(t *testing.T, s *server, kid string) *rsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(s.KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []struct {
			Kid     string            `json:"kid"`
			Private map[string]string `json:"private"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("key file %s: %v", s.KeysPath, err)
	}
	num := func(m map[string]string, k string) *big.Int {
		b, err := base64.RawURLEncoding.DecodeString(m[k])
		if err != nil || len(b) == 0 {
			t.Fatalf("key file: private JWK member %q: %v", k, err)
		}
		return new(big.Int).SetBytes(b)
	}
	for _, k := range doc.Keys {
		if k.Kid != kid {
			continue
		}
		if k.Private["kty"] != "RSA" {
			t.Fatalf("key %s is %s, want RSA", kid, k.Private["kty"])
		}
		priv := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: num(k.Private, "n"), E: int(num(k.Private, "e").Int64())},
			D:         num(k.Private, "d"),
			Primes:    []*big.Int{num(k.Private, "p"), num(k.Private, "q")},
		}
		if err := priv.Validate(); err != nil {
			t.Fatalf("key %s: %v", kid, err)
		}
		priv.Precompute()
		return priv
	}
	t.Fatalf("kid %s is not in the key file", kid)
	return nil
}

// signRS256 signs raw header and payload JSON, exactly as given.
func signRS256(t *testing.T, priv *rsa.PrivateKey, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// TestAttackForgedWithOurKey: tokens signed with the server's own active
// key are still refused when their header or claims break the rules:
// duplicate claims or header members, a missing or malformed exp, another
// issuer or audience, the wrong typ, keys named by the token (jwk, jku,
// x5u, x5c), injected kids, alg none in any letter case.
func TestAttackForgedWithOurKey(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.signup(t, "forger")
	victim := s.signup(t, "forger-victim")
	h, claims, parts := tokenParts(t, u.JWT)
	_, vclaims, _ := tokenParts(t, victim.JWT)
	kid, _ := h["kid"].(string)
	priv := serverKey(t, s, kid)

	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	fresh := func(kv ...any) string { // the real claims, fresh times, edited
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		c["iat"] = time.Now().Unix()
		c["exp"] = time.Now().Add(5 * time.Minute).Unix()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return js(c)
	}
	// appendMember adds a raw member at the end of a JSON object: a
	// duplicate that last-wins parsers would read.
	appendMember := func(obj, name string, v any) string {
		return strings.TrimSuffix(obj, "}") + "," + js(name) + ":" + js(v) + "}"
	}
	hdr := func(kv ...any) string {
		m := map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return js(m)
	}
	pubJWK := map[string]any{"kty": "RSA", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(priv.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(priv.E)).Bytes())}

	control := signRS256(t, priv, hdr(), fresh())
	s.remember(control)
	if r := s.do(t, "GET", "/me", nil, withToken(control)); r.Status != http.StatusOK {
		t.Fatalf("control: a token re-signed with the key file's key is refused, so the cases below prove nothing: %s", r)
	}

	cases := map[string]struct{ header, payload string }{
		"duplicate sub (the victim's last)":  {hdr(), appendMember(fresh(), "sub", vclaims["sub"])},
		"duplicate sid (the victim's last)":  {hdr(), appendMember(fresh(), "sid", vclaims["sid"])},
		"duplicate email":                    {hdr(), appendMember(fresh(), "email", vclaims["email"])},
		"duplicate exp (a later one last)":   {hdr(), appendMember(fresh(), "exp", time.Now().Add(48*time.Hour).Unix())},
		"duplicate iss":                      {hdr(), appendMember(fresh(), "iss", "https://evil.example")},
		"duplicate alg in the header (none)": {appendMember(hdr(), "alg", "none"), fresh()},
		"duplicate kid in the header":        {appendMember(hdr(), "kid", "../../etc/passwd"), fresh()},
		"exp missing":                        {hdr(), fresh("exp", nil)},
		"exp null":                           {hdr(), strings.Replace(fresh(), `"exp":`, `"exp":null,"x":`, 1)},
		"exp a string":                       {hdr(), fresh("exp", fmt.Sprint(time.Now().Add(time.Hour).Unix()))},
		"exp in the past":                    {hdr(), fresh("exp", time.Now().Add(-time.Minute).Unix())},
		"iat missing":                        {hdr(), fresh("iat", nil)},
		"iss of another issuer":              {hdr(), fresh("iss", "https://other-issuer.example")},
		"iss missing":                        {hdr(), fresh("iss", nil)},
		"aud of another audience":            {hdr(), fresh("aud", "https://other-api.example")},
		"aud an array without us":            {hdr(), fresh("aud", []string{"https://other-api.example"})},
		"aud missing":                        {hdr(), fresh("aud", nil)},
		"typ JWT (an ID token's)":            {hdr("typ", "JWT"), fresh()},
		"typ missing":                        {hdr("typ", nil), fresh()},
		"embedded jwk header (our own key)":  {hdr("jwk", pubJWK), fresh()},
		"jku header":                         {hdr("jku", "https://evil.example/jwks.json"), fresh()},
		"x5u header":                         {hdr("x5u", "https://evil.example/cert.pem"), fresh()},
		"x5c header":                         {hdr("x5c", []string{"MIIBkTCB+wIJAA=="}), fresh()},
		"crit header":                        {hdr("crit", []string{"exp"}), fresh()},
		"kid path traversal":                 {hdr("kid", "../../../../etc/passwd"), fresh()},
		"kid path traversal to /dev/null":    {hdr("kid", "../../../../../../dev/null"), fresh()},
		"kid SQL injection":                  {hdr("kid", "x' UNION SELECT 'secret' --"), fresh()},
		"kid SQL injection 2":                {hdr("kid", kid+"'; DROP TABLE sessions; --"), fresh()},
		"kid with a NUL":                     {hdr("kid", kid+"\x00"), fresh()},
		"kid empty":                          {hdr("kid", ""), fresh()},
		"kid missing":                        {hdr("kid", nil), fresh()},
		"kid a number":                       {hdr("kid", 1), fresh()},
		"kid an object":                      {hdr("kid", map[string]any{"kid": kid}), fresh()},
		"kid a URL":                          {hdr("kid", "https://evil.example/key.pem"), fresh()},
		"kid of another case":                {hdr("kid", strings.ToUpper(kid)), fresh()},
		"alg RS512 over an RS256 signature":  {hdr("alg", "RS512"), fresh()},
		"alg PS256 over an RS256 signature":  {hdr("alg", "PS256"), fresh()},
		"alg rs256 (lower case)":             {hdr("alg", "rs256"), fresh()},
		"claims not an object":               {hdr(), `["sub"]`},
		"claims with trailing data":          {hdr(), fresh() + `{"sub":"x"}`},
	}
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "NoNe"} {
		cases["alg "+alg+" signed"] = struct{ header, payload string }{hdr("alg", alg), fresh()}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tok := signRS256(t, priv, tc.header, tc.payload)
			expect(t, s.do(t, "GET", "/me", nil, withToken(tok)), http.StatusUnauthorized)
			expect(t, s.do(t, "GET", "/ideas", nil, withBearer(tok)), http.StatusUnauthorized)
		})
	}
	// Unsigned and half-signed variants of alg none.
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		h := base64.RawURLEncoding.EncodeToString([]byte(hdr("alg", alg)))
		p := base64.RawURLEncoding.EncodeToString([]byte(fresh()))
		for name, tok := range map[string]string{
			"alg " + alg + " empty signature":       h + "." + p + ".",
			"alg " + alg + " with a real signature": h + "." + parts[1] + "." + parts[2],
		} {
			t.Run(name, func(t *testing.T) {
				expect(t, s.do(t, "GET", "/me", nil, withToken(tok)), http.StatusUnauthorized)
			})
		}
	}
	// The real token, its signature spelled differently: RFC 7515 allows
	// only unpadded base64url, and one token must have one spelling (deny
	// lists and replay caches compare strings).
	for name, sig := range map[string]string{
		"padded":            parts[2] + strings.Repeat("=", (4-len(parts[2])%4)%4),
		"standard alphabet": strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]),
		"other unused bits": bumpLastChar(parts[2]),
	} {
		if sig == parts[2] {
			continue
		}
		t.Run("real token, signature re-encoded: "+name, func(t *testing.T) {
			expect(t, s.do(t, "GET", "/me", nil, withToken(parts[0]+"."+parts[1]+"."+sig)), http.StatusUnauthorized)
		})
	}
	t.Run("empty signature of a real token", func(t *testing.T) {
		expect(t, s.do(t, "GET", "/me", nil, withToken(parts[0]+"."+parts[1]+".")), http.StatusUnauthorized)
	})
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
}

// bumpLastChar moves the last base64url character of seg one place on in
// the alphabet: for a segment whose length is not a multiple of 4 this
// changes only bits that decode to nothing.
func bumpLastChar(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[(i+1)%64])
}
