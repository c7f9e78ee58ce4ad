package e2e_test

// TestDialects is an independent black-box contract test of the three extra
// auth dialects of "ideapool serve" (issue 3): JSON-RPC 2.0 at
// /v2/jsonrpc/auth (seed 000), /v1/auth (seed 001) and
// /api/user/authenticate (seed 002), on the accounts and sessions of the
// Idea Pool API (seed 003). It is written from those documents only.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestDialects(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		s := startServer(t)
		dlDefaultServer(t, s)
	})
	t.Run("custom-flags", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "--id-token-audience", "custom", "--id-token-ttl", "17m",
			"--access-token-ttl", "7m", "--refresh-reuse-grace", "0s")
		s.TTL = 7 * time.Minute
		dlCustomServer(t, s)
	})
	t.Run("short-refresh-ttl", func(t *testing.T) {
		t.Parallel()
		// The refresh TTL may not be shorter than the access TTL.
		s := startServer(t, "--refresh-token-ttl", "3s", "--access-token-ttl", "2s")
		s.TTL = 2 * time.Second
		dlShortServer(t, s)
	})
	t.Run("throttling", func(t *testing.T) {
		t.Parallel()
		s := startServer(t)
		dlThrottle(t, s)
	})
}

// ====================================================================
// the server with the default flags

