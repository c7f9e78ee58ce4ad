package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// abuseRoute is one route that reads a request body.
type abuseRoute struct {
	method, path string
	auth         bool
	jsonRPC      bool // errors travel as JSON-RPC responses with HTTP 200
}

func abuseRoutes(ideaID string) []abuseRoute {
	return []abuseRoute{
		{method: "POST", path: "/users"},
		{method: "POST", path: "/access-tokens"},
		{method: "POST", path: "/access-tokens/refresh"},
		{method: "DELETE", path: "/access-tokens", auth: true},
		{method: "POST", path: "/ideas", auth: true},
		{method: "PUT", path: "/ideas/" + ideaID, auth: true},
		{method: "POST", path: "/api-clients", auth: true},
		{method: "POST", path: "/v1/auth"},
		{method: "POST", path: "/v1/auth/refreshtoken"},
		{method: "POST", path: "/api/user/authenticate"},
		{method: "POST", path: "/v2/jsonrpc/auth", jsonRPC: true},
	}
}

// mounted reports whether a route exists (a 404 to an empty JSON-RPC call
// means it is not mounted in this build).
func (s *server) mounted(c *http.Client, r abuseRoute) bool {
	if !r.jsonRPC {
		return true
	}
	return rawDo(c, r.method, s.Base+r.path, `{"jsonrpc":"2.0","method":"nope","id":1}`).Status != http.StatusNotFound
}

// TestAbuseLimits: bodies over 1 MiB get 413, headers over 64 KiB get 431,
// deeply nested JSON gets 400 at once, every route; the server stays up.
func TestAbuseLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.signup(t, "abuse")
	i := s.createIdea(t, u.JWT, "abuse target", 1, 2, 3)
	client := loadClient(20 * time.Second)

	t.Run("body over 1 MiB", func(t *testing.T) {
		big := append([]byte(`{"email":"a@example.com","password":"`), bytes.Repeat([]byte("x"), 1<<20)...)
		big = append(big, `"}`...)
		for _, rt := range abuseRoutes(i.ID) {
			if !s.mounted(client, rt) {
				t.Logf("%s %s is not mounted in this build; skipped", rt.method, rt.path)
				continue
			}
			for _, chunked := range []bool{false, true} {
				name := fmt.Sprintf("%s %s chunked=%v", rt.method, rt.path, chunked)
				var body io.Reader = bytes.NewReader(big)
				if chunked {
					body = io.MultiReader(bytes.NewReader(big)) // unknown length
				}
				req, _ := http.NewRequest(rt.method, s.Base+rt.path, body)
				req.Header.Set("Content-Type", "application/json")
				if rt.auth {
					req.Header.Set("X-Access-Token", u.JWT)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("%s: %v, want a 413 answer", name, err)
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !json.Valid(data) {
					t.Errorf("%s with a body of %d bytes: %d %.200s, want 413 with a JSON body", name, len(big), resp.StatusCode, data)
				}
			}
		}
	})

	t.Run("header over 64 KiB", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			headers map[string]string
			want431 bool
		}{
			{"one 32 KiB header (control)", map[string]string{"X-Filler": strings.Repeat("a", 32<<10)}, false},
			{"one 80 KiB header", map[string]string{"X-Filler": strings.Repeat("a", 80<<10)}, true},
			{"three 25 KiB headers", map[string]string{"X-A": strings.Repeat("a", 25<<10), "X-B": strings.Repeat("b", 25<<10), "X-C": strings.Repeat("c", 25<<10)}, true},
			{"an 80 KiB access token", map[string]string{"X-Access-Token": strings.Repeat("a", 80<<10)}, true},
			{"a 1 MiB cookie", map[string]string{"Cookie": "a=" + strings.Repeat("a", 1<<20)}, true},
		} {
			var kv []string
			for k, v := range tc.headers {
				kv = append(kv, k, v)
			}
			r := rawDo(client, "GET", s.Base+"/healthz", nil, kv...)
			switch {
			case r.Err != nil:
				t.Errorf("%s: %v; want an answer", tc.name, r.Err)
			case tc.want431 && r.Status != http.StatusRequestHeaderFieldsTooLarge:
				t.Errorf("%s: %s, want 431", tc.name, r)
			case !tc.want431 && r.Status != http.StatusOK:
				t.Errorf("%s: %s, want 200", tc.name, r)
			}
		}
	})

	t.Run("deeply nested JSON", func(t *testing.T) {
		bodies := map[string]string{
			"100k [":          strings.Repeat("[", 100_000),
			"100k [ ]":        strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000),
			`100k {"a":`:      strings.Repeat(`{"a":`, 100_000),
			`{"email": deep}`: `{"email":` + strings.Repeat("[", 100_000) + "1" + strings.Repeat("]", 100_000) + `}`,
		}
		for _, rt := range abuseRoutes(i.ID) {
			if !s.mounted(client, rt) {
				continue
			}
			for name, body := range bodies {
				var hdr []string
				if rt.auth {
					hdr = []string{"X-Access-Token", u.JWT}
				}
				r := rawDo(client, rt.method, s.Base+rt.path, body, hdr...)
				what := fmt.Sprintf("%s %s with %s", rt.method, rt.path, name)
				switch {
				case r.Err != nil:
					t.Errorf("%s: %v", what, r.Err)
				case r.Elapsed > 2*time.Second:
					t.Errorf("%s: answered after %v, want at once", what, r.Elapsed)
				case rt.jsonRPC && r.Status == http.StatusOK && strings.Contains(string(r.Body), "-32700"):
				case rt.jsonRPC:
					t.Errorf("%s: %s, want a JSON-RPC parse error (-32700)", what, r)
				case rt.path == "/v1/auth" || rt.path == "/v1/auth/refreshtoken" || rt.path == "/api/user/authenticate":
					// These dialects answer a malformed body in their own
					// documented shapes, all 400.
					if r.Status != http.StatusBadRequest || !json.Valid(r.Body) {
						t.Errorf("%s: %s, want 400 with a JSON body", what, r)
					}
				case r.Status != http.StatusBadRequest || !jsonObject(r.Body):
					t.Errorf("%s: %s, want 400 with a JSON body", what, r)
				}
			}
		}
	})

	// Still up, and still serving the user.
	expect(t, s.do(t, "GET", "/readyz", nil), http.StatusOK)
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
}

