package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const rpcPath = "/v2/jsonrpc/auth"

// rpcReply is one JSON-RPC response object.
type rpcReply struct {
	JSONRPC string `json:"jsonrpc"`
	Result  *struct {
		AccessToken  string `json:"jwt_access_token"`
		RefreshToken string `json:"refresh_token"`
	} `json:"result"`
	Error *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
	ID json.RawMessage `json:"id"`
}

// code is the error code, 0 for a result.
func (r rpcReply) code() int {
	if r.Error == nil {
		return 0
	}
	return r.Error.Code
}

// rpc posts one body to the JSON-RPC endpoint and decodes a single
// response object, failing on anything but HTTP 200.
func (ts *testServer) rpc(t testing.TB, body any, headers ...string) rpcReply {
	t.Helper()
	r := ts.do(t, "POST", rpcPath, body, headers...)
	if r.status != http.StatusOK {
		t.Fatalf("POST %s: %d %s", rpcPath, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var v rpcReply
	r.json(t, &v)
	if v.JSONRPC != "2.0" || (v.Result == nil) == (v.Error == nil) {
		t.Fatalf("not a JSON-RPC 2.0 response with exactly one of result and error: %s", r.body)
	}
	return v
}

// rpcRefresh calls user.Refresh with the token as the seed sends it, a bare
// string.
func (ts *testServer) rpcRefresh(t testing.TB, tok string) rpcReply {
	t.Helper()
	return ts.rpc(t, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "user.Refresh", "params": tok})
}

// rpcAuthenticate calls user.Authenticate with a client JWT.
func (ts *testServer) rpcAuthenticate(t testing.TB, clientID, assertion string) rpcReply {
	t.Helper()
	return ts.rpc(t, map[string]any{"jsonrpc": "2.0", "id": "a", "method": "user.Authenticate"},
		"Authorization", "Bearer "+clientID+" "+assertion)
}

// rpcClient registers an API client of p's user, with a public JWK or
// (jwk nil) an HS256 secret, and returns its id and secret.
func (ts *testServer) rpcClient(t testing.TB, p pair, jwk map[string]any) (id, secret string) {
	t.Helper()
	body := map[string]any{"name": "robot"}
	if jwk != nil {
		body["jwk"] = jwk
	}
	r := ts.do(t, "POST", "/api-clients", body, auth(p)...)
	if r.status != http.StatusCreated {
		t.Fatalf("create API client: %d %s", r.status, r.body)
	}
	var v struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	r.json(t, &v)
	return v.ID, v.Secret
}

// rpcClaims are valid claims of a client JWT at the test clock's now;
// tests change or delete some.
func (ts *testServer) rpcClaims(clientID string) jwt.MapClaims {
	now := ts.clock.Now()
	return jwt.MapClaims{"iss": clientID, "sub": clientID, "aud": testIssuer,
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": rpcJTI()}
}

func rpcJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// rpcSign signs claims with method and key; golang-jwt adds only alg and typ
// to the header.
func rpcSign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rpcB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
