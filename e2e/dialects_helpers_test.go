package e2e_test

// Helpers of dialects_test.go: an independent client of the three extra auth
// dialects (seeds 000, 001, 002 and issue 3), written from those documents
// only. Every name here starts with "dl" so as not to collide with the rest
// of the package.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ---------------------------------------------------------------- accounts

// dlAccount is a user created through POST /users.
type dlAccount struct {
	Email, Name, Password, Username string
	JWT, Refresh, Sub               string
}

var dlSeq atomic.Int64

// dlSignup creates an account (with a username unless it is "") and checks
// the 201 {jwt, refresh_token}.
func dlSignup(t testing.TB, s *server, tag, username string) *dlAccount {
	t.Helper()
	a := &dlAccount{
		Email:    uniqueEmail("dl-" + tag),
		Name:     "Dl " + tag,
		Password: fmt.Sprintf("Dl-Secret-%d-%s", dlSeq.Add(1), tag),
		Username: username,
	}
	s.remember(a.Password)
	body := map[string]any{"email": a.Email, "name": a.Name, "password": a.Password}
	if username != "" {
		body["username"] = username
	}
	r := s.do(t, "POST", "/users", body)
	must(t, r, http.StatusCreated)
	a.JWT, a.Refresh = s.tokenPair(t, r)
	if c := s.verify(t, a.JWT); c != nil {
		a.Sub, _ = c["sub"].(string)
	}
	if a.Sub == "" {
		t.Fatalf("signup of %s: the access token has no sub", a.Email)
	}
	return a
}

// dlCLI runs "ideapool users ARGS..." on the server's SQLite database with
// stdin as standard input.
func dlCLI(t testing.TB, s *server, stdin string, sub string, args ...string) string {
	t.Helper()
	full := append([]string{"users", sub, "--database", "sqlite:" + filepath.Join(s.Dir, "db")}, args...)
	cmd := exec.Command(binary, full...)
	cmd.Env = cleanEnv()
	cmd.Dir = s.Dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ideapool %v: %v\n%s", full, err, out)
	}
	if stdin != "" && strings.Contains(string(out), strings.TrimSpace(stdin)) {
		t.Errorf("ideapool %v prints the password it read from stdin:\n%s", full, out)
	}
	return string(out)
}

// ---------------------------------------------------------------- JSON

func dlDecode(t testing.TB, what string, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON: %v", what, err)
	}
	if d.More() {
		t.Fatalf("%s: trailing data after the JSON value", what)
	}
	return v
}

// dlExact checks status and that the body is exactly the JSON want (same
// members, same values; order and spacing aside).
func dlExact(t testing.TB, r response, status int, want string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: want status %d with exactly %s", r, status, want)
		return
	}
	got := dlDecode(t, r.String(), r.Body)
	w := dlDecode(t, "want", []byte(want))
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s: want exactly the body %s", r, want)
	}
}

func dlJSONLit(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---------------------------------------------------------------- seed 001

const (
	dlV1LoginFailed  = `{"statusCode":400,"statusMessage":"Login failed","error":"Incorrect username or password."}`
	dlV1Missing      = `{"statusCode":400,"statusMessage":"Missing refresh token"}`
	dlV1InvalidToken = `{"statusCode":400,"statusMessage":"Failed to refresh token","error":"Invalid Refresh Token"}`
)

func dlV1Login(t testing.TB, s *server, username, password string) response {
	t.Helper()
	return s.do(t, "POST", "/v1/auth", map[string]any{"username": username, "password": password})
}

func dlV1Refresh(t testing.TB, s *server, refresh string) response {
	t.Helper()
	return s.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{"refreshtoken": refresh})
}

// dlV1Tokens are the three tokens of a seed-001 success.
type dlV1Tokens struct {
	ID, Access, Refresh string
	IDClaims            jwt.MapClaims
	AccessClaims        jwt.MapClaims
}

// dlIDRules: what an ID token of this server must satisfy.
type dlIDRules struct {
	Audience string
	TTL      time.Duration
}