func dlDefaultServer(t *testing.T, s *server) {
	id := dlDefaultID()
	ua := dlUAWant{Role: 1, AccessTTL: 10 * time.Minute, RefreshTTL: 720 * time.Hour}

	t.Run("v1/login", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "v1login", "V1.Login_user-1")
		byName := dlV1OK(t, s, dlV1Login(t, s, "v1.login_user-1", a.Password), a, id)
		byEmail := dlV1OK(t, s, dlV1Login(t, s, a.Email, a.Password), a, id)
		if byName.Refresh == byEmail.Refresh {
			t.Errorf("two logins got the same refresh token")
		}
		if r := dlV1Login(t, s, "V1.LOGIN_USER-1", a.Password); r.Status != http.StatusOK {
			t.Logf("note: login at /v1/auth with the username in another case: %s", r)
		}

		// The access token works; the ID token is never an access token.
		expect(t, s.do(t, "GET", "/me", nil, withToken(byName.Access)), http.StatusOK)
		expect(t, s.do(t, "GET", "/me", nil, withToken(byName.ID)), http.StatusUnauthorized)
		expect(t, s.do(t, "GET", "/me", nil, withBearer(byName.ID)), http.StatusUnauthorized)
		expect(t, s.do(t, "GET", "/ideas", nil, withBearer(byEmail.ID)), http.StatusUnauthorized)

		// Wrong credentials: one exact body, whatever was wrong.
		dlExact(t, dlV1Login(t, s, a.Email, a.Password+"x"), http.StatusBadRequest, dlV1LoginFailed)
		dlExact(t, dlV1Login(t, s, "v1.login_user-1", "Wrong-Pass-1"), http.StatusBadRequest, dlV1LoginFailed)
		dlExact(t, dlV1Login(t, s, "nobody-"+dlRandHex(4), a.Password), http.StatusBadRequest, dlV1LoginFailed)
		dlExact(t, dlV1Login(t, s, uniqueEmail("nobody"), a.Password), http.StatusBadRequest, dlV1LoginFailed)
		// A missing field: 400 Login failed (the README promises the very same
		// body as for wrong credentials; the issue does not say).
		for _, body := range []any{map[string]any{"username": a.Email}, map[string]any{"password": a.Password}} {
			r := s.do(t, "POST", "/v1/auth", body)
			if m := r.object(t); r.Status != http.StatusBadRequest || dlJSONLit(m["statusCode"]) != "400" || m["statusMessage"] != "Login failed" {
				t.Errorf("%s: a missing field: want 400 {statusCode:400, statusMessage:Login failed, ...}", r)
			} else if m["error"] != "Incorrect username or password." {
				t.Logf("note (README says the same body as wrong credentials): %s", r)
			}
		}
	})

	t.Run("v1/refreshtoken", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "v1refresh", "")
		first := dlV1OK(t, s, dlV1Login(t, s, a.Email, a.Password), a, id)
		next := dlV1OK(t, s, dlV1Refresh(t, s, first.Refresh), a, id)
		if next.Refresh == first.Refresh {
			t.Errorf("/v1/auth/refreshtoken returned the same refresh token: it must be a new one")
		}
		if next.Access == first.Access {
			t.Errorf("/v1/auth/refreshtoken must return a new access token")
		}
		dlV1OK(t, s, dlV1Refresh(t, s, next.Refresh), a, id)

		dlExact(t, s.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{}), http.StatusBadRequest, dlV1Missing)
		dlExact(t, dlV1Refresh(t, s, "not-a-refresh-token-"+dlRandHex(24)), http.StatusBadRequest, dlV1InvalidToken)
		// Neither of the JWTs is a refresh token.
		dlExact(t, dlV1Refresh(t, s, first.Access), http.StatusBadRequest, dlV1InvalidToken)
		dlExact(t, dlV1Refresh(t, s, first.ID), http.StatusBadRequest, dlV1InvalidToken)
		if r := s.do(t, "POST", "/v1/auth/refreshtoken", map[string]any{"refreshtoken": ""}); r.Status != http.StatusBadRequest {
			t.Errorf("%s: an empty refresh token, want 400", r)
		}
	})

	t.Run("v1/auth_time-kept-on-refresh", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "authtime", "")
		first := dlV1OK(t, s, dlV1Login(t, s, a.Email, a.Password), a, id)
		time.Sleep(1100 * time.Millisecond)
		next := dlV1OK(t, s, dlV1Refresh(t, s, first.Refresh), a, id)
		if first.IDClaims != nil && next.IDClaims != nil {
			if dlJSONLit(first.IDClaims["auth_time"]) != dlJSONLit(next.IDClaims["auth_time"]) {
				t.Errorf("refreshed ID token: auth_time = %v, want the original authentication time %v (OIDC Core 12.2)",
					next.IDClaims["auth_time"], first.IDClaims["auth_time"])
			}
			if dlJSONLit(first.IDClaims["iat"]) == dlJSONLit(next.IDClaims["iat"]) {
				t.Errorf("refreshed ID token: iat unchanged, want the time the new ID token was issued")
			}
		}
	})

	t.Run("ua/member", func(t *testing.T) {
		t.Parallel()
		plain := dlSignup(t, s, "ua-plain", "")
		w := ua
		w.UserName = plain.Email // without a username, the username is the email
		dlUAOK(t, s, dlUALogin(t, s, plain.Email, plain.Password), plain, w)

		named := dlSignup(t, s, "ua-named", "Ua.Named-User_7")
		w.UserName = "ua.named-user_7"
		dlUAOK(t, s, dlUALogin(t, s, "ua.named-user_7", named.Password), named, w)
		dlUAOK(t, s, dlUALogin(t, s, named.Email, named.Password), named, w)

		// Wrong credentials: 401 INVALID_CREDENTIALS, the same for an unknown user.
		bad := dlUALogin(t, s, named.Email, "Wrong-Pass-1")
		dlUAError(t, bad, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		unknown := dlUALogin(t, s, "nobody-"+dlRandHex(4), named.Password)
		dlUAError(t, unknown, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		if string(bad.Body) != string(unknown.Body) {
			t.Errorf("a wrong password and an unknown user must get the same body:\n%s\n%s", bad, unknown)
		}

		// Malformed or incomplete bodies: 400 INVALID_REQUEST.
		for _, body := range []string{
			`{"userName":"x"`,
			`not json`,
			`[]`,
			`"userName"`,
			`{}`,
			`{"userName":"` + named.Email + `"}`,
			`{"password":"` + named.Password + `"}`,
			`{"userName":5,"password":"` + named.Password + `"}`,
			`{"userName":"` + named.Email + `","password":["x"]}`,
		} {
			dlUAError(t, s.do(t, "POST", "/api/user/authenticate", rawJSON(body)), http.StatusBadRequest, "INVALID_REQUEST")
		}
		dlUAError(t, s.do(t, "POST", "/api/user/authenticate", nil, withHeader("Content-Type", "application/json")),
			http.StatusBadRequest, "INVALID_REQUEST")
	})

	t.Run("ua/admin-from-cli", func(t *testing.T) {
		t.Parallel()
		admin := &dlAccount{Email: uniqueEmail("dl-admin"), Name: "Dl Admin", Password: "Adm1n-Pass-" + dlRandHex(4), Username: "Admin"}
		s.remember(admin.Password)
		dlCLI(t, s, admin.Password+"\n", "create", "--email", admin.Email, "--name", admin.Name, "--username", admin.Username, "--role", "2")
		r := dlUALogin(t, s, "admin", admin.Password)
		if r.Status == http.StatusOK {
			m := r.object(t)
			tok, _ := m["accessToken"].(string)
			if c := s.verify(t, tok); c != nil {
				admin.Sub, _ = c["sub"].(string)
			}
		}
		w := ua
		w.UserName, w.Role = "admin", 2
		dlUAOK(t, s, r, admin, w)
		// The same account at the other dialects.
		admin.Sub = ""
		v1 := dlV1OK(t, s, dlV1Login(t, s, "admin", admin.Password), nil, id)
		if v1.IDClaims != nil && v1.IDClaims["email"] != admin.Email {
			t.Errorf("ID token of the CLI-created admin: email = %v, want %q", v1.IDClaims["email"], admin.Email)
		}
		must(t, s.login(t, admin.Email, admin.Password), http.StatusCreated)
		if out := dlCLI(t, s, "", "list"); !strings.Contains(out, admin.Email) {
			t.Errorf("ideapool users list does not show %s:\n%s", admin.Email, out)
		}
	})

	t.Run("accounts/username", func(t *testing.T) {
		t.Parallel()
		post := func(username any) response {
			return s.do(t, "POST", "/users", map[string]any{
				"email": uniqueEmail("dl-uname"), "name": "U", "password": "Dl-Secret-Uname-1", "username": username,
			})
		}
		for _, ok := range []string{"abc", "A.b", "x_y-z.9", strings.Repeat("q", 64), "Dash-Dot.Under_Score"} {
			r := post(ok)
			expect(t, r, http.StatusCreated)
		}
		for _, bad := range []any{"ab", "x", strings.Repeat("w", 65), "has space", "a/b", "at@sign", "ünï", "semi;colon",
			"plus+", "tab\tx", 42, true} {
			r := post(bad)
			expect422(t, r, "username")
		}
		// Unique ignoring case; stored lower-case.
		a := dlSignup(t, s, "taken", "Taken.Name")
		for _, dup := range []string{"Taken.Name", "taken.name", "TAKEN.NAME"} {
			r := post(dup)
			expect(t, r, http.StatusConflict)
		}
		w := ua
		w.UserName = "taken.name"
		dlUAOK(t, s, dlUALogin(t, s, "taken.name", a.Password), a, w)
		// Without a username the email is the username: it works at both dialects.
		b := dlSignup(t, s, "nouname", "")
		dlV1OK(t, s, dlV1Login(t, s, b.Email, b.Password), b, id)
	})

	t.Run("api-clients", func(t *testing.T) {
		t.Parallel()
		owner := dlSignup(t, s, "clients", "")
		other := dlSignup(t, s, "clients-other", "")
		expect(t, s.do(t, "POST", "/api-clients", map[string]any{"name": "x"}), http.StatusUnauthorized)
		expect(t, s.do(t, "GET", "/api-clients", nil), http.StatusUnauthorized)

		hs := dlNewHSClient(t, s, owner)
		ec := dlNewKeyClient(t, s, owner, "EC")
		ed := dlNewKeyClient(t, s, owner, "OKP")
		foreign := dlNewHSClient(t, s, other)

		r := s.do(t, "GET", "/api-clients", nil, withToken(owner.JWT))
		must(t, r, http.StatusOK)
		body := string(r.Body)
		for _, c := range []*dlClient{hs, ec, ed} {
			if !strings.Contains(body, c.ID) {
				t.Errorf("%s: the list does not show the caller's client %s", r, c.ID)
			}
		}
		if strings.Contains(body, foreign.ID) {
			t.Errorf("%s: the list shows another user's client %s", r, foreign.ID)
		}
		if strings.Contains(body, hs.Secret) || strings.Contains(body, foreign.Secret) {
			t.Errorf("%s: GET /api-clients shows a client secret", r)
		}
		dlNoSecretMember(t, r.String(), dlDecode(t, r.String(), r.Body))

		// Each client authenticates its owner.
		for _, c := range []*dlClient{hs, ec, ed} {
			resp, rid := dlAuthenticate(t, s, c.ID, c.assertion(t, s, nil))
			_, rt := dlRPCTokens(t, s, resp, rid, owner)
			// The session is a real one: its refresh token works at 003.
			expect(t, s.refresh(t, rt), http.StatusOK)
		}

		// Another user cannot revoke it.
		if r := s.do(t, "DELETE", "/api-clients/"+hs.ID, nil, withToken(other.JWT)); r.Status < 400 {
			t.Errorf("%s: another user revoked the client", r)
		}
		resp, rid := dlAuthenticate(t, s, hs.ID, hs.assertion(t, s, nil))
		dlRPCTokens(t, s, resp, rid, owner)

		// Revoked: 204, then -32001.
		expect(t, s.do(t, "DELETE", "/api-clients/"+hs.ID, nil, withToken(owner.JWT)), http.StatusNoContent)
		resp, rid = dlAuthenticate(t, s, hs.ID, hs.assertion(t, s, nil))
		dlRPCError(t, resp, rid, -32001)
		expect(t, s.do(t, "DELETE", "/api-clients/"+ec.ID, nil, withBearer(owner.JWT)), http.StatusNoContent)
		resp, rid = dlAuthenticate(t, s, ec.ID, ec.assertion(t, s, nil))
		dlRPCError(t, resp, rid, -32001)
		// The others still work.
		resp, rid = dlAuthenticate(t, s, ed.ID, ed.assertion(t, s, nil))
		dlRPCTokens(t, s, resp, rid, owner)

		r = s.do(t, "GET", "/api-clients", nil, withToken(owner.JWT))
		must(t, r, http.StatusOK)
		if strings.Contains(string(r.Body), hs.Secret) {
			t.Errorf("%s: GET /api-clients shows a client secret", r)
		}
	})

	dlRPCAuthenticate(t, s)
	dlRPCRefreshTests(t, s)
	dlRPCProtocol(t, s)
	dlSessions(t, s)
}

// dlNoSecretMember: no member named like a secret holds a value.
func dlNoSecretMember(t *testing.T, what string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if strings.Contains(strings.ToLower(k), "secret") && val != nil && val != "" {
				t.Errorf("%s: member %q holds a secret", what, k)
			}
			dlNoSecretMember(t, what, val)
		}
	case []any:
		for _, e := range x {
			dlNoSecretMember(t, what, e)
		}
	}
}

