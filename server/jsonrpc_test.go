package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJSONRPCProtocol covers the JSON-RPC 2.0 envelope: what is a Request
// object, how ids are echoed, and batches.
func TestJSONRPCProtocol(t *testing.T) {
	ts := newTestServer(t)
	type want struct {
		code int    // error code
		id   string // raw JSON of the echoed id
	}
	tooBig := "[" + strings.TrimSuffix(strings.Repeat(`{"jsonrpc":"2.0","method":"nope","id":1},`, 21), ",") + "]"
	tests := map[string]struct {
		body  string
		want  []want
		batch bool // the answer is an array
	}{
		"parse error":             {body: `{"jsonrpc":"2.0","method":"user.Refresh","params":"x","id":1`, want: []want{{-32700, "null"}}},
		"empty body":              {body: ``, want: []want{{-32700, "null"}}},
		"parse error in a batch":  {body: `[{"jsonrpc":"2.0","method":"x","id":1},{]`, want: []want{{-32700, "null"}}},
		"empty batch":             {body: `[]`, want: []want{{-32600, "null"}}},
		"batch too large":         {body: tooBig, want: []want{{-32600, "null"}}},
		"batch of non-objects":    {body: `[1, "a", []]`, batch: true, want: []want{{-32600, "null"}, {-32600, "null"}, {-32600, "null"}}},
		"not an object":           {body: `"user.Refresh"`, want: []want{{-32600, "null"}}},
		"missing jsonrpc":         {body: `{"method":"nope","id":7}`, want: []want{{-32600, "7"}}},
		"jsonrpc 1.0":             {body: `{"jsonrpc":"1.0","method":"nope","id":"7"}`, want: []want{{-32600, `"7"`}}},
		"jsonrpc a number":        {body: `{"jsonrpc":2.0,"method":"nope","id":7}`, want: []want{{-32600, "7"}}},
		"method not a string":     {body: `{"jsonrpc":"2.0","method":1,"params":"bar","id":7}`, want: []want{{-32600, "7"}}},
		"method missing":          {body: `{"jsonrpc":"2.0","id":7}`, want: []want{{-32600, "7"}}},
		"id an object":            {body: `{"jsonrpc":"2.0","method":"nope","id":{"a":1}}`, want: []want{{-32600, "null"}}},
		"id an array":             {body: `{"jsonrpc":"2.0","method":"nope","id":[1]}`, want: []want{{-32600, "null"}}},
		"id a bool":               {body: `{"jsonrpc":"2.0","method":"nope","id":true}`, want: []want{{-32600, "null"}}},
		"params a bool":           {body: `{"jsonrpc":"2.0","method":"user.Authenticate","params":true,"id":7}`, want: []want{{-32600, "7"}}},
		"params a string":         {body: `{"jsonrpc":"2.0","method":"user.Authenticate","params":"x","id":7}`, want: []want{{-32600, "7"}}},
		"params null":             {body: `{"jsonrpc":"2.0","method":"nope","params":null,"id":7}`, want: []want{{-32600, "7"}}},
		"unknown method":          {body: `{"jsonrpc":"2.0","method":"user.Delete","params":[],"id":"x"}`, want: []want{{-32601, `"x"`}}},
		"null id is not a notify": {body: `{"jsonrpc":"2.0","method":"nope","id":null}`, want: []want{{-32601, "null"}}},
		"fractional id kept raw":  {body: `{"jsonrpc":"2.0","method":"nope","id":1.50}`, want: []want{{-32601, "1.50"}}},
		"huge id kept raw":        {body: `{"jsonrpc":"2.0","method":"nope","id":123456789012345678901234567890}`, want: []want{{-32601, "123456789012345678901234567890"}}},
		"escaped id kept raw":     {body: `{"jsonrpc":"2.0","method":"nope","id":"a\u00e9\"b"}`, want: []want{{-32601, `"a\u00e9\"b"`}}},
		"id not UTF-8":            {body: "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":\"\xff\"}", want: []want{{-32700, "null"}}},
		"nested too deep":         {body: `{"jsonrpc":"2.0","method":"nope","params":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"id":1}`, want: []want{{-32700, "null"}}},
		"whitespace around":       {body: " \n\t{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\": 3 }\n", want: []want{{-32601, "3"}}},
		"batch of one":            {body: `[{"jsonrpc":"2.0","method":"nope","id":3}]`, batch: true, want: []want{{-32601, "3"}}},
		"invalid notification":    {body: `{"method":"nope"}`, want: []want{{-32600, "null"}}},
		"Authenticate no header":  {body: `{"jsonrpc":"2.0","method":"user.Authenticate","id":1}`, want: []want{{-32009, "1"}}},
		"Refresh unknown token":   {body: `{"jsonrpc":"2.0","method":"user.Refresh","params":"nope","id":1}`, want: []want{{-32010, "1"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := ts.do(t, "POST", rpcPath, tc.body)
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q: %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			var got []rpcReply
			if tc.batch {
				r.json(t, &got)
			} else {
				var one rpcReply
				r.json(t, &one)
				got = []rpcReply{one}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d answers, want %d: %s", len(got), len(tc.want), r.body)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.JSONRPC != "2.0" || g.code() != w.code || string(g.ID) != w.id || g.Result != nil || g.Error.Message == "" {
					t.Errorf("answer %d = %s; want code %d, id %s", i, r.body, w.code, w.id)
				}
			}
		})
	}
}