func dlDefaultID() dlIDRules { return dlIDRules{Audience: "ideapool", TTL: time.Hour} }

// dlV1OK checks a 200 with exactly the seed-001 shape, verifies the access
// token and the ID token, and checks both are about acct.
func dlV1OK(t testing.TB, s *server, r response, acct *dlAccount, rules dlIDRules) dlV1Tokens {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: want 200 {statusCode:200, statusMessage:OK, tokens:{idToken, accessToken, refreshToken}}", r)
	}
	m := r.object(t)
	if !sameKeys(m, "statusCode", "statusMessage", "tokens") {
		t.Errorf("%s: want exactly the members statusCode, statusMessage, tokens; got %v", r, keysOf(m))
	}
	if n, ok := m["statusCode"].(json.Number); !ok || n.String() != "200" {
		t.Errorf("%s: statusCode = %#v, want the number 200", r, m["statusCode"])
	}
	if m["statusMessage"] != "OK" {
		t.Errorf("%s: statusMessage = %#v, want \"OK\"", r, m["statusMessage"])
	}
	toks, _ := m["tokens"].(map[string]any)
	if !sameKeys(toks, "idToken", "accessToken", "refreshToken") {
		t.Errorf("%s: tokens must hold exactly idToken, accessToken, refreshToken; got %v", r, keysOf(toks))
	}
	var out dlV1Tokens
	out.ID, _ = toks["idToken"].(string)
	out.Access, _ = toks["accessToken"].(string)
	out.Refresh, _ = toks["refreshToken"].(string)
	if out.ID == "" || out.Access == "" || out.Refresh == "" {
		t.Fatalf("%s: idToken, accessToken and refreshToken must be non-empty strings", r)
	}
	s.remember(out.ID)
	s.remember(out.Access)
	s.remember(out.Refresh)
	checkRefreshTokenEntropy(t, out.Refresh)
	out.AccessClaims = s.verify(t, out.Access)
	if out.AccessClaims != nil && acct != nil && out.AccessClaims["sub"] != acct.Sub {
		t.Errorf("%s: access token sub = %v, want the user's %q", r.What, out.AccessClaims["sub"], acct.Sub)
	}
	out.IDClaims = dlCheckIDToken(t, s, out.ID, acct, rules)
	dlNotAnIDToken(t, s, out.Access, rules)
	return out
}

// dlIDParser validates OpenID Connect ID tokens of s (everything but typ,
// which golang-jwt does not check; dlCheckIDToken does).
func dlIDParser(s *server, aud string) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{s.alg()}),
		jwt.WithIssuer(s.Issuer),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
	)
}