// ====================================================================
// JSON-RPC user.Authenticate

func dlRPCAuthenticate(t *testing.T, s *server) {
	t.Run("rpc/authenticate", func(t *testing.T) {
		t.Parallel()
		owner := dlSignup(t, s, "rpc-auth", "")
		c := dlNewHSClient(t, s, owner)
		// The seed's request, exactly (string id).
		resp, rid := dlAuthenticate(t, s, c.ID, c.assertion(t, s, nil))
		access, rt := dlRPCTokens(t, s, resp, rid, owner)
		r := s.do(t, "GET", "/me", nil, withToken(access))
		must(t, r, http.StatusOK)
		if m := r.object(t); m["email"] != owner.Email {
			t.Errorf("%s: the session is not the client owner's (%s)", r, owner.Email)
		}
		expect(t, s.refresh(t, rt), http.StatusOK)
		// A numeric id is echoed as a number.
		body := `{"jsonrpc":"2.0","id":7,"method":"user.Authenticate"}`
		resp = dlRPC(t, s, body, withHeader("Authorization", "Bearer "+c.ID+" "+c.assertion(t, s, nil)))
		dlRPCTokens(t, s, resp, `7`, owner)
		// Boundaries that are allowed: exactly 5 minutes long; iat 30 s ahead.
		resp, rid = dlAuthenticate(t, s, c.ID, c.assertion(t, s, func(cl jwt.MapClaims) {
			now := time.Now().Unix()
			cl["iat"], cl["exp"] = now, now+300
		}))
		dlRPCTokens(t, s, resp, rid, owner)
		resp, rid = dlAuthenticate(t, s, c.ID, c.assertion(t, s, func(cl jwt.MapClaims) {
			now := time.Now().Unix()
			cl["iat"], cl["exp"] = now+30, now+120
		}))
		dlRPCTokens(t, s, resp, rid, owner)
		// aud may be an array that holds our issuer (RFC 7519 4.1.3).
		resp, rid = dlAuthenticate(t, s, c.ID, c.assertion(t, s, func(cl jwt.MapClaims) {
			cl["aud"] = []string{s.Issuer}
		}))
		dlRPCTokens(t, s, resp, rid, owner)
	})

	type refusal struct {
		name   string
		code   int
		claim  string // for -32003
		mutate func(jwt.MapClaims)
	}
	cases := []refusal{}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "jti"} {
		claim := claim
		cases = append(cases, refusal{"missing-" + claim, -32003, claim, func(cl jwt.MapClaims) { delete(cl, claim) }})
	}
	cases = append(cases,
		refusal{"expired", -32019, "", func(cl jwt.MapClaims) {
			now := time.Now().Unix()
			cl["iat"], cl["exp"] = now-90, now-30
		}},
		refusal{"wrong-iss", -32004, "", func(cl jwt.MapClaims) { cl["iss"] = "someone-else" }},
		refusal{"wrong-sub", -32004, "", func(cl jwt.MapClaims) { cl["sub"] = "someone-else" }},
		refusal{"wrong-aud", -32005, "", func(cl jwt.MapClaims) { cl["aud"] = "https://elsewhere.example" }},
		refusal{"lifetime-over-5min", -32006, "", func(cl jwt.MapClaims) {
			now := time.Now().Unix()
			cl["iat"], cl["exp"] = now, now+301+30
		}},
		refusal{"iat-in-future", -32007, "", func(cl jwt.MapClaims) {
			now := time.Now().Unix()
			cl["iat"], cl["exp"] = now+120, now+240
		}},
	)
	for _, tc := range cases {
		t.Run("rpc/authenticate-refused/"+tc.name, func(t *testing.T) {
			t.Parallel()
			owner := dlSignup(t, s, "rpc-"+tc.name, "")
			c := dlNewHSClient(t, s, owner)
			resp, rid := dlAuthenticate(t, s, c.ID, c.assertion(t, s, tc.mutate))
			e := dlRPCError(t, resp, rid, tc.code)
			if tc.claim != "" && e != nil {
				data, ok := e["data"]
				if !ok || !strings.Contains(dlJSONLit(data), `"`+tc.claim+`"`) {
					t.Errorf("%s: error.data must name the missing claim %q", resp, tc.claim)
				}
			}
			// The client itself is fine.
			resp, rid = dlAuthenticate(t, s, c.ID, c.assertion(t, s, nil))
			dlRPCTokens(t, s, resp, rid, owner)
		})
	}

	t.Run("rpc/authenticate-refused/replayed-jti", func(t *testing.T) {
		t.Parallel()
		owner := dlSignup(t, s, "rpc-replay", "")
		c := dlNewHSClient(t, s, owner)
		a := c.assertion(t, s, nil)
		resp, rid := dlAuthenticate(t, s, c.ID, a)
		dlRPCTokens(t, s, resp, rid, owner)
		resp, rid = dlAuthenticate(t, s, c.ID, a)
		dlRPCError(t, resp, rid, -32008)
		// Another assertion with the same jti.
		cl := c.claims(s)
		var jti string
		_, p, _ := tokenParts(t, a)
		jti, _ = p["jti"].(string)
		cl["jti"] = jti
		cl["exp"] = time.Now().Add(3 * time.Minute).Unix()
		resp, rid = dlAuthenticate(t, s, c.ID, dlSign(t, s, c.method, c.key, cl))
		dlRPCError(t, resp, rid, -32008)
	})

	t.Run("rpc/authenticate-refused/bad-signature", func(t *testing.T) {
		t.Parallel()
		owner := dlSignup(t, s, "rpc-badsig", "")
		hs := dlNewHSClient(t, s, owner)
		ec := dlNewKeyClient(t, s, owner, "EC")
		ed := dlNewKeyClient(t, s, owner, "OKP")
		// HS256 with another secret.
		resp, rid := dlAuthenticate(t, s, hs.ID, dlSign(t, s, jwt.SigningMethodHS256, []byte(hs.Secret+"x"), hs.claims(s)))
		dlRPCError(t, resp, rid, -32002)
		// A tampered payload.
		a := hs.assertion(t, s, nil)
		parts := strings.Split(a, ".")
		cl := hs.claims(s)
		cl["exp"] = time.Now().Add(4 * time.Minute).Unix()
		parts[1] = b64json(t, cl)
		resp, rid = dlAuthenticate(t, s, hs.ID, strings.Join(parts, "."))
		dlRPCError(t, resp, rid, -32002)
		// Key clients signed with another key of the same kind.
		for _, c := range []*dlClient{ec, ed} {
			kty := "EC"
			if c == ed {
				kty = "OKP"
			}
			m, k, _ := dlKeyPair(t, kty)
			resp, rid := dlAuthenticate(t, s, c.ID, dlSign(t, s, m, k, c.claims(s)))
			dlRPCError(t, resp, rid, -32002)
		}
		// Another alg than the client's: HS256 for a key client, alg none.
		resp, rid = dlAuthenticate(t, s, ec.ID, dlSign(t, s, jwt.SigningMethodHS256, []byte("guessable-"+ec.ID), ec.claims(s)))
		dlRPCError(t, resp, rid, -32002)
		none, err := jwt.NewWithClaims(jwt.SigningMethodNone, hs.claims(s)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		// alg none: "another alg than the client's" (-32002), or, as the
		// signature part is empty, "not a JWT" (-32009); both refuse it.
		resp, rid = dlAuthenticate(t, s, hs.ID, none)
		if m := dlRPCSingle(t, resp, rid); dlJSONLit(m["error"]) == "null" || m["error"] == nil {
			t.Errorf("%s: an alg none assertion must be refused", resp)
		} else if e := m["error"].(map[string]any); dlJSONLit(e["code"]) != "-32002" && dlJSONLit(e["code"]) != "-32009" {
			t.Errorf("%s: alg none: want -32002 (or -32009)", resp)
		}
		// And the real ones still work.
		for _, c := range []*dlClient{hs, ec, ed} {
			resp, rid := dlAuthenticate(t, s, c.ID, c.assertion(t, s, nil))
			dlRPCTokens(t, s, resp, rid, owner)
		}
	})

	t.Run("rpc/authenticate-refused/unknown-client", func(t *testing.T) {
		t.Parallel()
		fake := &dlClient{ID: "5dc78bab-4988-4a15-96a2-9eb084fba6f6", method: jwt.SigningMethodHS256, key: []byte(dlRandHex(32))}
		resp, rid := dlAuthenticate(t, s, fake.ID, fake.assertion(t, s, nil))
		dlRPCError(t, resp, rid, -32001)
		// A real client's assertion under another (unknown) client id.
		owner := dlSignup(t, s, "rpc-unknown", "")
		c := dlNewHSClient(t, s, owner)
		resp, rid = dlAuthenticate(t, s, "no-such-client-"+dlRandHex(4), c.assertion(t, s, nil))
		if e := dlRPCError(t, resp, rid, -32001); e == nil {
			t.Logf("note: %s", resp)
		}
	})

	t.Run("rpc/authenticate-refused/malformed-assertion", func(t *testing.T) {
		t.Parallel()
		owner := dlSignup(t, s, "rpc-malformed", "")
		c := dlNewHSClient(t, s, owner)
		// No Authorization header at all.
		resp, rid := dlAuthenticate(t, s, "", "")
		dlRPCError(t, resp, rid, -32009)
		for _, h := range []string{
			"Bearer " + c.ID,
			"Bearer " + c.ID + " not-a-jwt",
			"Basic " + c.ID + " " + c.assertion(t, s, nil),
		} {
			body := `{"jsonrpc":"2.0","id":"m","method":"user.Authenticate"}`
			dlRPCError(t, dlRPC(t, s, body, withHeader("Authorization", h)), `"m"`, -32009)
		}
	})
}

