package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type v1Response struct {
	StatusCode    int    `json:"statusCode"`
	StatusMessage string `json:"statusMessage"`
	Error         string `json:"error"`
	Tokens        struct {
		IDToken      string `json:"idToken"`
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	} `json:"tokens"`
}

// claimsOf decodes a JWT's header and claims without verifying it.
func jwtParts(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	var h, c map[string]any
	for i, dst := range []*map[string]any{&h, &c} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, dst) != nil {
			t.Fatalf("decode JWT part %d: %v", i, err)
		}
	}
	return h, c
}

func signupWith(t *testing.T, ts *testServer, body map[string]any) pair {
	t.Helper()
	r := ts.do(t, "POST", "/users", body)
	if r.status != 201 {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	var p pair
	r.json(t, &p)
	return p
}

func TestUsernames(t *testing.T) {
	ts := newTestServer(t)
	signupWith(t, ts, map[string]any{"email": "u1@example.com", "name": "U", "password": "the-Secret-123", "username": "Jack.Black_1"})
	tests := map[string]struct {
		username string
		status   int
	}{
		"taken ignoring case": {"jack.black_1", 409},
		"too short":           {"ab", 422},
		"too long":            {strings.Repeat("a", 65), 422},
		"bad character":       {"jack black", 422},
		"email-like":          {"a@b", 422},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := ts.do(t, "POST", "/users", map[string]any{"email": "other@example.com", "name": "U", "password": "the-Secret-123", "username": tc.username})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
		})
	}
	// Username login in any case at /v1/auth; email login too.
	for _, login := range []string{"JACK.BLACK_1", "U1@example.com"} {
		r := ts.do(t, "POST", "/v1/auth", map[string]any{"username": login, "password": "the-Secret-123"})
		if r.status != 200 {
			t.Fatalf("v1 login as %s: %d %s", login, r.status, r.body)
		}
	}
}

func TestV1Auth(t *testing.T) {
	ts := newTestServer(t)
	ts.signup(t, "v1@example.com")

	r := ts.do(t, "POST", "/v1/auth", map[string]any{"username": "v1@example.com", "password": "the-Secret-123"})
	var ok v1Response
	r.json(t, &ok)
	if r.status != 200 || ok.StatusCode != 200 || ok.StatusMessage != "OK" || ok.Tokens.IDToken == "" || ok.Tokens.AccessToken == "" || ok.Tokens.RefreshToken == "" {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	idHdr, idClaims := jwtParts(t, ok.Tokens.IDToken)
	if idHdr["typ"] != "JWT" || idClaims["aud"] != "ideapool" || idClaims["email"] != "v1@example.com" ||
		idClaims["auth_time"] == nil || idClaims["email_verified"] == nil || idClaims["name"] == nil {
		t.Fatalf("ID token header %v claims %v", idHdr, idClaims)
	}
	if exp, iat := idClaims["exp"].(float64), idClaims["iat"].(float64); exp-iat != 3600 {
		t.Fatalf("ID token lifetime %vs, want 3600", exp-iat)
	}
	// RFC 8725 3.12: an ID token is never an access token.
	if r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+ok.Tokens.IDToken); r.status != 401 {
		t.Fatalf("ID token accepted as access token: %d", r.status)
	}
	if r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+ok.Tokens.AccessToken); r.status != 200 {
		t.Fatalf("access token refused: %d %s", r.status, r.body)
	}

	wrong := ts.do(t, "POST", "/v1/auth", map[string]any{"username": "v1@example.com", "password": "Wrong-pass-1"})
	unknown := ts.do(t, "POST", "/v1/auth", map[string]any{"username": "nobody", "password": "Wrong-pass-1"})
	want := `{"statusCode":400,"statusMessage":"Login failed","error":"Incorrect username or password."}`
	if wrong.status != 400 || string(wrong.body) != want || string(unknown.body) != want {
		t.Fatalf("wrong credentials: %d %s / %s", wrong.status, wrong.body, unknown.body)
	}

	if r := ts.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{}); r.status != 400 || string(r.body) != `{"statusCode":400,"statusMessage":"Missing refresh token"}` {
		t.Fatalf("missing refresh token: %d %s", r.status, r.body)
	}
	invalid := `{"statusCode":400,"statusMessage":"Failed to refresh token","error":"Invalid Refresh Token"}`
	if r := ts.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{"refreshtoken": "nope"}); r.status != 400 || string(r.body) != invalid {
		t.Fatalf("invalid refresh token: %d %s", r.status, r.body)
	}
	r = ts.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{"refreshtoken": ok.Tokens.RefreshToken})
	var next v1Response
	r.json(t, &next)
	if r.status != 200 || next.Tokens.RefreshToken == "" || next.Tokens.RefreshToken == ok.Tokens.RefreshToken || next.Tokens.IDToken == "" {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
}

