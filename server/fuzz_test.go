package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fuzzRoute is one route that binds a request body.
type fuzzRoute struct {
	method, path string
	auth         bool
}

// fuzzRoutes are every route that reads a body; the fuzzer picks one by
// index, so keep the order stable (the corpus refers to it).
func fuzzRoutes(ideaID string) []fuzzRoute {
	return []fuzzRoute{
		{"POST", "/users", false},
		{"POST", "/access-tokens", false},
		{"POST", "/access-tokens/refresh", false},
		{"DELETE", "/access-tokens", true},
		{"POST", "/ideas", true},
		{"PUT", "/ideas/" + ideaID, true},
		{"POST", "/v1/auth", false},
		{"POST", "/v1/auth/refreshtoken", false},
		{"POST", "/api/user/authenticate", false},
		{"POST", "/api-clients", true},
		{"POST", "/v2/jsonrpc/auth", false},
	}
}

var fuzzContentTypes = []string{
	"application/json",
	"application/x-www-form-urlencoded",
	"",
	"text/plain",
	"application/json; charset=utf-8",
	"multipart/form-data; boundary=x",
	"application/x-www-form-urlencoded; charset=\"",
}

// FuzzRequestBodies sends arbitrary bodies with arbitrary content types to
// every route that binds a body, through the whole middleware chain: the
// answer is never a 5xx (a panic would be one, or crash the fuzzer), and
// every error has a JSON body.
func FuzzRequestBodies(f *testing.F) {
	seeds := []string{
		``,
		`{}`,
		`[]`,
		`null`,
		`{"email":"a@example.com","name":"A","password":"short"}`,
		`{"email":"nope","password":"the-Secret-123"}`,
		`{"email":["a"],"password":{"x":1}}`,
		`{"refresh_token":123}`,
		`{"refresh_token":"x","refresh_token":"y"}`,
		`{"content":"x","impact":1,"ease":2,"confidence":3.5}`,
		`{"content":"","impact":"5","ease":null,"confidence":1e309}`,
		`{"content":"\ud800","impact":10,"ease":10,"confidence":-1}`,
		`{"username":"","password":""}`,
		`{"userName":1,"password":true}`,
		`{"refreshtoken":null}`,
		`{"name":"ci","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`,
		`{"name":"ci","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`,
		`{"name":"ci","jwk":"not an object"}`,
		`{"jsonrpc":"2.0","method":"user.Refresh","params":["x"],"id":1}`,
		`email=a%40example.com&password=x&password=y`,
		`content=%zz&impact=1`,
		`content=x&impact=1&ease=1&confidence=11`,
		"\xff\xfe{\x00}",
		strings.Repeat("[", 10000),
		`{"a":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 201),
	}
	routes := fuzzRoutes("x")
	for i, s := range seeds {
		f.Add(uint8(i%len(routes)), fuzzContentTypes[i%len(fuzzContentTypes)], []byte(s))
	}
	for i := range routes { // every route at least with an empty and a bad body
		f.Add(uint8(i), "application/json", []byte(`{"x":`))
		f.Add(uint8(i), "", []byte(`a=b`))
	}

	ts := newTestServer(f)
	p := ts.signup(f, "fuzz@example.com")
	r := ts.do(f, "POST", "/ideas", map[string]any{"content": "target", "impact": 1, "ease": 2, "confidence": 3}, auth(p)...)
	var created struct {
		ID string `json:"id"`
	}
	r.json(f, &created)
	routes = fuzzRoutes(created.ID)
	handler := ts.Config.Handler

	f.Fuzz(func(t *testing.T, route uint8, contentType string, body []byte) {
		rt := routes[int(route)%len(routes)]
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		if contentType != "" {
			req.Header["Content-Type"] = []string{contentType}
		}
		if rt.auth {
			req.Header.Set("X-Access-Token", p.JWT)
		}
		w := httptest.NewRecorder()
		start := time.Now()
		handler.ServeHTTP(w, req)
		took := time.Since(start)
		out := w.Body.Bytes()
		if took > 3*time.Second {
			t.Fatalf("%s %s (Content-Type %q) with body %q: answered after %v", rt.method, rt.path, contentType, body, took)
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s (Content-Type %q) with body %q: %d %s", rt.method, rt.path, contentType, body, w.Code, out)
		}
		if w.Code >= 400 && !json.Valid(out) {
			t.Fatalf("%s %s (Content-Type %q) with body %q: %d with a body that is not JSON: %q", rt.method, rt.path, contentType, body, w.Code, out)
		}
		if w.Code == http.StatusNoContent && len(out) != 0 {
			t.Fatalf("%s %s: 204 with a body %q", rt.method, rt.path, out)
		}
	})
}