// ====================================================================
// JSON-RPC user.Refresh

func dlRPCRefreshTests(t *testing.T, s *server) {
	t.Run("rpc/refresh", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "rpc-refresh", "")
		r0 := a.Refresh
		resp, rid := dlRPCRefresh(t, s, r0) // a string
		_, r1 := dlRPCTokens(t, s, resp, rid, a)
		if r1 == r0 {
			t.Fatalf("user.Refresh returned the same refresh token: it must be a new one")
		}
		// Within the grace, the immediately previous token: the same successor.
		resp, rid = dlRPCRefresh(t, s, r0)
		if _, again := dlRPCTokens(t, s, resp, rid, a); again != r1 {
			t.Errorf("user.Refresh with the just-rotated token within the grace: refresh_token %.10s..., want the same successor %.10s...", again, r1)
		}
		resp, rid = dlRPCRefresh(t, s, []string{r1}) // an array holding it
		_, r2 := dlRPCTokens(t, s, resp, rid, a)
		if r2 == r1 || r2 == r0 {
			t.Fatalf("user.Refresh returned an old refresh token")
		}
		// Two generations old: refused, and the whole session with it.
		resp, rid = dlRPCRefresh(t, s, r0)
		dlRPCError(t, resp, rid, -32010)
		resp, rid = dlRPCRefresh(t, s, r2)
		dlRPCError(t, resp, rid, -32010)
		expect(t, s.refresh(t, r2), http.StatusUnauthorized)
		// Unknown.
		resp, rid = dlRPCRefresh(t, s, "unknown-"+dlRandHex(24))
		dlRPCError(t, resp, rid, -32010)
	})

	t.Run("rpc/refresh-wrong-params", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "rpc-params", "")
		for _, p := range []string{`42`, `true`, `{"refresh_token":"` + a.Refresh + `"}`, `[42]`, `[]`,
			`["` + a.Refresh + `","` + a.Refresh + `"]`, `[["` + a.Refresh + `"]]`, `null`} {
			body := `{"jsonrpc":"2.0","id":"p","method":"user.Refresh","params":` + p + `}`
			dlRPCError(t, dlRPC(t, s, body), `"p"`, -32606)
		}
		dlRPCError(t, dlRPC(t, s, `{"jsonrpc":"2.0","id":"p","method":"user.Refresh"}`), `"p"`, -32606)
		// The session was not touched.
		expect(t, s.refresh(t, a.Refresh), http.StatusOK)
	})
}