func TestRefreshRotationReuseAndGrace(t *testing.T) {
	ts := newTestServer(t)
	first := ts.signup(t, "rot@example.com") // Idea Pool dialect: no rotation
	refresh := func(tok string) (int, string) {
		r := ts.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{"refreshtoken": tok})
		var v v1Response
		r.json(t, &v)
		return r.status, v.Tokens.RefreshToken
	}
	// A token from the Idea Pool dialect rotates at /v1/auth.
	status, second := refresh(first.RefreshToken)
	if status != 200 {
		t.Fatalf("cross-dialect refresh: %d", status)
	}
	// Lost response, retried within the grace: the same successor.
	ts.clock.Advance(2 * time.Second)
	if status, again := refresh(first.RefreshToken); status != 200 || again != second {
		t.Fatalf("retry within grace: %d, same successor %v", status, again == second)
	}
	// The Idea Pool endpoint cannot hand back a successor: within the grace
	// it refuses the rotated-out token, without revoking the session.
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": first.RefreshToken}); r.status != 401 {
		t.Fatalf("rotated-out token at /access-tokens/refresh within the grace: %d, want 401", r.status)
	}
	// The rotated token at the Idea Pool endpoint works there too, in its shape.
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": second}); r.status != 200 {
		t.Fatalf("rotated token at /access-tokens/refresh: %d %s", r.status, r.body)
	}
	status, third := refresh(second)
	if status != 200 {
		t.Fatalf("second rotation: %d", status)
	}
	// first is now two generations old: reuse, even within the grace.
	if status, _ := refresh(first.RefreshToken); status != 400 {
		t.Fatalf("reuse of an old token: %d, want 400", status)
	}
	// The whole family is revoked, its newest token included.
	if status, _ := refresh(third); status != 400 {
		t.Fatalf("newest token after reuse: %d, want 400", status)
	}

	// After the grace, presenting the immediately previous token is reuse.
	p := ts.signup(t, "rot2@example.com")
	_, next := refresh(p.RefreshToken)
	ts.clock.Advance(6 * time.Second)
	if status, _ := refresh(p.RefreshToken); status != 400 {
		t.Fatalf("retry after the grace: %d, want 400", status)
	}
	if status, _ := refresh(next); status != 400 {
		t.Fatalf("successor after reuse: %d, want 400", status)
	}
}