// TestAbuseSlowHeaders: a client that sends its request headers a byte at
// a time, slower than the 5 s read-header timeout, is cut off.
func TestAbuseSlowHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(conn)
		closed <- fmt.Sprintf("%q, %v", b, err)
	}()
	req := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 100) + "\r\n\r\n"
	start := time.Now()
	sent := 0
	for sent < len(req) {
		select {
		case got := <-closed:
			took := time.Since(start)
			t.Logf("cut off after %v and %d of %d header bytes (read %s)", took.Round(time.Millisecond), sent, len(req), got)
			if took > 8*time.Second {
				t.Errorf("a slowloris client was cut off only after %v; the read-header timeout is 5 s", took)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{req[sent]}); err != nil {
			t.Logf("write failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			break
		}
		sent++
		if time.Since(start) > 12*time.Second {
			break
		}
	}
	select {
	case <-closed:
		if took := time.Since(start); took > 8*time.Second {
			t.Errorf("a slowloris client was cut off only after %v; the read-header timeout is 5 s", took)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("a client sending its headers a byte every 200 ms is still connected after %v (%d bytes sent): no read-header timeout", time.Since(start).Round(time.Millisecond), sent)
	}
}

// TestAbuseCommonPassword: signup with a password from the embedded common
// list, in any letter case, is refused with a 422 that names the password.
func TestAbuseCommonPassword(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, pw := range []string{"Password1", "pAssWord1", "Qwerty123", "Iloveyou1", "1qaz2WSX"} {
		r := s.do(t, "POST", "/users", map[string]any{"email": uniqueEmail("common"), "name": "Common", "password": pw})
		if r.Status == http.StatusUnprocessableEntity {
			var body struct {
				Fields map[string]string `json:"fields"`
			}
			r.decode(t, &body)
			if _, ok := body.Fields["password"]; !ok || !strings.Contains(strings.ToLower(string(r.Body)), "common") {
				t.Errorf("%s: want fields.password saying the password is too common", r)
			}
			continue
		}
		t.Errorf("signup with the common password %q: %s, want 422 naming password", pw, r)
	}
	// Control: a password that is not common passes.
	s.signup(t, "uncommon")
}