// ====================================================================
// JSON-RPC 2.0 itself

func dlRPCProtocol(t *testing.T, s *server) {
	t.Run("rpc/protocol", func(t *testing.T) {
		t.Parallel()
		// Parse errors: -32700 with id null.
		for _, body := range []string{`{"jsonrpc":"2.0","method":"user.Refresh","params":"x","id":1`, `not json`,
			`[{"jsonrpc":"2.0","method":"user.Refresh","params":"x","id":1},{"jsonrpc"`} {
			dlRPCError(t, dlRPC(t, s, body), `null`, -32700)
		}
		// [] is one -32600 error object, not an array.
		dlRPCError(t, dlRPC(t, s, `[]`), `null`, -32600)
		// Invalid Request objects.
		for _, body := range []string{`1`, `"x"`, `null`, `{}`, `{"foo":"bar"}`, `{"jsonrpc":"2.0","method":1,"params":"x","id":null}`} {
			dlRPCError(t, dlRPC(t, s, body), `null`, -32600)
		}
		for _, body := range []string{
			`{"jsonrpc":"1.0","method":"user.Refresh","params":"x","id":1}`,
			`{"method":"user.Refresh","params":"x","id":1}`,
			`{"jsonrpc":"2.0","id":1}`,
			`{"jsonrpc":"2.0","method":1,"params":"x","id":1}`,
			`{"jsonrpc":"2.0","method":"user.Refresh","params":"x","id":{}}`,
			`{"jsonrpc":"2.0","method":"user.Refresh","params":"x","id":[1]}`,
		} {
			m := dlRPCSingle(t, dlRPC(t, s, body), dlAnyID)
			dlRPCErrObj(t, body, m, -32600)
			if id := dlJSONLit(m["id"]); id != `null` && id != `1` {
				t.Errorf("%s: id = %s, want the request's id or null", body, id)
			}
		}
		// Unknown method.
		dlRPCError(t, dlRPC(t, s, `{"jsonrpc":"2.0","method":"user.Nope","id":"u"}`), `"u"`, -32601)
		dlRPCError(t, dlRPC(t, s, `{"jsonrpc":"2.0","method":"user.refresh","id":"u2"}`), `"u2"`, -32601)

		// A batch of invalid elements: one -32600 per element.
		r := dlRPC(t, s, `[1,2,3]`)
		arr := dlBatch(t, r, 3)
		for i, v := range arr {
			dlRPCErrObj(t, fmt.Sprintf("%s [%d]", r, i), dlRPCObject(t, r.String(), v, `null`), -32600)
		}

		// A mixed batch: answered in order, notifications left out.
		a := dlSignup(t, s, "rpc-batch", "")
		body := `[
 {"jsonrpc":"2.0","id":1,"method":"user.Refresh","params":"unknown-` + dlRandHex(20) + `"},
 {"jsonrpc":"2.0","method":"user.Refresh","params":"unknown-notification"},
 {"jsonrpc":"2.0","id":"b","method":"no.such.method"},
 {"jsonrpc":"2.0","id":3,"method":"user.Refresh","params":["` + a.Refresh + `"]},
 5,
 {"jsonrpc":"2.0","method":"no.such.method"},
 {"jsonrpc":"2.0","id":4,"method":"user.Refresh","params":7}
]`
		r = dlRPC(t, s, body)
		arr = dlBatch(t, r, 5)
		if len(arr) == 5 {
			dlRPCErrObj(t, r.String()+" [0]", dlRPCObject(t, r.String(), arr[0], `1`), -32010)
			dlRPCErrObj(t, r.String()+" [1]", dlRPCObject(t, r.String(), arr[1], `"b"`), -32601)
			m := dlRPCObject(t, r.String(), arr[2], `3`)
			if res, ok := m["result"].(map[string]any); !ok || !sameKeys(res, "jwt_access_token", "refresh_token") {
				t.Errorf("%s [2]: want a result {jwt_access_token, refresh_token}", r)
			} else if tok, _ := res["jwt_access_token"].(string); tok != "" {
				s.remember(tok)
				if rt, _ := res["refresh_token"].(string); rt != "" {
					s.remember(rt)
				}
				if c := s.verify(t, tok); c != nil && c["sub"] != a.Sub {
					t.Errorf("%s [2]: sub = %v, want %q", r, c["sub"], a.Sub)
				}
			}
			dlRPCErrObj(t, r.String()+" [3]", dlRPCObject(t, r.String(), arr[3], `null`), -32600)
			dlRPCErrObj(t, r.String()+" [4]", dlRPCObject(t, r.String(), arr[4], `4`), -32606)
		}

		// Notifications: HTTP 204 and no body.
		for _, body := range []string{
			`{"jsonrpc":"2.0","method":"user.Refresh","params":"unknown-` + dlRandHex(20) + `"}`,
			`{"jsonrpc":"2.0","method":"no.such.method"}`,
			`[{"jsonrpc":"2.0","method":"user.Refresh","params":"x"},{"jsonrpc":"2.0","method":"no.such"}]`,
			`[{"jsonrpc":"2.0","method":"user.Authenticate"}]`,
		} {
			r := dlRPC(t, s, body)
			if r.Status != http.StatusNoContent || len(r.Body) != 0 {
				t.Errorf("%s: a notification (or a batch of only notifications) gets HTTP 204 and no body", r)
			}
		}

		// The README's curl sends no JSON content type: still JSON-RPC.
		r = s.do(t, "POST", dlRPCPath, rawJSON(`{"jsonrpc":"2.0","id":"2","method":"user.Refresh","params":"unknown-`+dlRandHex(20)+`"}`),
			withHeader("Content-Type", "application/x-www-form-urlencoded"))
		dlRPCError(t, r, `"2"`, -32010)
	})
}