func TestUserAuthenticate(t *testing.T) {
	ts := newTestServer(t)
	signupWith(t, ts, map[string]any{"email": "admin@example.com", "name": "Admin", "password": "the-Secret-123", "username": "Admin"})
	r := ts.do(t, "POST", "/api/user/authenticate", map[string]any{"userName": "admin", "password": "the-Secret-123"})
	var got map[string]any
	r.json(t, &got)
	if r.status != 200 || got["responseKey"] != "SUCCESS" || got["responseMessage"] != "Successful request" ||
		got["email"] != "admin@example.com" || got["fullName"] != "Admin" || got["userName"] != "admin" ||
		got["role"] != float64(1) || got["accessToken"] == "" || got["refreshToken"] == "" {
		t.Fatalf("authenticate: %d %s", r.status, r.body)
	}
	for _, k := range []string{"accessTokenExpiryTime", "refreshTokenExpiryTime"} {
		s, _ := got[k].(string)
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !strings.HasSuffix(s, "Z") {
			t.Fatalf("%s = %q: %v", k, s, err)
		}
		if k == "accessTokenExpiryTime" && !at.Equal(ts.clock.Now().Add(10*time.Minute)) {
			t.Errorf("%s = %v, want %v", k, at, ts.clock.Now().Add(10*time.Minute))
		}
	}
	// Its refresh token is a session like any other.
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": got["refreshToken"]}); r.status != 200 {
		t.Fatalf("seed 002 refresh token at seed 003: %d", r.status)
	}
	tests := map[string]struct {
		body   any
		status int
		key    string
	}{
		"wrong password":   {map[string]any{"userName": "admin", "password": "Wrong-pass-1"}, 401, "INVALID_CREDENTIALS"},
		"unknown user":     {map[string]any{"userName": "ghost", "password": "Wrong-pass-1"}, 401, "INVALID_CREDENTIALS"},
		"missing password": {map[string]any{"userName": "admin"}, 400, "INVALID_REQUEST"},
		"wrong type":       {map[string]any{"userName": 5, "password": "x"}, 400, "INVALID_REQUEST"},
		"malformed":        {`{"userName":`, 400, "INVALID_REQUEST"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := ts.do(t, "POST", "/api/user/authenticate", tc.body)
			var e map[string]any
			r.json(t, &e)
			if r.status != tc.status || e["responseKey"] != tc.key || e["responseMessage"] == "" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestAPIClients(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "owner@example.com")
	other := ts.signup(t, "other@example.com")
	r := ts.do(t, "POST", "/api-clients", map[string]any{"name": "ci"}, auth(p)...)
	var created map[string]any
	r.json(t, &created)
	if r.status != http.StatusCreated || created["client_id"] == "" || created["client_secret"] == "" || created["name"] != "ci" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = ts.do(t, "GET", "/api-clients", nil, auth(p)...)
	if r.status != 200 || strings.Contains(string(r.body), created["client_secret"].(string)) || !strings.Contains(string(r.body), created["client_id"].(string)) {
		t.Fatalf("list leaks the secret or misses the client: %s", r.body)
	}
	bad := map[string]any{
		"private key": map[string]any{"name": "k", "jwk": map[string]any{"kty": "EC", "crv": "P-256",
			"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
			"d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}},
		"symmetric key": map[string]any{"name": "k", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}},
		"not an object": map[string]any{"name": "k", "jwk": "nope"},
		"no name":       map[string]any{},
	}
	for name, body := range bad {
		if r := ts.do(t, "POST", "/api-clients", body, auth(p)...); r.status != 422 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	pub := map[string]any{"kty": "EC", "crv": "P-256",
		"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
	r = ts.do(t, "POST", "/api-clients", map[string]any{"name": "key", "jwk": pub}, auth(p)...)
	if r.status != 201 || strings.Contains(string(r.body), "client_secret") {
		t.Fatalf("create with key: %d %s", r.status, r.body)
	}
	id := created["client_id"].(string)
	if r := ts.do(t, "DELETE", "/api-clients/"+id, nil, auth(other)...); r.status != 404 {
		t.Fatalf("delete by another user: %d", r.status)
	}
	if r := ts.do(t, "DELETE", "/api-clients/"+id, nil, auth(p)...); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/api-clients", nil, auth(p)...); strings.Contains(string(r.body), id) {
		t.Fatalf("revoked client still listed: %s", r.body)
	}
	if r := ts.do(t, "GET", "/api-clients", nil); r.status != 401 {
		t.Fatalf("list without token: %d", r.status)
	}
}

// Failures count against the account, whichever of its names and dialects
// they came through.
func TestThrottleCountsTheAccountNotTheName(t *testing.T) {
	ts := newTestServer(t)
	signupWith(t, ts, map[string]any{"email": "two-names@example.com", "name": "T", "password": "the-Secret-123", "username": "twonames"})
	for n := range 10 {
		if n%2 == 0 {
			ts.do(t, "POST", "/v1/auth", map[string]any{"username": "TwoNames", "password": "Wrong-pass-1"})
		} else {
			ts.do(t, "POST", "/access-tokens", map[string]any{"email": "two-names@example.com", "password": "Wrong-pass-1"})
		}
	}
	for _, login := range []string{"twonames", "two-names@example.com"} {
		r := ts.do(t, "POST", "/api/user/authenticate", map[string]any{"userName": login, "password": "the-Secret-123"})
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("login as %s after 10 failures split across names: %d %s", login, r.status, r.body)
		}
	}
}