func TestJSONRPCBodyLimit(t *testing.T) {
	ts := newTestServer(t)
	big := `{"jsonrpc":"2.0","method":"user.Refresh","id":1,"params":"` + strings.Repeat("a", 1<<20) + `"}`
	r := ts.do(t, "POST", rpcPath, big)
	var v rpcReply
	r.json(t, &v)
	if r.status != http.StatusRequestEntityTooLarge || v.code() != -32600 || string(v.ID) != "null" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestJSONRPCErrorMessages pins the seed's wording.
func TestJSONRPCErrorMessages(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "words@example.com")
	id, secret := ts.rpcClient(t, p, nil)
	noJTI := ts.rpcClaims(id)
	delete(noJTI, "jti")
	expired := ts.rpcClaims(id)
	expired["iat"], expired["exp"] = ts.clock.Now().Add(-3*time.Minute).Unix(), ts.clock.Now().Add(-time.Minute).Unix()
	authenticate := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "user.Authenticate"}
	tests := map[string]struct {
		body    any
		headers []string
		code    int
		message string
	}{
		"claim missing": {body: authenticate, code: -32003, message: "Mandatory JWT Claim missing",
			headers: []string{"Authorization", "Bearer " + id + " " + rpcSign(t, jwt.SigningMethodHS256, []byte(secret), noJTI)}},
		"token expired": {body: authenticate, code: -32019, message: "Token has expired",
			headers: []string{"Authorization", "Bearer " + id + " " + rpcSign(t, jwt.SigningMethodHS256, []byte(secret), expired)}},
		"invalid arguments": {body: map[string]any{"jsonrpc": "2.0", "id": 1, "method": "user.Refresh", "params": 1},
			code: -32606, message: "Invalid arguments"},
		"invalid request": {body: map[string]any{"jsonrpc": "2.0", "id": 1}, code: -32600,
			message: "The JSON sent is not a valid Request object"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := ts.rpc(t, tc.body, tc.headers...)
			if v.code() != tc.code || v.Error.Message != tc.message {
				t.Fatalf("got %d %q, want %d %q", v.code(), v.Error.Message, tc.code, tc.message)
			}
		})
	}
}