// dlBatch: HTTP 200 with a JSON array of n elements.
func dlBatch(t *testing.T, r response, n int) []any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Errorf("%s: a batch answer travels with HTTP 200", r)
		return nil
	}
	arr, ok := dlDecode(t, r.String(), r.Body).([]any)
	if !ok {
		t.Errorf("%s: a batch is answered with an array", r)
		return nil
	}
	if len(arr) != n {
		t.Errorf("%s: want %d responses (in order, notifications left out), got %d", r, n, len(arr))
		return nil
	}
	return arr
}

// ====================================================================
// sessions across dialects (default grace, 5 s)

// dlRefreshAt refreshes tok at one dialect's endpoint, checks that
// endpoint's success shape, and returns the refresh token to use next.
func dlRefreshAt(t *testing.T, s *server, dialect, tok string, a *dlAccount, id dlIDRules) string {
	t.Helper()
	switch dialect {
	case "003":
		r := s.refresh(t, tok)
		must(t, r, http.StatusOK)
		m := r.object(t)
		if !sameKeys(m, "jwt") {
			t.Errorf("%s: want exactly {jwt}", r)
		}
		jwtStr, _ := m["jwt"].(string)
		s.remember(jwtStr)
		if c := s.verify(t, jwtStr); c != nil && c["sub"] != a.Sub {
			t.Errorf("%s: sub = %v, want %q", r.What, c["sub"], a.Sub)
		}
		return tok // 003 keeps the refresh token
	case "001":
		next := dlV1OK(t, s, dlV1Refresh(t, s, tok), a, id).Refresh
		if next == tok {
			t.Errorf("/v1/auth/refreshtoken did not rotate the refresh token")
		}
		return next
	case "000":
		resp, rid := dlRPCRefresh(t, s, tok)
		_, next := dlRPCTokens(t, s, resp, rid, a)
		if next == tok {
			t.Errorf("user.Refresh did not rotate the refresh token")
		}
		return next
	}
	t.Fatalf("dialect %s", dialect)
	return ""
}

// dlRefused checks that tok is refused at every endpoint, each in its shape.
func dlRefused(t *testing.T, s *server, tok, why string) {
	t.Helper()
	if r := s.refresh(t, tok); r.Status != http.StatusUnauthorized {
		t.Errorf("%s: %s: want 401", r, why)
	}
	r := dlV1Refresh(t, s, tok)
	if r.Status != http.StatusBadRequest {
		t.Errorf("%s: %s: want the 400 Invalid Refresh Token", r, why)
	} else {
		dlExact(t, r, http.StatusBadRequest, dlV1InvalidToken)
	}
	resp, rid := dlRPCRefresh(t, s, tok)
	m := dlRPCSingle(t, resp, rid)
	if _, ok := m["error"]; !ok {
		t.Errorf("%s: %s: want an error", resp, why)
	} else {
		dlRPCErrObj(t, resp.String(), m, -32010)
	}
}