// dlCheckIDToken verifies an ID token through the JWKS and checks its header
// and claims (issue 3, seed 001).
func dlCheckIDToken(t testing.TB, s *server, tok string, acct *dlAccount, rules dlIDRules) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	tk, err := dlIDParser(s, rules.Audience).ParseWithClaims(tok, claims, s.jwks(t).kf.Keyfunc)
	if err != nil {
		t.Errorf("the ID token does not verify through the JWKS as an ID token with aud %q: %v\ntoken: %s", rules.Audience, err, tok)
		h, p, _ := tokenParts(t, tok)
		t.Logf("ID token header %v claims %v", h, p)
		return nil
	}
	if typ, _ := tk.Header["typ"].(string); typ != "JWT" {
		t.Errorf("ID token header %v: typ = %q, want \"JWT\"", tk.Header, typ)
	}
	if kid, _ := tk.Header["kid"].(string); kid == "" {
		t.Errorf("ID token header %v: no kid", tk.Header)
	}
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "email", "email_verified", "name"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("ID token claims %v: no %q", claims, c)
		}
	}
	if aud, _ := claims.GetAudience(); len(aud) != 1 || aud[0] != rules.Audience {
		t.Errorf("ID token claims: aud = %#v, want %q", claims["aud"], rules.Audience)
	}
	if _, ok := claims["email_verified"].(bool); !ok {
		t.Errorf("ID token claims: email_verified = %#v, want a boolean", claims["email_verified"])
	}
	at, ok := claims["auth_time"].(float64)
	if !ok {
		t.Errorf("ID token claims: auth_time = %#v, want a NumericDate", claims["auth_time"])
	}
	exp, err1 := claims.GetExpirationTime()
	iat, err2 := claims.GetIssuedAt()
	if err1 != nil || err2 != nil || exp == nil || iat == nil {
		t.Errorf("ID token claims: exp/iat not numeric dates: %v %v", claims["exp"], claims["iat"])
	} else {
		if d := exp.Sub(iat.Time); d != rules.TTL {
			t.Errorf("ID token claims: exp - iat = %v, want the ID token TTL %v", d, rules.TTL)
		}
		if d := time.Since(iat.Time); d < -5*time.Second || d > 60*time.Second {
			t.Errorf("ID token claims: iat %v is not near now", iat.Time)
		}
		if ok && int64(at) > iat.Unix() {
			t.Errorf("ID token claims: auth_time %v is after iat %v", int64(at), iat.Unix())
		}
	}
	if acct != nil {
		if claims["sub"] != acct.Sub {
			t.Errorf("ID token claims: sub = %#v, want the user's %q (as in the access token)", claims["sub"], acct.Sub)
		}
		if claims["email"] != acct.Email {
			t.Errorf("ID token claims: email = %#v, want %q", claims["email"], acct.Email)
		}
		if claims["name"] != acct.Name {
			t.Errorf("ID token claims: name = %#v, want %q", claims["name"], acct.Name)
		}
	}
	return claims
}

// dlNotAnIDToken: an access token fails the validation rules of an ID token
// (RFC 8725 3.12): its typ is not JWT and its aud is not the ID audience.
func dlNotAnIDToken(t testing.TB, s *server, access string, rules dlIDRules) {
	t.Helper()
	h, p, _ := tokenParts(t, access)
	typ, _ := h["typ"].(string)
	if strings.EqualFold(typ, "JWT") {
		t.Errorf("access token header %v: typ %q is the ID token's; the two must be told apart", h, typ)
	}
	auds := []string{}
	switch a := p["aud"].(type) {
	case string:
		auds = append(auds, a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok {
				auds = append(auds, s)
			}
		}
	}
	for _, a := range auds {
		if a == rules.Audience {
			t.Errorf("access token aud %v holds the ID token audience %q: ID and access tokens must differ in typ and aud", p["aud"], rules.Audience)
		}
	}
	if _, err := dlIDParser(s, rules.Audience).Parse(access, s.jwks(t).kf.Keyfunc); err == nil && strings.EqualFold(typ, "JWT") {
		t.Errorf("the access token passes as an ID token")
	}
}

// ---------------------------------------------------------------- seed 002

func dlUALogin(t testing.TB, s *server, userName, password string) response {
	t.Helper()
	return s.do(t, "POST", "/api/user/authenticate", map[string]any{"userName": userName, "password": password})
}

// dlUAWant is what a seed-002 success must say.
type dlUAWant struct {
	UserName   string
	Role       int
	AccessTTL  time.Duration
	RefreshTTL time.Duration
}