func TestJSONRPCNotificationsAndBatches(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "batch@example.com")

	// Notifications alone, or a batch of only them: 204 and no body.
	for name, body := range map[string]string{
		"notification":         `{"jsonrpc":"2.0","method":"user.Refresh","params":"` + p.RefreshToken + `"}`,
		"unknown method":       `{"jsonrpc":"2.0","method":"nope"}`,
		"batch of only those":  `[{"jsonrpc":"2.0","method":"nope"},{"jsonrpc":"2.0","method":"user.Refresh","params":["` + p.RefreshToken + `"]}]`,
		"Authenticate, unsent": `{"jsonrpc":"2.0","method":"user.Authenticate","params":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := ts.do(t, "POST", rpcPath, body)
			if r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("%d %q", r.status, r.body)
			}
		})
	}
	// A notification is not run: the refresh token was not rotated, so it
	// still works long after the reuse grace.
	ts.clock.Advance(time.Minute)
	v := ts.rpcRefresh(t, p.RefreshToken)
	if v.Result == nil {
		t.Fatalf("refresh token burnt by a notification: %+v", v.Error)
	}

	// A mixed batch: answers in order, notifications left out.
	batch := `[
		{"jsonrpc":"2.0","method":"user.Refresh","params":"` + v.Result.RefreshToken + `","id":1},
		{"jsonrpc":"2.0","method":"nope"},
		{"jsonrpc":"2.0","method":"nope","id":"two"},
		5,
		{"jsonrpc":"2.0","method":"user.Refresh","params":42,"id":3},
		{"jsonrpc":"2.0","method":"user.Refresh","params":"unknown"}
	]`
	r := ts.do(t, "POST", rpcPath, batch)
	var got []rpcReply
	r.json(t, &got)
	want := []struct {
		code int
		id   string
	}{{0, "1"}, {-32601, `"two"`}, {-32600, "null"}, {-32606, "3"}}
	if r.status != http.StatusOK || len(got) != len(want) {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for i, w := range want {
		if got[i].code() != w.code || string(got[i].ID) != w.id {
			t.Errorf("answer %d: code %d id %s, want %d %s", i, got[i].code(), got[i].ID, w.code, w.id)
		}
	}
	if got[0].Result == nil || got[0].Result.RefreshToken == "" || got[0].Result.AccessToken == "" {
		t.Fatalf("no tokens in the first answer: %s", r.body)
	}
}

func TestJSONRPCRefreshParams(t *testing.T) {
	ts := newTestServer(t)
	tests := map[string]struct {
		params any  // TOKEN stands for a fresh refresh token
		omit   bool // no params member
		code   int  // 0: a result
	}{
		"a string (the seed's form)":  {params: "TOKEN"},
		"an array holding it":         {params: []any{"TOKEN"}},
		"missing":                     {omit: true, code: -32606},
		"a number":                    {params: 42, code: -32606},
		"an object":                   {params: map[string]any{"refresh_token": "TOKEN"}, code: -32606},
		"null":                        {params: nil, code: -32606},
		"a bool":                      {params: true, code: -32606},
		"an empty string":             {params: "", code: -32606},
		"an empty array":              {params: []any{}, code: -32606},
		"two elements":                {params: []any{"TOKEN", "TOKEN"}, code: -32606},
		"an array holding a number":   {params: []any{42}, code: -32606},
		"an array holding an array":   {params: []any{[]any{"TOKEN"}}, code: -32606},
		"an unknown token":            {params: "not-a-token", code: -32010},
		"an unknown token in a array": {params: []any{"not-a-token"}, code: -32010},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := ts.signup(t, rpcJTI()+"@example.com")
			req := map[string]any{"jsonrpc": "2.0", "id": "r", "method": "user.Refresh"}
			if !tc.omit {
				req["params"] = rpcReplaceToken(tc.params, p.RefreshToken)
			}
			v := ts.rpc(t, req)
			if v.code() != tc.code || string(v.ID) != `"r"` {
				t.Fatalf("code %d id %s, want %d: %+v", v.code(), v.ID, tc.code, v.Error)
			}
			if tc.code == 0 && (v.Result.RefreshToken == "" || v.Result.RefreshToken == p.RefreshToken || v.Result.AccessToken == "") {
				t.Fatalf("want new tokens, got %+v", *v.Result)
			}
		})
	}
}

// rpcReplaceToken puts tok where the table says TOKEN.
func rpcReplaceToken(v any, tok string) any {
	switch x := v.(type) {
	case string:
		if x == "TOKEN" {
			return tok
		}
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = rpcReplaceToken(x[i], tok)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k := range x {
			out[k] = rpcReplaceToken(x[k], tok)
		}
		return out
	}
	return v
}

func TestJSONRPCRefreshRotation(t *testing.T) {
	ts := newTestServer(t)
	// A refresh token from the Idea Pool dialect rotates here.
	p := ts.signup(t, "rotate@example.com")
	first := ts.rpcRefresh(t, p.RefreshToken)
	if first.Result == nil || first.Result.RefreshToken == p.RefreshToken {
		t.Fatalf("first refresh: %+v", first.Error)
	}
	if r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+first.Result.AccessToken); r.status != 200 {
		t.Fatalf("new access token at /me: %d %s", r.status, r.body)
	}
	second := ts.rpcRefresh(t, first.Result.RefreshToken)
	if second.Result == nil {
		t.Fatalf("second refresh: %+v", second.Error)
	}
	// After the reuse grace, the old token is refused and revokes the
	// session: the newest token and the access tokens stop working too.
	ts.clock.Advance(10 * time.Second)
	if v := ts.rpcRefresh(t, first.Result.RefreshToken); v.code() != -32010 {
		t.Fatalf("reused token: code %d, want -32010", v.code())
	}
	if v := ts.rpcRefresh(t, second.Result.RefreshToken); v.code() != -32010 {
		t.Fatalf("newest token after reuse: code %d, want -32010", v.code())
	}
	if r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+second.Result.AccessToken); r.status != 401 {
		t.Fatalf("access token of a revoked session at /me: %d", r.status)
	}

	// A token rotated here refreshes at the Idea Pool endpoint.
	q := ts.signup(t, "across@example.com")
	v := ts.rpcRefresh(t, q.RefreshToken)
	if v.Result == nil {
		t.Fatalf("refresh: %+v", v.Error)
	}
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": v.Result.RefreshToken}); r.status != 200 {
		t.Fatalf("JSON-RPC token at /access-tokens/refresh: %d %s", r.status, r.body)
	}
	ts.clock.Advance(10 * time.Second) // past the reuse grace
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": q.RefreshToken}); r.status != 401 {
		t.Fatalf("rotated-out token at /access-tokens/refresh: %d %s", r.status, r.body)
	}

	// An expired session is -32020.
	old := ts.signup(t, "expired@example.com")
	ts.clock.Advance(721 * time.Hour)
	if v := ts.rpcRefresh(t, old.RefreshToken); v.code() != -32020 || v.Error.Message != "Refresh token has expired" {
		t.Fatalf("expired: %+v", v.Error)
	}
}

func TestJSONRPCAuthenticate(t *testing.T) {
	ts := newTestServer(t)
	owner := ts.signup(t, "robots@example.com")

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPoint, err := ecKey.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hsID, secret := ts.rpcClient(t, owner, nil)
	ecID, _ := ts.rpcClient(t, owner, map[string]any{"kty": "EC", "crv": "P-256", "x": rpcB64(ecPoint[1:33]), "y": rpcB64(ecPoint[33:])})
	edID, _ := ts.rpcClient(t, owner, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": rpcB64(edPub)})

	signers := map[string]struct {
		id     string
		method jwt.SigningMethod
		key    any
	}{
		"HS256 secret":    {hsID, jwt.SigningMethodHS256, []byte(secret)},
		"ES256 P-256 key": {ecID, jwt.SigningMethodES256, ecKey},
		"EdDSA key":       {edID, jwt.SigningMethodEdDSA, edKey},
	}
	for name, sg := range signers {
		t.Run(name, func(t *testing.T) {
			v := ts.rpcAuthenticate(t, sg.id, rpcSign(t, sg.method, sg.key, ts.rpcClaims(sg.id)))
			if v.Result == nil || string(v.ID) != `"a"` {
				t.Fatalf("authenticate: %+v", v.Error)
			}
			// The tokens are the owner's: the access token works, the
			// refresh token refreshes.
			r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+v.Result.AccessToken)
			if r.status != 200 || !strings.Contains(string(r.body), "robots@example.com") {
				t.Fatalf("/me with the client's access token: %d %s", r.status, r.body)
			}
			if w := ts.rpcRefresh(t, v.Result.RefreshToken); w.Result == nil {
				t.Fatalf("refresh the client's session: %+v", w.Error)
			}
		})
	}

	// Lenient about whitespace in the header.
	r := ts.do(t, "POST", rpcPath, `{"jsonrpc":"2.0","method":"user.Authenticate","id":1}`,
		"Authorization", "  bearer   "+hsID+"  \t "+rpcSign(t, jwt.SigningMethodHS256, []byte(secret), ts.rpcClaims(hsID))+"  ")
	var ok rpcReply
	r.json(t, &ok)
	if ok.Result == nil {
		t.Fatalf("extra whitespace: %s", r.body)
	}

	now := ts.clock.Now()
	hs := func(edit func(c jwt.MapClaims)) string {
		c := ts.rpcClaims(hsID)
		edit(c)
		return rpcSign(t, jwt.SigningMethodHS256, []byte(secret), c)
	}
	without := func(claim string) string { return hs(func(c jwt.MapClaims) { delete(c, claim) }) }
	bearer := func(a string) string { return "Bearer " + hsID + " " + a }
	tests := map[string]struct {
		authz string
		code  int
		claim string // error.data.claim
	}{
		"no iss":     {authz: bearer(without("iss")), code: -32003, claim: "iss"},
		"no sub":     {authz: bearer(without("sub")), code: -32003, claim: "sub"},
		"no aud":     {authz: bearer(without("aud")), code: -32003, claim: "aud"},
		"no exp":     {authz: bearer(without("exp")), code: -32003, claim: "exp"},
		"no iat":     {authz: bearer(without("iat")), code: -32003, claim: "iat"},
		"no jti":     {authz: bearer(without("jti")), code: -32003, claim: "jti"},
		"a null jti": {authz: bearer(hs(func(c jwt.MapClaims) { c["jti"] = nil })), code: -32003, claim: "jti"},
		"expired": {authz: bearer(hs(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-4*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		})), code: -32019},
		"iat ahead": {authz: bearer(hs(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(2*time.Minute).Unix(), now.Add(4*time.Minute).Unix()
		})), code: -32007},
		"too long":    {authz: bearer(hs(func(c jwt.MapClaims) { c["exp"] = now.Add(6 * time.Minute).Unix() })), code: -32006},
		"nbf ahead":   {authz: bearer(hs(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), code: -32011},
		"nbf garbled": {authz: bearer(hs(func(c jwt.MapClaims) { c["nbf"] = "soon" })), code: -32009},
		"exp before iat": {authz: bearer(hs(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(30*time.Second).Unix(), now.Add(20*time.Second).Unix()
		})), code: -32012},
		"wrong aud":   {authz: bearer(hs(func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" })), code: -32005},
		"aud list":    {authz: bearer(hs(func(c jwt.MapClaims) { c["aud"] = []string{"x", "y"} })), code: -32005},
		"wrong iss":   {authz: bearer(hs(func(c jwt.MapClaims) { c["iss"] = ecID })), code: -32004},
		"wrong sub":   {authz: bearer(hs(func(c jwt.MapClaims) { c["sub"] = "someone" })), code: -32004},
		"another key": {authz: bearer(rpcSign(t, jwt.SigningMethodHS256, []byte("not-the-secret-at-all-not-at-all"), ts.rpcClaims(hsID))), code: -32002},
		"another alg": {authz: bearer(rpcSign(t, jwt.SigningMethodHS384, []byte(secret), ts.rpcClaims(hsID))), code: -32002},
		"another client's key": {
			authz: "Bearer " + ecID + " " + rpcSign(t, jwt.SigningMethodES256, rpcECKey(t), ts.rpcClaims(ecID)), code: -32002},
		"unknown client":  {authz: "Bearer no-such-client " + rpcSign(t, jwt.SigningMethodHS256, []byte(secret), ts.rpcClaims("no-such-client")), code: -32001},
		"no header":       {authz: "", code: -32009},
		"one part":        {authz: "Bearer " + hsID, code: -32009},
		"four parts":      {authz: bearer(hs(func(jwt.MapClaims) {})) + " x", code: -32009},
		"another scheme":  {authz: "Basic " + hsID + " " + hs(func(jwt.MapClaims) {}), code: -32009},
		"not a JWT":       {authz: bearer("not.a-jwt"), code: -32009},
		"garbage":         {authz: bearer("%%%"), code: -32009},
		"claims not JSON": {authz: bearer(rpcSignRaw(t, secret, []byte("not json"))), code: -32009},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var h []string
			if tc.authz != "" {
				h = []string{"Authorization", tc.authz}
			}
			v := ts.rpc(t, map[string]any{"jsonrpc": "2.0", "id": 9, "method": "user.Authenticate"}, h...)
			if v.code() != tc.code || string(v.ID) != "9" {
				t.Fatalf("code %d id %s, want %d: %+v", v.code(), v.ID, tc.code, v.Error)
			}
			if tc.claim != "" {
				var d struct{ Claim string }
				if err := json.Unmarshal(v.Error.Data, &d); err != nil || d.Claim != tc.claim {
					t.Fatalf("data %s, want claim %q", v.Error.Data, tc.claim)
				}
			}
		})
	}

	t.Run("nbf passed", func(t *testing.T) {
		a := hs(func(c jwt.MapClaims) { c["nbf"] = now.Add(-time.Second).Unix() })
		if v := ts.rpcAuthenticate(t, hsID, a); v.Result == nil {
			t.Fatalf("an nbf in the past: %+v", v.Error)
		}
	})

	t.Run("replayed jti", func(t *testing.T) {
		a := hs(func(jwt.MapClaims) {})
		if v := ts.rpcAuthenticate(t, hsID, a); v.Result == nil {
			t.Fatalf("first use: %+v", v.Error)
		}
		if v := ts.rpcAuthenticate(t, hsID, a); v.code() != -32008 {
			t.Fatalf("second use: code %d, want -32008", v.code())
		}
		// Within one batch too.
		call := `{"jsonrpc":"2.0","method":"user.Authenticate","id":%d}`
		r := ts.do(t, "POST", rpcPath, "["+strings.Replace(call, "%d", "1", 1)+","+strings.Replace(call, "%d", "2", 1)+"]",
			"Authorization", bearer(hs(func(jwt.MapClaims) {})))
		var got []rpcReply
		r.json(t, &got)
		if len(got) != 2 || got[0].Result == nil || got[1].code() != -32008 {
			t.Fatalf("batch replay: %s", r.body)
		}
	})

	t.Run("revoked client", func(t *testing.T) {
		if r := ts.do(t, "DELETE", "/api-clients/"+edID, nil, auth(owner)...); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		v := ts.rpcAuthenticate(t, edID, rpcSign(t, jwt.SigningMethodEdDSA, edKey, ts.rpcClaims(edID)))
		if v.code() != -32001 || len(v.Error.Data) != 0 {
			t.Fatalf("revoked client: code %d data %s, want -32001 and no data", v.code(), v.Error.Data)
		}
	})
}

func rpcECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rpcSignRaw signs an arbitrary payload with HS256, for claims that are not
// JSON.
func rpcSignRaw(t testing.TB, secret string, payload []byte) string {
	t.Helper()
	input := rpcB64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + rpcB64(payload)
	sig, err := jwt.SigningMethodHS256.Sign(input, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + rpcB64(sig)
}

// FuzzJSONRPC throws arbitrary bodies and Authorization headers at the
// endpoint: it must never fail (5xx) and must always answer HTTP 200 with a
// JSON-RPC response (or array of them), 204 with no body, or 413.
func FuzzJSONRPC(f *testing.F) {
	for _, seed := range []struct{ body, authz string }{
		{`{"id":"1", "method":"user.Authenticate", "jsonrpc":"2.0"}`, "Bearer 5dc78bab-4988-4a15-96a2-9eb084fba6f6 client.genrated.jwt.token"},
		{`{"id":"1", "method":"user.Refresh", "params":"boBCItwS5gvkXgmdJ0vJm7qs2EEgqNV7LVzrY13A", "jsonrpc":"2.0"}`, "Bearer refresh_token"},
		{`[{"jsonrpc":"2.0","method":"user.Refresh","params":["x"],"id":1},{"jsonrpc":"2.0","method":"nope"},3]`, ""},
		{`{"jsonrpc":"2.0","method":"user.Refresh","params":{"a":[1,2]},"id":1.5e3}`, ""},
		{`[]`, ""},
		{`{"jsonrpc":"2.0","method":"nope"}`, ""},
		{`{"jsonrpc":"2.0","method":1,"id":{}}`, ""},
		{`{`, ""},
	} {
		f.Add(seed.body, seed.authz)
	}
	ts := newTestServer(f)
	handler := ts.Config.Handler
	f.Fuzz(func(t *testing.T, body, authz string) {
		req := httptest.NewRequest("POST", rpcPath, strings.NewReader(body))
		if authz != "" {
			req.Header["Authorization"] = []string{authz}
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		out := w.Body.Bytes()
		switch w.Code {
		case http.StatusNoContent:
			if len(out) != 0 {
				t.Fatalf("204 with a body: %q", out)
			}
			return
		case http.StatusOK, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, out)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var replies []rpcReply
		if trimmed := bytes.TrimSpace(out); len(trimmed) > 0 && trimmed[0] == '[' {
			if err := json.Unmarshal(out, &replies); err != nil || len(replies) == 0 {
				t.Fatalf("bad batch answer %q: %v", out, err)
			}
		} else {
			var one rpcReply
			if err := json.Unmarshal(out, &one); err != nil {
				t.Fatalf("bad answer %q: %v", out, err)
			}
			replies = []rpcReply{one}
		}
		for _, r := range replies {
			if r.JSONRPC != "2.0" || (r.Result == nil) == (r.Error == nil) || r.ID == nil {
				t.Fatalf("not a JSON-RPC 2.0 response: %q", out)
			}
			if r.Error != nil && r.Error.Message == "" {
				t.Fatalf("error without a message: %q", out)
			}
			if r.Error != nil && r.Error.Code == -32603 {
				t.Fatalf("internal error for %q: %q", body, out)
			}
		}
		if !json.Valid([]byte(body)) && (len(replies) != 1 || replies[0].code() != -32700 || string(replies[0].ID) != "null") {
			t.Fatalf("invalid JSON %q answered %q", body, out)
		}
	})
}