func dlSessions(t *testing.T, s *server) {
	id := dlDefaultID()

	t.Run("sessions/chain-across-dialects", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "chain", "Chain.User")
		// Start at 003.
		r := s.login(t, a.Email, a.Password)
		must(t, r, http.StatusCreated)
		_, tok := s.tokenPair(t, r)
		for _, d := range []string{"003", "001", "000", "003", "003", "001", "000", "001", "003", "000"} {
			tok = dlRefreshAt(t, s, d, tok, a, id)
		}
		// Start at 001.
		tok = dlV1OK(t, s, dlV1Login(t, s, "chain.user", a.Password), a, id).Refresh
		for _, d := range []string{"000", "003", "001", "003"} {
			tok = dlRefreshAt(t, s, d, tok, a, id)
		}
		// Start at 002.
		_, tok = dlUAOK(t, s, dlUALogin(t, s, "chain.user", a.Password), a,
			dlUAWant{UserName: "chain.user", Role: 1, AccessTTL: 10 * time.Minute, RefreshTTL: 720 * time.Hour})
		for _, d := range []string{"003", "000", "001", "003", "000"} {
			tok = dlRefreshAt(t, s, d, tok, a, id)
		}
		// Start at 000.
		c := dlNewHSClient(t, s, a)
		resp, rid := dlAuthenticate(t, s, c.ID, c.assertion(t, s, nil))
		_, tok = dlRPCTokens(t, s, resp, rid, a)
		for _, d := range []string{"001", "003", "000", "003"} {
			tok = dlRefreshAt(t, s, d, tok, a, id)
		}
		// Logout at 003 ends a session of any dialect.
		expect(t, s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": tok}, withToken(a.JWT)), http.StatusNoContent)
		dlRefused(t, s, tok, "after logout")
	})

	t.Run("sessions/grace-then-reuse-revokes-family", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "grace", "")
		r0 := dlV1OK(t, s, dlV1Login(t, s, a.Email, a.Password), a, id).Refresh
		r1 := dlRefreshAt(t, s, "001", r0, a, id)
		// Lost response: the previous token, within the grace, at 001 and 000:
		// the same successor.
		if again := dlV1OK(t, s, dlV1Refresh(t, s, r0), a, id).Refresh; again != r1 {
			t.Errorf("/v1/auth/refreshtoken with the just-rotated token within the grace: a new token, want the same successor")
		}
		resp, rid := dlRPCRefresh(t, s, r0)
		if _, again := dlRPCTokens(t, s, resp, rid, a); again != r1 {
			t.Errorf("user.Refresh with the just-rotated token within the grace: a new token, want the same successor")
		}
		r2 := dlRefreshAt(t, s, "000", r1, a, id)
		// r0 is two generations old now: never accepted, and it revokes the
		// whole session, its newest token included.
		dlExact(t, dlV1Refresh(t, s, r0), http.StatusBadRequest, dlV1InvalidToken)
		dlRefused(t, s, r2, "the newest token of a session whose rotated-out token was presented")
		dlRefused(t, s, r1, "a token of a revoked session")
		// The user's other sessions are untouched.
		expect(t, s.refresh(t, a.Refresh), http.StatusOK)
	})

	t.Run("sessions/concurrent-tabs", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "tabs", "")
		r0 := dlV1OK(t, s, dlV1Login(t, s, a.Email, a.Password), a, id).Refresh
		// Several tabs refresh the same token at once, at 001 and 000: every
		// one gets the same successor, and the session lives on.
		const n = 6
		got := make([]string, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if i%2 == 0 {
					r := dlV1Refresh(t, s, r0)
					if r.Status == http.StatusOK {
						got[i] = dlV1OK(t, s, r, a, id).Refresh
					} else {
						t.Errorf("%s: concurrent refresh with the same token within the grace, want 200", r)
					}
				} else {
					resp, rid := dlRPCRefresh(t, s, r0)
					if m := dlRPCSingle(t, resp, rid); m["result"] != nil {
						_, got[i] = dlRPCTokens(t, s, resp, rid, a)
					} else {
						t.Errorf("%s: concurrent refresh with the same token within the grace, want a result", resp)
					}
				}
			}(i)
		}
		wg.Wait()
		for i := 1; i < n; i++ {
			if got[i] != "" && got[0] != "" && got[i] != got[0] {
				t.Errorf("concurrent refreshes of one token got different successors (%.8s... and %.8s...)", got[0], got[i])
			}
		}
		if got[0] != "" {
			dlRefreshAt(t, s, "001", got[0], a, id)
		}
	})

	t.Run("sessions/two-generations-at-003-revokes", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "gen2", "")
		r0 := a.Refresh
		r1 := dlRefreshAt(t, s, "000", r0, a, id)
		r2 := dlRefreshAt(t, s, "001", r1, a, id)
		if r := s.refresh(t, r0); r.Status != http.StatusUnauthorized {
			t.Errorf("%s: a refresh token two generations old at /access-tokens/refresh, want 401", r)
		}
		dlRefused(t, s, r2, "the newest token after reuse at /access-tokens/refresh")
	})

	t.Run("sessions/after-grace", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "aftergrace", "")
		b := dlSignup(t, s, "aftergrace-rpc", "")
		aNext := dlRefreshAt(t, s, "001", a.Refresh, a, id)
		bNext := dlRefreshAt(t, s, "000", b.Refresh, b, id)
		time.Sleep(6 * time.Second)
		// The old one stops working once the grace is over, and presenting it
		// revokes the family.
		dlExact(t, dlV1Refresh(t, s, a.Refresh), http.StatusBadRequest, dlV1InvalidToken)
		dlRefused(t, s, aNext, "the successor after its rotated-out predecessor was presented past the grace")
		resp, rid := dlRPCRefresh(t, s, b.Refresh)
		dlRPCError(t, resp, rid, -32010)
		dlRefused(t, s, bNext, "the successor after its rotated-out predecessor was presented past the grace")
	})
}

// ====================================================================
// --id-token-audience custom --id-token-ttl 17m --access-token-ttl 7m
// --refresh-reuse-grace 0s