// dlUAOK checks a seed-002 200 with every documented field and returns the
// access and refresh tokens.
func dlUAOK(t testing.TB, s *server, r response, acct *dlAccount, w dlUAWant) (string, string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: want 200 with responseKey SUCCESS", r)
	}
	m := r.object(t)
	for _, k := range []string{"accessToken", "email", "fullName", "accessTokenExpiryTime", "refreshToken",
		"refreshTokenExpiryTime", "responseKey", "responseMessage", "role", "userName"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no %q (every documented field must be there)", r, k)
		}
	}
	str := func(k string) string {
		v, ok := m[k].(string)
		if !ok {
			t.Errorf("%s: %s = %#v, want a string", r.What, k, m[k])
		}
		return v
	}
	if v := str("responseKey"); v != "SUCCESS" {
		t.Errorf("%s: responseKey = %q, want SUCCESS", r.What, v)
	}
	if v := str("responseMessage"); v != "Successful request" {
		t.Errorf("%s: responseMessage = %q, want \"Successful request\"", r.What, v)
	}
	if v := str("email"); acct != nil && v != acct.Email {
		t.Errorf("%s: email = %q, want %q", r.What, v, acct.Email)
	}
	if v := str("fullName"); acct != nil && v != acct.Name {
		t.Errorf("%s: fullName = %q, want %q", r.What, v, acct.Name)
	}
	if v := str("userName"); v != w.UserName {
		t.Errorf("%s: userName = %q, want %q", r.What, v, w.UserName)
	}
	if n, ok := m["role"].(json.Number); !ok || n.String() != fmt.Sprint(w.Role) {
		t.Errorf("%s: role = %#v, want the number %d", r.What, m["role"], w.Role)
	}
	access, refresh := str("accessToken"), str("refreshToken")
	if access == "" || refresh == "" {
		t.Fatalf("%s: accessToken and refreshToken must be non-empty", r)
	}
	s.remember(access)
	s.remember(refresh)
	checkRefreshTokenEntropy(t, refresh)
	claims := s.verify(t, access)
	if claims != nil && acct != nil && claims["sub"] != acct.Sub {
		t.Errorf("%s: access token sub = %v, want %q", r.What, claims["sub"], acct.Sub)
	}
	now := time.Now()
	when := func(k string) time.Time {
		v := str(k)
		if !strings.HasSuffix(v, "Z") {
			t.Errorf("%s: %s = %q does not end in Z (ISO 8601 UTC)", r.What, k, v)
		}
		tm, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Errorf("%s: %s = %q is not ISO 8601: %v", r.What, k, v, err)
		}
		return tm
	}
	aexp := when("accessTokenExpiryTime")
	if d := aexp.Sub(now.Add(w.AccessTTL)); d < -10*time.Second || d > 5*time.Second {
		t.Errorf("%s: accessTokenExpiryTime %v is not now + the access TTL %v (now %v)", r.What, aexp, w.AccessTTL, now.UTC())
	}
	if claims != nil {
		if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
			if d := aexp.Sub(exp.Time); d < -time.Second || d > time.Second {
				t.Errorf("%s: accessTokenExpiryTime %v is not the access token's exp %v", r.What, aexp, exp.UTC())
			}
		}
	}
	rexp := when("refreshTokenExpiryTime")
	if d := rexp.Sub(now.Add(w.RefreshTTL)); d < -10*time.Second || d > 5*time.Second {
		t.Errorf("%s: refreshTokenExpiryTime %v is not now + the refresh TTL %v (now %v)", r.What, rexp, w.RefreshTTL, now.UTC())
	}
	return access, refresh
}

// dlUAError checks a seed-002 error: status, responseKey and a responseMessage.
func dlUAError(t testing.TB, r response, status int, key string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: want %d with responseKey %s", r, status, key)
		return
	}
	m := r.object(t)
	if m["responseKey"] != key {
		t.Errorf("%s: responseKey = %#v, want %q", r, m["responseKey"], key)
	}
	if msg, _ := m["responseMessage"].(string); msg == "" {
		t.Errorf("%s: want a non-empty responseMessage", r)
	}
}

// ---------------------------------------------------------------- seed 000

const dlRPCPath = "/v2/jsonrpc/auth"

// dlRPC posts body as it is, with the seed's own content type header.
func dlRPC(t testing.TB, s *server, body string, opts ...reqOpt) response {
	t.Helper()
	opts = append([]reqOpt{withHeader("Content-Type", "application/json;")}, opts...)
	return s.do(t, "POST", dlRPCPath, rawJSON(body), opts...)
}

// dlAnyID: do not check the id of the response.
const dlAnyID = "\x00any"