func dlCustomServer(t *testing.T, s *server) {
	id := dlIDRules{Audience: "custom", TTL: 17 * time.Minute}

	t.Run("id-token", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "custom", "")
		v := dlV1OK(t, s, dlV1Login(t, s, a.Email, a.Password), a, id)
		expect(t, s.do(t, "GET", "/me", nil, withToken(v.ID)), http.StatusUnauthorized)
		expect(t, s.do(t, "GET", "/me", nil, withBearer(v.ID)), http.StatusUnauthorized)
		expect(t, s.do(t, "GET", "/me", nil, withToken(v.Access)), http.StatusOK)
		// Not an ID token of the default audience either.
		if _, err := dlIDParser(s, "ideapool").Parse(v.ID, s.jwks(t).kf.Keyfunc); err == nil {
			t.Errorf("the ID token has aud ideapool although --id-token-audience custom")
		}
		dlV1OK(t, s, dlV1Refresh(t, s, v.Refresh), a, id)
	})

	t.Run("ua-access-ttl", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "custom-ua", "Custom.Ua")
		dlUAOK(t, s, dlUALogin(t, s, "custom.ua", a.Password), a,
			dlUAWant{UserName: "custom.ua", Role: 1, AccessTTL: 7 * time.Minute, RefreshTTL: 720 * time.Hour})
	})

	t.Run("no-grace/001", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "nograce1", "")
		r1 := dlRefreshAt(t, s, "001", a.Refresh, a, id)
		dlExact(t, dlV1Refresh(t, s, a.Refresh), http.StatusBadRequest, dlV1InvalidToken)
		dlRefused(t, s, r1, "with --refresh-reuse-grace 0s, the successor after its predecessor was presented again")
	})

	t.Run("no-grace/000", func(t *testing.T) {
		t.Parallel()
		a := dlSignup(t, s, "nograce0", "")
		r1 := dlRefreshAt(t, s, "000", a.Refresh, a, id)
		resp, rid := dlRPCRefresh(t, s, a.Refresh)
		dlRPCError(t, resp, rid, -32010)
		dlRefused(t, s, r1, "with --refresh-reuse-grace 0s, the successor after its predecessor was presented again")
	})
}

// ====================================================================
// --refresh-token-ttl 3s

func dlShortServer(t *testing.T, s *server) {
	id := dlDefaultID()
	a := dlSignup(t, s, "short", "Short.User")
	b := dlSignup(t, s, "short-b", "")
	start := time.Now()
	v1 := dlV1OK(t, s, dlV1Login(t, s, "short.user", a.Password), a, id)
	_, uaRT := dlUAOK(t, s, dlUALogin(t, s, "short.user", a.Password), a,
		dlUAWant{UserName: "short.user", Role: 1, AccessTTL: 2 * time.Second, RefreshTTL: 3 * time.Second})
	c := dlNewHSClient(t, s, b)
	resp, rid := dlAuthenticate(t, s, c.ID, c.assertion(t, s, nil))
	_, rpcRT := dlRPCTokens(t, s, resp, rid, b)
	// Refreshing does not extend the absolute lifetime.
	v1next := dlV1OK(t, s, dlV1Refresh(t, s, v1.Refresh), a, id).Refresh

	time.Sleep(time.Until(start.Add(4500 * time.Millisecond)))
	dlExact(t, dlV1Refresh(t, s, v1next), http.StatusBadRequest, dlV1InvalidToken)
	dlExact(t, dlV1Refresh(t, s, a.Refresh), http.StatusBadRequest, dlV1InvalidToken)
	resp, rid = dlRPCRefresh(t, s, rpcRT)
	dlRPCError(t, resp, rid, -32020)
	resp, rid = dlRPCRefresh(t, s, []string{uaRT})
	dlRPCError(t, resp, rid, -32020)
	expect(t, s.refresh(t, b.Refresh), http.StatusUnauthorized)
}

// ====================================================================
// throttling, shared by every dialect

func dlThrottle(t *testing.T, s *server) {
	id := dlDefaultID()
	other := dlSignup(t, s, "throttle-other", "")
	// Two accounts, 10 failed logins each, spread over 003, 001 and 002:
	// "email" always names the account by its email; "mixed" by its email at
	// 003 (which only takes an email) and by its username at 001 and 002.
	for _, variant := range []string{"email", "mixed"} {
		t.Run(variant, func(t *testing.T) {
			a := dlSignup(t, s, "throttle-"+variant, "Throttled."+variant)
			login := a.Email
			if variant == "mixed" {
				login = "throttled." + variant
			}
			for i := 1; i <= 10; i++ {
				pw := fmt.Sprintf("Wrong-Pass-%d", i)
				switch i % 3 {
				case 1:
					expect(t, s.login(t, a.Email, pw), http.StatusUnauthorized)
				case 2:
					dlExact(t, dlV1Login(t, s, login, pw), http.StatusBadRequest, dlV1LoginFailed)
				case 0:
					dlUAError(t, dlUALogin(t, s, login, pw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
				}
			}
			// The next attempt is throttled everywhere, even with the right
			// password, whichever name the account is given.
			r := s.login(t, a.Email, a.Password)
			if r.Status != http.StatusTooManyRequests {
				t.Errorf("%s: after 10 failed logins for this account across dialects (%s), want 429 at /access-tokens", r, variant)
			} else if r.Header.Get("Retry-After") == "" {
				t.Errorf("%s: 429 without Retry-After", r)
			}
			for _, name := range []string{a.Email, "throttled." + variant} {
				r = dlV1Login(t, s, name, a.Password)
				t.Logf("after 10 failures, /v1/auth as %s: %d %s (Retry-After %q)", name, r.Status, r.Body, r.Header.Get("Retry-After"))
				if r.Status < 400 || r.Status >= 500 {
					t.Errorf("%s: after 10 failed logins for this account, /v1/auth must refuse with a 4xx", r)
				} else if m := r.object(t); dlJSONLit(m["statusCode"]) != fmt.Sprint(r.Status) || m["statusMessage"] == nil {
					t.Errorf("%s: the refusal is not in the seed-001 shape (statusCode = HTTP status, statusMessage)", r)
				}
				r = dlUALogin(t, s, name, a.Password)
				t.Logf("after 10 failures, /api/user/authenticate as %s: %d %s (Retry-After %q)", name, r.Status, r.Body, r.Header.Get("Retry-After"))
				if r.Status < 400 || r.Status >= 500 {
					t.Errorf("%s: after 10 failed logins for this account, /api/user/authenticate must refuse with a 4xx", r)
				} else if m := r.object(t); m["responseKey"] == nil || m["responseKey"] == "SUCCESS" || m["responseMessage"] == nil {
					t.Errorf("%s: the refusal is not in the seed-002 shape (responseKey, responseMessage)", r)
				}
			}
			// Its existing session keeps working.
			dlRefreshAt(t, s, "001", a.Refresh, a, id)
		})
	}
	// Only those accounts.
	dlV1OK(t, s, dlV1Login(t, s, other.Email, other.Password), other, id)
}