// dlRPCObject checks one JSON-RPC 2.0 response object.
func dlRPCObject(t testing.TB, what string, v any, wantID string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: want a JSON-RPC response object, got %s", what, dlJSONLit(v))
	}
	if m["jsonrpc"] != "2.0" {
		t.Errorf("%s: jsonrpc = %#v, want \"2.0\"", what, m["jsonrpc"])
	}
	id, hasID := m["id"]
	if !hasID {
		t.Errorf("%s: a response object must have an id member (null when unknown)", what)
	} else if wantID != dlAnyID && dlJSONLit(id) != wantID {
		t.Errorf("%s: id = %s, want %s", what, dlJSONLit(id), wantID)
	}
	_, hasRes := m["result"]
	_, hasErr := m["error"]
	if hasRes == hasErr {
		t.Errorf("%s: want exactly one of result and error", what)
	}
	for k := range m {
		if k != "jsonrpc" && k != "id" && k != "result" && k != "error" {
			t.Errorf("%s: unexpected member %q", what, k)
		}
	}
	return m
}

// dlRPCSingle: HTTP 200 with one response object.
func dlRPCSingle(t testing.TB, r response, wantID string) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: a JSON-RPC answer travels with HTTP 200", r)
	}
	if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("%s: Content-Type = %q, want JSON", r.What, ct)
	}
	return dlRPCObject(t, r.String(), dlDecode(t, r.String(), r.Body), wantID)
}

// dlRPCErrObj checks an error response object with the code wanted and
// returns its error member.
func dlRPCErrObj(t testing.TB, what string, m map[string]any, code int) map[string]any {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Errorf("%s: want an error object with code %d", what, code)
		return nil
	}
	n, ok := e["code"].(json.Number)
	if !ok || n.String() != fmt.Sprint(code) {
		t.Errorf("%s: error.code = %#v, want %d", what, e["code"], code)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("%s: error.message must be a non-empty string", what)
	}
	return e
}

func dlRPCError(t testing.TB, r response, wantID string, code int) map[string]any {
	t.Helper()
	return dlRPCErrObj(t, r.String(), dlRPCSingle(t, r, wantID), code)
}

// dlRPCTokens checks a {jwt_access_token, refresh_token} result for acct.
func dlRPCTokens(t testing.TB, s *server, r response, wantID string, acct *dlAccount) (string, string) {
	t.Helper()
	m := dlRPCSingle(t, r, wantID)
	res, ok := m["result"].(map[string]any)
	if !ok {
		t.Fatalf("%s: want a result {jwt_access_token, refresh_token}", r)
	}
	if !sameKeys(res, "jwt_access_token", "refresh_token") {
		t.Errorf("%s: result must be exactly {jwt_access_token, refresh_token}, got %v", r, keysOf(res))
	}
	access, _ := res["jwt_access_token"].(string)
	refresh, _ := res["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("%s: jwt_access_token and refresh_token must be non-empty strings", r)
	}
	s.remember(access)
	s.remember(refresh)
	checkRefreshTokenEntropy(t, refresh)
	if c := s.verify(t, access); c != nil && acct != nil && c["sub"] != acct.Sub {
		t.Errorf("%s: jwt_access_token sub = %v, want the user's %q", r.What, c["sub"], acct.Sub)
	}
	return access, refresh
}

var dlRPCSeq atomic.Int64

// dlRPCRefresh calls user.Refresh with params (a Go value, JSON-encoded).
func dlRPCRefresh(t testing.TB, s *server, params any) (response, string) {
	t.Helper()
	id := fmt.Sprintf("r%d", dlRPCSeq.Add(1))
	body := `{"jsonrpc":"2.0","id":` + dlJSONLit(id) + `,"method":"user.Refresh","params":` + dlJSONLit(params) + `}`
	return dlRPC(t, s, body), dlJSONLit(id)
}

// dlClient is an API client registered at /api-clients.
type dlClient struct {
	ID     string
	Secret string
	Owner  *dlAccount
	method jwt.SigningMethod
	key    any
}

func dlRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dlNewHSClient registers an HS256 client: 201 {client_id, client_secret, name}.
func dlNewHSClient(t testing.TB, s *server, owner *dlAccount) *dlClient {
	t.Helper()
	name := "hs-" + dlRandHex(4)
	r := s.do(t, "POST", "/api-clients", map[string]any{"name": name}, withToken(owner.JWT))
	must(t, r, http.StatusCreated)
	m := r.object(t)
	for _, k := range []string{"client_id", "client_secret", "name"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("%s: %s = %#v, want a string", r, k, m[k])
		}
	}
	if m["name"] != name {
		t.Errorf("%s: name = %#v, want %q", r, m["name"], name)
	}
	c := &dlClient{Owner: owner, method: jwt.SigningMethodHS256}
	c.ID, _ = m["client_id"].(string)
	c.Secret, _ = m["client_secret"].(string)
	if c.ID == "" || c.Secret == "" {
		t.Fatalf("%s: want a client_id and a client_secret", r)
	}
	if len(c.Secret) < 32 {
		t.Errorf("%s: client_secret of %d characters is too short for an HS256 key", r.What, len(c.Secret))
	}
	s.remember(c.Secret)
	c.key = []byte(c.Secret)
	return c
}

// dlKeyPair is a fresh private key and its public JWK.
func dlKeyPair(t testing.TB, kty string) (jwt.SigningMethod, any, map[string]any) {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	switch kty {
	case "EC":
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := priv.PublicKey.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		pt := pub.Bytes() // 0x04 || X || Y
		return jwt.SigningMethodES256, priv, map[string]any{"kty": "EC", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:65])}
	case "OKP":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return jwt.SigningMethodEdDSA, priv, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}
	}
	t.Fatalf("kty %q", kty)
	return nil, nil, nil
}

// dlNewKeyClient registers a public key (kty EC: P-256, OKP: Ed25519); no
// secret may come back.
func dlNewKeyClient(t testing.TB, s *server, owner *dlAccount, kty string) *dlClient {
	t.Helper()
	method, priv, jwk := dlKeyPair(t, kty)
	name := "key-" + dlRandHex(4)
	r := s.do(t, "POST", "/api-clients", map[string]any{"name": name, "jwk": jwk}, withToken(owner.JWT))
	must(t, r, http.StatusCreated)
	m := r.object(t)
	if sec, ok := m["client_secret"]; ok && sec != nil && sec != "" {
		t.Errorf("%s: a client registered with a public key gets no secret", r)
	}
	if m["name"] != name {
		t.Errorf("%s: name = %#v, want %q", r, m["name"], name)
	}
	c := &dlClient{Owner: owner, method: method, key: priv}
	c.ID, _ = m["client_id"].(string)
	if c.ID == "" {
		t.Fatalf("%s: want a client_id", r)
	}
	return c
}

// claims are the RFC 7523 claims of a valid client assertion.
func (c *dlClient) claims(s *server) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": c.ID,
		"sub": c.ID,
		"aud": s.Issuer,
		"iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(),
		"jti": dlRandHex(16),
	}
}

// assertion signs the client's claims, changed by mutate.
func (c *dlClient) assertion(t testing.TB, s *server, mutate func(jwt.MapClaims)) string {
	t.Helper()
	cl := c.claims(s)
	if mutate != nil {
		mutate(cl)
	}
	return dlSign(t, s, c.method, c.key, cl)
}

func dlSign(t testing.TB, s *server, method jwt.SigningMethod, key any, cl jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, cl).SignedString(key)
	if err != nil {
		t.Fatalf("signing a client assertion: %v", err)
	}
	s.remember(tok)
	return tok
}

// dlAuthenticate calls user.Authenticate with "Bearer <client_id> <jwt>".
func dlAuthenticate(t testing.TB, s *server, clientID, assertion string) (response, string) {
	t.Helper()
	id := fmt.Sprintf("a%d", dlRPCSeq.Add(1))
	body := `{"id":` + dlJSONLit(id) + `, "method":"user.Authenticate", "jsonrpc":"2.0"}`
	var opts []reqOpt
	if clientID != "" || assertion != "" {
		opts = append(opts, withHeader("Authorization", "Bearer "+clientID+" "+assertion))
	}
	return dlRPC(t, s, body, opts...), dlJSONLit(id)
}
