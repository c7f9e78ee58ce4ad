package e2e_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAPI runs the API contract against one server with the default settings;
// its subtests are independent (each has its own accounts) and run in parallel.
func TestAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, tc := range []struct {
		name string
		f    func(*testing.T, *server)
	}{
		{"Health", testHealth},
		{"Signup", testSignup},
		{"SignupValidation", testSignupValidation},
		{"SignupDuplicate", testSignupDuplicate},
		{"SignupBodies", testSignupBodies},
		{"PasswordNotTruncated", testPasswordNotTruncated},
		{"Login", testLogin},
		{"LoginFailuresLookAlike", testLoginFailuresLookAlike},
		{"LoginThrottle", testLoginThrottle},
		{"Refresh", testRefresh},
		{"Logout", testLogout},
		{"LogoutOtherUsersToken", testLogoutOtherUsersToken},
		{"Me", testMe},
		{"TokenTransport", testTokenTransport},
		{"IdeaCreate", testIdeaCreate},
		{"IdeaValidation", testIdeaValidation},
		{"IdeaOrdering", testIdeaOrdering},
		{"IdeaPaging", testIdeaPaging},
		{"IdeaBadPage", testIdeaBadPage},
		{"IdeaUpdate", testIdeaUpdate},
		{"IdeaDelete", testIdeaDelete},
		{"IdeaIsolation", testIdeaIsolation},
		{"Unauthenticated", testUnauthenticated},
		{"Robustness", testRobustness},
		{"Discovery", testDiscovery},
		{"JWKS", testJWKS},
		{"Attacks", testAttacks},
		{"Metrics", testMetrics},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, s)
		})
	}
}

func testHealth(t *testing.T, s *server) {
	for _, p := range []string{"/healthz", "/readyz"} {
		expect(t, s.do(t, "GET", p, nil), http.StatusOK)
	}
}

func testSignup(t *testing.T, s *server) {
	u := s.signup(t, "signup")
	// The account works: login and /me.
	r := s.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	s.tokenPair(t, r)
	claims := s.verify(t, u.JWT)
	if claims["email"] != u.Email || claims["name"] != u.Name {
		t.Errorf("token claims email/name = %v/%v, want %s/%s", claims["email"], claims["name"], u.Email, u.Name)
	}
	// The shortest valid password: 8 characters with upper, lower, digit,
	// and not on the common-password list ("Abcdefg1" is).
	r = s.do(t, "POST", "/users", map[string]any{"email": uniqueEmail("short"), "name": "N", "password": "Xq7wZp2k"})
	expect(t, r, http.StatusCreated)
}

func testSignupValidation(t *testing.T, s *server) {
	valid := func() map[string]any {
		return map[string]any{"email": uniqueEmail("val"), "name": "Valid Name", "password": "Valid-Pass-1"}
	}
	with := func(k string, v any) map[string]any {
		m := valid()
		m[k] = v
		return m
	}
	without := func(k string) map[string]any {
		m := valid()
		delete(m, k)
		return m
	}
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"password 7 characters", with("password", "Abcde1x"), "password"},
		{"password 7 code points in 11 bytes", with("password", "Ab1éééé"), "password"},
		{"password without upper-case", with("password", "abcdefg1"), "password"},
		{"password without lower-case", with("password", "ABCDEFG1"), "password"},
		{"password without digit", with("password", "Abcdefgh"), "password"},
		{"password over 1024 bytes", with("password", "Aa1"+strings.Repeat("x", 1022)), "password"},
		{"password empty", with("password", ""), "password"},
		{"password number", with("password", 12345678), "password"},
		{"password null", with("password", nil), "password"},
		{"password missing", without("password"), "password"},
		{"email plain", with("email", "plainaddress"), "email"},
		{"email no domain", with("email", "someone@"), "email"},
		{"email no local part", with("email", "@example.com"), "email"},
		{"email with space", with("email", "some one@example.com"), "email"},
		{"email two ats", with("email", "a@b@example.com"), "email"},
		{"email empty", with("email", ""), "email"},
		{"email number", with("email", 123), "email"},
		{"email null", with("email", nil), "email"},
		{"email array", with("email", []string{"a@example.com"}), "email"},
		{"email missing", without("email"), "email"},
		{"name missing", without("name"), "name"},
		{"name empty", with("name", ""), "name"},
		{"name number", with("name", 42), "name"},
		{"name object", with("name", map[string]any{"first": "x"}), "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect422(t, s.do(t, "POST", "/users", c.body), c.field)
		})
	}
	// Several bad fields at once: the message names each.
	r := s.do(t, "POST", "/users", map[string]any{"email": "nope", "name": "x", "password": "short"})
	expect422(t, r, "email", "password")
	r = s.do(t, "POST", "/users", map[string]any{"email": "nope", "name": "", "password": "short"})
	expect422(t, r, "email", "name", "password")
	r = s.do(t, "POST", "/users", map[string]any{"email": "nope", "password": "short"})
	expect422(t, r, "email", "name", "password")
}

func testSignupDuplicate(t *testing.T, s *server) {
	local := fmt.Sprintf("Dup.User-%d", time.Now().UnixNano()%1e9)
	r := s.do(t, "POST", "/users", map[string]any{"email": local + "@Example.COM", "name": "Dup", "password": goodPassword})
	must(t, r, http.StatusCreated)
	jwtStr, _ := s.tokenPair(t, r)
	// Stored lower-case.
	me := s.do(t, "GET", "/me", nil, withToken(jwtStr))
	must(t, me, http.StatusOK)
	if got := me.object(t)["email"]; got != strings.ToLower(local+"@example.com") {
		t.Errorf("%s: email = %v, want it stored lower-case", me, got)
	}
	for _, e := range []string{local + "@Example.COM", strings.ToLower(local) + "@example.com", strings.ToUpper(local) + "@EXAMPLE.COM"} {
		r := s.do(t, "POST", "/users", map[string]any{"email": e, "name": "Other", "password": "Other-Pass-9"})
		expect(t, r, http.StatusConflict)
		// The message names what is taken: the email (no username was sent).
		if msg, _ := r.object(t)["message"].(string); !strings.Contains(msg, "email") || strings.Contains(msg, "username") {
			t.Errorf("%s: message %q, want it to say the email is taken", r, msg)
		}
	}
	// Racing signups for one address (in different cases): exactly one wins,
	// the others get 409, never a 5xx.
	race := fmt.Sprintf("race-%d@example.com", time.Now().UnixNano()%1e9)
	const n = 6
	statuses := make(chan int, n)
	for k := 0; k < n; k++ {
		e := race
		if k%2 == 1 {
			e = strings.ToUpper(race)
		}
		go func() {
			statuses <- s.do(t, "POST", "/users", map[string]any{"email": e, "name": "Racer", "password": goodPassword}).Status
		}()
	}
	counts := map[int]int{}
	for k := 0; k < n; k++ {
		counts[<-statuses]++
	}
	if counts[http.StatusCreated] != 1 || counts[http.StatusConflict] != n-1 {
		t.Errorf("%d concurrent signups for one address: statuses %v, want one 201 and %d 409", n, counts, n-1)
	}
}

func testSignupBodies(t *testing.T, s *server) {
	// Malformed JSON is 400 on every route that takes a body.
	u := s.signup(t, "bodies")
	for _, path := range []string{"/users", "/access-tokens", "/access-tokens/refresh"} {
		for _, body := range []rawJSON{`{"email":`, `not json`, `{"email":"a@example.com",}`, `{"email" "x"}`} {
			expect(t, s.do(t, "POST", path, body), http.StatusBadRequest)
		}
	}
	expect(t, s.do(t, "POST", "/ideas", rawJSON(`{"content":`), withToken(u.JWT)), http.StatusBadRequest)
	expect(t, s.do(t, "DELETE", "/access-tokens", rawJSON(`{"refresh_token":`), withToken(u.JWT)), http.StatusBadRequest)

	// Over 1 MiB is 413, even when it is otherwise valid JSON.
	big := strings.Repeat("a", 1<<20+100)
	expect(t, s.do(t, "POST", "/users", map[string]any{"email": uniqueEmail("big"), "name": big, "password": goodPassword}), http.StatusRequestEntityTooLarge)
	expect(t, s.do(t, "POST", "/ideas", map[string]any{"content": big, "impact": 1, "ease": 1, "confidence": 1}, withToken(u.JWT)), http.StatusRequestEntityTooLarge)

	// Also when the length is not announced (chunked).
	chunked := io.MultiReader(strings.NewReader(`{"email":"`+uniqueEmail("chunked")+`","password":"`+goodPassword+`","name":"`), strings.NewReader(big), strings.NewReader(`"}`))
	expect(t, s.do(t, "POST", "/users", chunked), http.StatusRequestEntityTooLarge)
	expect(t, s.do(t, "POST", "/users", io.MultiReader(strings.NewReader(`{"email":"`+uniqueEmail("chunked")+`","password":"`+goodPassword+`","name":"Chunked"}`))), http.StatusCreated)

	// Form-encoded bodies are accepted.
	email := uniqueEmail("form")
	r := s.do(t, "POST", "/users", url.Values{"email": {email}, "name": {"Form User"}, "password": {goodPassword}})
	must(t, r, http.StatusCreated)
	_, refresh := s.tokenPair(t, r)
	r = s.do(t, "POST", "/access-tokens", url.Values{"email": {email}, "password": {goodPassword}})
	must(t, r, http.StatusCreated)
	s.tokenPair(t, r)
	r = s.do(t, "POST", "/access-tokens/refresh", url.Values{"refresh_token": {refresh}})
	expect(t, r, http.StatusOK)
	r = s.do(t, "POST", "/ideas", url.Values{"content": {"form idea"}, "impact": {"3"}, "ease": {"4"}, "confidence": {"5"}}, withToken(u.JWT))
	must(t, r, http.StatusCreated)
	checkIdea(t, r, "form idea", 3, 4, 5)
	expect422(t, s.do(t, "POST", "/users", url.Values{"email": {uniqueEmail("form")}, "name": {"F"}, "password": {"weak"}}), "password")
	expect422(t, s.do(t, "POST", "/ideas", url.Values{"content": {"x"}, "impact": {"2.5"}, "ease": {"4"}, "confidence": {"5"}}, withToken(u.JWT)), "impact")
}

func testPasswordNotTruncated(t *testing.T, s *server) {
	// 1024 bytes is allowed, and every byte counts.
	long := "Aa1" + strings.Repeat("p", 1021)
	email := uniqueEmail("long")
	s.remember(long)
	r := s.do(t, "POST", "/users", map[string]any{"email": email, "name": "Long", "password": long})
	must(t, r, http.StatusCreated)
	s.tokenPair(t, r)
	r = s.login(t, email, long)
	expect(t, r, http.StatusCreated)
	for _, wrong := range []string{long[:1023], long[:1023] + "q", long[:72], long[:100] + "X" + long[101:]} {
		r := s.login(t, email, wrong)
		expect(t, r, http.StatusUnauthorized)
	}
}

func testLogin(t *testing.T, s *server) {
	u := s.signup(t, "login")
	for _, e := range []string{u.Email, strings.ToUpper(u.Email), strings.ToUpper(u.Email[:1]) + u.Email[1:]} {
		r := s.login(t, e, u.Password)
		must(t, r, http.StatusCreated)
		jwtStr, refresh := s.tokenPair(t, r)
		if refresh == u.Refresh {
			t.Errorf("login returned the signup's refresh token: every login is a new session")
		}
		c1, c2 := s.verify(t, u.JWT), s.verify(t, jwtStr)
		if c1 != nil && c2 != nil {
			if c1["sub"] != c2["sub"] {
				t.Errorf("sub differs between signup (%v) and login (%v) of one user", c1["sub"], c2["sub"])
			}
			if c1["sid"] == c2["sid"] {
				t.Errorf("signup and login share sid %v: each login is a new session", c1["sid"])
			}
			if c1["jti"] == c2["jti"] {
				t.Errorf("two tokens share jti %v", c1["jti"])
			}
			if c2["email"] != u.Email {
				t.Errorf("login token email = %v, want %s", c2["email"], u.Email)
			}
		}
	}
	expect422(t, s.do(t, "POST", "/access-tokens", map[string]any{"email": uniqueEmail("nopw")}), "password")
	expect422(t, s.do(t, "POST", "/access-tokens", map[string]any{"password": goodPassword}), "email")
	expect422(t, s.do(t, "POST", "/access-tokens", map[string]any{"email": 5, "password": goodPassword}), "email")
}

func testLoginFailuresLookAlike(t *testing.T, s *server) {
	u := s.signup(t, "lookalike")
	wrong := s.login(t, u.Email, u.Password+"x")
	unknown := s.login(t, uniqueEmail("nobody"), u.Password)
	expect(t, wrong, http.StatusUnauthorized)
	expect(t, unknown, http.StatusUnauthorized)
	if string(wrong.Body) != string(unknown.Body) {
		t.Errorf("a wrong password and an unknown email must get the same body:\n  wrong password: %s\n  unknown email:  %s", wrong.Body, unknown.Body)
	}
	if wrong.Header.Get("Content-Type") != unknown.Header.Get("Content-Type") {
		t.Errorf("Content-Type differs: %q vs %q", wrong.Header.Get("Content-Type"), unknown.Header.Get("Content-Type"))
	}
}

func testLoginThrottle(t *testing.T, s *server) {
	u := s.signup(t, "throttle")
	other := s.signup(t, "throttle-other")
	for i := 1; i <= 10; i++ {
		r := s.login(t, u.Email, fmt.Sprintf("Wrong-Pass-%d", i))
		expect(t, r, http.StatusUnauthorized)
	}
	for _, pw := range []string{u.Password, "Wrong-Pass-11"} {
		r := s.login(t, strings.ToUpper(u.Email), pw)
		if r.Status != http.StatusTooManyRequests {
			t.Errorf("%s: after 10 failed logins within 15 min, want 429", r)
			continue
		}
		ra := r.Header.Get("Retry-After")
		n, err := strconv.Atoi(ra)
		if err != nil {
			if _, perr := http.ParseTime(ra); perr != nil {
				t.Errorf("%s: Retry-After = %q, want seconds or an HTTP date", r.What, ra)
			}
		} else if n <= 0 || n > 15*60 {
			t.Errorf("%s: Retry-After = %d s, want within the 15 min window", r.What, n)
		}
	}
	// Only that account is throttled.
	r := s.login(t, other.Email, other.Password)
	expect(t, r, http.StatusCreated)
	// Sessions that exist keep working.
	expect(t, s.refresh(t, u.Refresh), http.StatusOK)
}

func testRefresh(t *testing.T, s *server) {
	u := s.signup(t, "refresh")
	orig := s.verify(t, u.JWT)
	for i := 0; i < 3; i++ {
		r := s.refresh(t, u.Refresh)
		must(t, r, http.StatusOK)
		m := r.object(t)
		if !sameKeys(m, "jwt") {
			t.Errorf("%s: want exactly {jwt} (the refresh token stays the same), got %v", r, keysOf(m))
		}
		jwtStr, _ := m["jwt"].(string)
		s.remember(jwtStr)
		c := s.verify(t, jwtStr)
		if c != nil && orig != nil {
			if c["sid"] != orig["sid"] || c["sub"] != orig["sub"] {
				t.Errorf("refreshed token sid/sub = %v/%v, want the session's %v/%v", c["sid"], c["sub"], orig["sid"], orig["sub"])
			}
			if c["jti"] == orig["jti"] {
				t.Errorf("refreshed token reuses jti %v", c["jti"])
			}
		}
		me := s.do(t, "GET", "/me", nil, withToken(jwtStr))
		expect(t, me, http.StatusOK)
	}
	for _, bad := range []string{"nope", strings.Repeat("0", 64), u.Refresh + "x", u.Refresh[:len(u.Refresh)-1], u.JWT} {
		if bad == u.Refresh {
			continue
		}
		expect(t, s.refresh(t, bad), http.StatusUnauthorized)
	}
	expect422(t, s.do(t, "POST", "/access-tokens/refresh", map[string]any{}), "refresh_token")
	expect422(t, s.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": 12}), "refresh_token")
}

func testLogout(t *testing.T, s *server) {
	u := s.signup(t, "logout")
	r := s.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	jwt2, refresh2 := s.tokenPair(t, r)

	// Without an access token: 401, and nothing ends.
	expect(t, s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": u.Refresh}), http.StatusUnauthorized)
	expect(t, s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": u.Refresh}, withToken("garbage.token.here")), http.StatusUnauthorized)
	expect(t, s.refresh(t, u.Refresh), http.StatusOK)
	expect422(t, s.do(t, "DELETE", "/access-tokens", map[string]any{}, withToken(u.JWT)), "refresh_token")

	r = s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": u.Refresh}, withToken(u.JWT))
	expect(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("%s: a 204 has no body", r)
	}
	expect(t, s.refresh(t, u.Refresh), http.StatusUnauthorized)
	// The other session of the same user is untouched, and logs out with Bearer.
	expect(t, s.refresh(t, refresh2), http.StatusOK)
	r = s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": refresh2}, withBearer(jwt2))
	expect(t, r, http.StatusNoContent)
	expect(t, s.refresh(t, refresh2), http.StatusUnauthorized)
	// Logging in again works.
	expect(t, s.login(t, u.Email, u.Password), http.StatusCreated)
}

func testLogoutOtherUsersToken(t *testing.T, s *server) {
	a := s.signup(t, "logout-a")
	b := s.signup(t, "logout-b")
	r := s.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": b.Refresh}, withToken(a.JWT))
	if r.Status/100 != 2 && r.Status/100 != 4 {
		t.Errorf("%s: unexpected status", r)
	}
	expect(t, s.refresh(t, b.Refresh), http.StatusOK)
	expect(t, s.refresh(t, a.Refresh), http.StatusOK)
}

func gravatar(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "https://www.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) + "?d=mm&s=200"
}

func testMe(t *testing.T, s *server) {
	email := fmt.Sprintf("Me.Person-%d@Example.org", time.Now().UnixNano()%1e9)
	r := s.do(t, "POST", "/users", map[string]any{"email": email, "name": "Jack Black", "password": goodPassword})
	must(t, r, http.StatusCreated)
	jwtStr, _ := s.tokenPair(t, r)
	me := s.do(t, "GET", "/me", nil, withToken(jwtStr))
	must(t, me, http.StatusOK)
	m := me.object(t)
	if !sameKeys(m, "email", "name", "avatar_url") {
		t.Errorf("%s: want exactly email, name, avatar_url; got %v", me, keysOf(m))
	}
	if m["email"] != strings.ToLower(email) {
		t.Errorf("%s: email = %v, want %s", me, m["email"], strings.ToLower(email))
	}
	if m["name"] != "Jack Black" {
		t.Errorf("%s: name = %v", me, m["name"])
	}
	if want := gravatar(email); m["avatar_url"] != want {
		t.Errorf("%s: avatar_url = %v, want %s", me, m["avatar_url"], want)
	}
	if ct := me.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type = %q, want application/json", me.What, ct)
	}
	// The seed's own example.
	if got := gravatar("email-4@test.com"); got != "https://www.gravatar.com/avatar/b36aafe03e05a85031fd8c411b69f792?d=mm&s=200" {
		t.Logf("note: the seed's example avatar hash differs from md5(email-4@test.com): %s", got)
	}
}

func testTokenTransport(t *testing.T, s *server) {
	u := s.signup(t, "transport")
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	expect(t, s.do(t, "GET", "/me", nil, withBearer(u.JWT)), http.StatusOK)
	expect(t, s.do(t, "GET", "/me", nil, withHeader("x-access-token", u.JWT)), http.StatusOK)
	expect(t, s.do(t, "GET", "/me", nil), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/me", nil, withToken("")), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/me", nil, withHeader("Authorization", "Bearer")), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/me", nil, withHeader("Authorization", "Basic dXNlcjpwYXNz")), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/me", nil, withToken("not-a-jwt")), http.StatusUnauthorized)
	// The refresh token is not an access token.
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.Refresh)), http.StatusUnauthorized)
	expect(t, s.do(t, "GET", "/me", nil, withBearer(u.Refresh)), http.StatusUnauthorized)
}

func testIdeaCreate(t *testing.T, s *server) {
	u := s.signup(t, "create")
	i := s.createIdea(t, u.JWT, "the-content", 8, 8, 8)
	// Written as the document shows it: 8.0, not 8.
	if i.AverageScore != "8.0" {
		t.Errorf("average_score = %s, want 8.0", i.AverageScore)
	}
	i = s.createIdea(t, u.JWT, "mean", 3, 8, 8)
	if avg, _ := i.AverageScore.Float64(); avg < 6.3333333 || avg > 6.3333334 {
		t.Errorf("average_score = %s, want 6.333…", i.AverageScore)
	}
	// Bearer works for ideas too.
	r := s.do(t, "POST", "/ideas", ideaBody("bearer", 1, 2, 4), withBearer(u.JWT))
	must(t, r, http.StatusCreated)
	checkIdea(t, r, "bearer", 1, 2, 4)

	// Content bounds, counted in code points.
	emoji255 := strings.Repeat("😀", 255)
	s.createIdea(t, u.JWT, emoji255, 1, 1, 1)
	s.createIdea(t, u.JWT, strings.Repeat("é", 255), 10, 10, 10)
	s.createIdea(t, u.JWT, "x", 1, 1, 1)
	expect422(t, s.do(t, "POST", "/ideas", ideaBody(strings.Repeat("😀", 256), 1, 1, 1), withToken(u.JWT)), "content")
	expect422(t, s.do(t, "POST", "/ideas", ideaBody(strings.Repeat("a", 256), 1, 1, 1), withToken(u.JWT)), "content")
	// Code points, not graphemes: e + combining acute is two.
	s.createIdea(t, u.JWT, strings.Repeat("e\u0301", 127)+"x", 2, 2, 2)
	expect422(t, s.do(t, "POST", "/ideas", ideaBody(strings.Repeat("e\u0301", 128), 1, 1, 1), withToken(u.JWT)), "content")

	// Distinct ids.
	seen := map[string]bool{}
	for n := 0; n < 5; n++ {
		i := s.createIdea(t, u.JWT, "dup", 5, 5, 5)
		if seen[i.ID] {
			t.Errorf("id %s issued twice", i.ID)
		}
		seen[i.ID] = true
	}
}

// ideaValidationCases are the invalid idea bodies, each with the field to name.
func ideaValidationCases() []struct {
	name  string
	body  map[string]any
	field string
} {
	type tc = struct {
		name  string
		body  map[string]any
		field string
	}
	valid := func() map[string]any { return ideaBody("valid", 5, 5, 5) }
	var cases []tc
	set := func(name, k string, v any) {
		m := valid()
		m[k] = v
		cases = append(cases, tc{name, m, k})
	}
	for _, f := range []string{"impact", "ease", "confidence"} {
		set(f+" 0", f, 0)
		set(f+" 11", f, 11)
		set(f+" -1", f, -1)
		set(f+" string", f, "5")
		set(f+" fraction", f, 5.5)
		set(f+" null", f, nil)
		set(f+" bool", f, true)
		m := valid()
		delete(m, f)
		cases = append(cases, tc{f + " missing", m, f})
	}
	set("content empty", "content", "")
	set("content spaces", "content", "   ")
	set("content whitespace", "content", " \t\n\r ")
	set("content unicode spaces", "content", "\u00a0\u2003\u3000")
	set("content 256", "content", strings.Repeat("b", 256))
	set("content number", "content", 7)
	set("content null", "content", nil)
	m := valid()
	delete(m, "content")
	cases = append(cases, tc{"content missing", m, "content"})
	return cases
}

func testIdeaValidation(t *testing.T, s *server) {
	u := s.signup(t, "ideaval")
	for _, c := range ideaValidationCases() {
		t.Run(c.name, func(t *testing.T) {
			expect422(t, s.do(t, "POST", "/ideas", c.body, withToken(u.JWT)), c.field)
		})
	}
	r := s.do(t, "POST", "/ideas", map[string]any{}, withToken(u.JWT))
	expect422(t, r, "content", "impact", "ease", "confidence")
	r = s.do(t, "POST", "/ideas", map[string]any{"content": " ", "impact": 0, "ease": "5"}, withToken(u.JWT))
	expect422(t, r, "content", "impact", "ease", "confidence")
	if list := s.listIdeas(t, u.JWT, ""); len(list) != 0 {
		t.Errorf("invalid ideas were stored: %v", list)
	}
}

func testIdeaOrdering(t *testing.T, s *server) {
	u := s.signup(t, "order")
	a := s.createIdea(t, u.JWT, "a", 5, 5, 5)
	b := s.createIdea(t, u.JWT, "b", 10, 10, 10)
	c := s.createIdea(t, u.JWT, "c", 1, 1, 1)
	d := s.createIdea(t, u.JWT, "d", 6, 5, 4)
	e := s.createIdea(t, u.JWT, "e", 4, 5, 6)
	f := s.createIdea(t, u.JWT, "f", 9, 9, 8)
	g := s.createIdea(t, u.JWT, "g", 3, 8, 8)
	want := []idea{b, f, g, e, d, a, c}
	for _, q := range []string{"", "?page=1"} {
		got := s.listIdeas(t, u.JWT, q)
		if ids(got) != ids(want) {
			t.Errorf("GET /ideas%s order = %s, want %s (average desc, ties newest first)", q, ids(got), ids(want))
		}
		for n := range got {
			if n < len(want) && got[n].ID == want[n].ID {
				w := want[n]
				checkIdeaValues(t, "GET /ideas", got[n], w.Content, atoi(w.Impact), atoi(w.Ease), atoi(w.Confidence))
				if got[n].CreatedAt != w.CreatedAt {
					t.Errorf("GET /ideas: created_at %s, create said %s", got[n].CreatedAt, w.CreatedAt)
				}
			}
		}
	}
}

func atoi(n interface{ String() string }) int {
	v, _ := strconv.Atoi(n.String())
	return v
}

func ids(list []idea) string {
	var s []string
	for _, i := range list {
		s = append(s, i.Content+":"+i.ID)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func testIdeaPaging(t *testing.T, s *server) {
	u := s.signup(t, "paging")
	type created struct {
		idea
		seq int
		avg float64
	}
	var all []created
	for n := 0; n < 25; n++ {
		// Many ties: averages of only a few distinct values.
		i := s.createIdea(t, u.JWT, fmt.Sprintf("idea %02d", n), n%3+1, 5, 5)
		avg, _ := i.AverageScore.Float64()
		all = append(all, created{i, n, avg})
	}
	seq := map[string]created{}
	for _, c := range all {
		seq[c.ID] = c
	}
	var walked []idea
	for page := 1; page <= 3; page++ {
		list := s.listIdeas(t, u.JWT, fmt.Sprintf("?page=%d", page))
		wantLen := 10
		if page == 3 {
			wantLen = 5
		}
		if len(list) != wantLen {
			t.Errorf("page %d has %d ideas, want %d", page, len(list), wantLen)
		}
		walked = append(walked, list...)
	}
	for _, page := range []string{"4", "5", "1000", "99999999999"} {
		r := s.do(t, "GET", "/ideas?page="+page, nil, withToken(u.JWT))
		expect(t, r, http.StatusOK)
		if strings.TrimSpace(string(r.Body)) != "[]" {
			t.Errorf("%s: a page past the end is []", r)
		}
	}
	got := map[string]bool{}
	for n, i := range walked {
		if got[i.ID] {
			t.Errorf("idea %s appears twice while walking the pages", i.ID)
		}
		got[i.ID] = true
		c, ok := seq[i.ID]
		if !ok {
			t.Errorf("page walk returned unknown idea %s", i.ID)
			continue
		}
		if n > 0 {
			p, ok := seq[walked[n-1].ID]
			if ok && (p.avg < c.avg || (p.avg == c.avg && p.seq < c.seq)) {
				t.Errorf("position %d: %s (avg %v, created #%d) after %s (avg %v, created #%d): want average desc, ties newest first", n, i.Content, c.avg, c.seq, p.Content, p.avg, p.seq)
			}
		}
	}
	if len(got) != 25 {
		t.Errorf("walking the pages saw %d distinct ideas, want 25", len(got))
	}
	// No page means page 1; the same page twice is the same.
	p1 := s.listIdeas(t, u.JWT, "?page=1")
	if ids(s.listIdeas(t, u.JWT, "")) != ids(p1) || ids(s.listIdeas(t, u.JWT, "?page=1")) != ids(p1) {
		t.Errorf("GET /ideas without page differs from page=1, or page 1 is not stable")
	}
}

func testIdeaBadPage(t *testing.T, s *server) {
	u := s.signup(t, "badpage")
	s.createIdea(t, u.JWT, "one", 1, 2, 3)
	for _, p := range []string{"0", "-1", "abc", "", "1.5", "1e1", "0x1", "%20", "one"} {
		r := s.do(t, "GET", "/ideas?page="+p, nil, withToken(u.JWT))
		expect422(t, r, "page")
	}
	// A number too large for any integer type is a client mistake too.
	r := s.do(t, "GET", "/ideas?page=1"+strings.Repeat("0", 40), nil, withToken(u.JWT))
	if r.Status != http.StatusOK && r.Status != http.StatusUnprocessableEntity {
		t.Errorf("%s: want 200 [] or 422", r)
	}
}

func testIdeaUpdate(t *testing.T, s *server) {
	u := s.signup(t, "update")
	orig := s.createIdea(t, u.JWT, "before", 1, 2, 3)
	time.Sleep(1100 * time.Millisecond) // so that a rewritten created_at would show
	r := s.do(t, "PUT", "/ideas/"+orig.ID, ideaBody("after", 10, 9, 8), withToken(u.JWT))
	must(t, r, http.StatusOK)
	upd := checkIdea(t, r, "after", 10, 9, 8)
	if upd.ID != orig.ID || upd.CreatedAt != orig.CreatedAt {
		t.Errorf("PUT changed id/created_at: %s/%s -> %s/%s", orig.ID, orig.CreatedAt, upd.ID, upd.CreatedAt)
	}
	list := s.listIdeas(t, u.JWT, "")
	if len(list) != 1 || list[0].Content != "after" || list[0].ID != orig.ID || list[0].CreatedAt != orig.CreatedAt {
		t.Errorf("after PUT, GET /ideas = %s, want the updated idea", ids(list))
	}
	// Bearer and form bodies.
	r = s.do(t, "PUT", "/ideas/"+orig.ID, url.Values{"content": {"form"}, "impact": {"2"}, "ease": {"2"}, "confidence": {"2"}}, withBearer(u.JWT))
	must(t, r, http.StatusOK)
	checkIdea(t, r, "form", 2, 2, 2)
	// Same rules as create.
	for _, c := range ideaValidationCases() {
		t.Run(c.name, func(t *testing.T) {
			expect422(t, s.do(t, "PUT", "/ideas/"+orig.ID, c.body, withToken(u.JWT)), c.field)
		})
	}
	r = s.do(t, "PUT", "/ideas/"+orig.ID, ideaBody(strings.Repeat("😀", 255), 4, 4, 4), withToken(u.JWT))
	must(t, r, http.StatusOK)
	checkIdea(t, r, strings.Repeat("😀", 255), 4, 4, 4)
	expect(t, s.do(t, "PUT", "/ideas/"+orig.ID, rawJSON(`{"content":`), withToken(u.JWT)), http.StatusBadRequest)
	// Unknown ids.
	for _, id := range []string{"zzzzzzzzz", "0", strings.Repeat("a", 300), url.PathEscape("ü-id"), orig.ID + "x"} {
		expect(t, s.do(t, "PUT", "/ideas/"+id, ideaBody("x", 1, 1, 1), withToken(u.JWT)), http.StatusNotFound)
	}
	expect(t, s.do(t, "PUT", "/ideas/"+orig.ID, ideaBody("x", 1, 1, 1)), http.StatusUnauthorized)
}

func testIdeaDelete(t *testing.T, s *server) {
	u := s.signup(t, "delete")
	keep := s.createIdea(t, u.JWT, "keep", 1, 1, 1)
	gone := s.createIdea(t, u.JWT, "gone", 2, 2, 2)
	expect(t, s.do(t, "DELETE", "/ideas/"+gone.ID, nil), http.StatusUnauthorized)
	r := s.do(t, "DELETE", "/ideas/"+gone.ID, nil, withToken(u.JWT))
	expect(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("%s: a 204 has no body", r)
	}
	expect(t, s.do(t, "DELETE", "/ideas/"+gone.ID, nil, withToken(u.JWT)), http.StatusNotFound)
	expect(t, s.do(t, "PUT", "/ideas/"+gone.ID, ideaBody("x", 1, 1, 1), withToken(u.JWT)), http.StatusNotFound)
	expect(t, s.do(t, "DELETE", "/ideas/nosuchidea", nil, withToken(u.JWT)), http.StatusNotFound)
	list := s.listIdeas(t, u.JWT, "")
	if len(list) != 1 || list[0].ID != keep.ID {
		t.Errorf("after DELETE, GET /ideas = %s, want only %s", ids(list), keep.ID)
	}
	// Bearer works for DELETE.
	expect(t, s.do(t, "DELETE", "/ideas/"+keep.ID, nil, withBearer(u.JWT)), http.StatusNoContent)
	if list := s.listIdeas(t, u.JWT, ""); len(list) != 0 {
		t.Errorf("after deleting everything, GET /ideas = %s", ids(list))
	}
}

func testIdeaIsolation(t *testing.T, s *server) {
	a := s.signup(t, "iso-a")
	b := s.signup(t, "iso-b")
	ai := s.createIdea(t, a.JWT, "a's idea", 7, 7, 7)
	bi := s.createIdea(t, b.JWT, "b's idea", 3, 3, 3)
	for _, list := range [][]idea{s.listIdeas(t, b.JWT, ""), s.listIdeas(t, b.JWT, "?page=1")} {
		if len(list) != 1 || list[0].ID != bi.ID {
			t.Errorf("B's GET /ideas = %s, want only B's idea %s", ids(list), bi.ID)
		}
	}
	unknown := s.do(t, "PUT", "/ideas/doesnotexist1", ideaBody("mine now", 1, 1, 1), withToken(b.JWT))
	other := s.do(t, "PUT", "/ideas/"+ai.ID, ideaBody("mine now", 1, 1, 1), withToken(b.JWT))
	expect(t, other, http.StatusNotFound)
	expect(t, unknown, http.StatusNotFound)
	expect(t, s.do(t, "DELETE", "/ideas/"+ai.ID, nil, withToken(b.JWT)), http.StatusNotFound)
	list := s.listIdeas(t, a.JWT, "")
	if len(list) != 1 || list[0].ID != ai.ID || list[0].Content != "a's idea" {
		t.Errorf("A's idea was touched by B: %s", ids(list))
	}
}

func testUnauthenticated(t *testing.T, s *server) {
	for _, rq := range []struct{ method, path string }{
		{"GET", "/me"}, {"GET", "/ideas"}, {"GET", "/ideas?page=1"}, {"POST", "/ideas"},
		{"PUT", "/ideas/abc"}, {"DELETE", "/ideas/abc"}, {"DELETE", "/access-tokens"},
	} {
		var body any
		switch {
		case rq.method == "POST" || rq.method == "PUT":
			body = ideaBody("x", 1, 1, 1)
		case rq.path == "/access-tokens":
			body = map[string]any{"refresh_token": strings.Repeat("ab", 32)}
		}
		expect(t, s.do(t, rq.method, rq.path, body), http.StatusUnauthorized)
	}
}

// testRobustness: odd requests are client mistakes (4xx with a JSON body),
// never a 5xx.
func testRobustness(t *testing.T, s *server) {
	u := s.signup(t, "robust")
	id := s.createIdea(t, u.JWT, "robust", 1, 1, 1).ID
	tok := withToken(u.JWT)
	cases := []struct {
		method, path string
		body         any
	}{
		{"GET", "/nope", nil},
		{"GET", "/ideas/" + id, nil},
		{"POST", "/users", rawJSON(`[]`)},
		{"POST", "/users", rawJSON(`"string"`)},
		{"POST", "/users", rawJSON(`null`)},
		{"POST", "/users", rawJSON(``)},
		{"POST", "/access-tokens", rawJSON(`[1,2]`)},
		{"POST", "/access-tokens/refresh", rawJSON(`null`)},
		{"POST", "/ideas", rawJSON(`[]`)},
		{"POST", "/ideas", rawJSON(`{"content":"x","impact":1e400,"ease":1,"confidence":1}`)},
		{"POST", "/ideas", rawJSON(`{"content":"x","impact":99999999999999999999999,"ease":1,"confidence":1}`)},
		{"POST", "/ideas", rawJSON(`{"content":"\ud800","impact":1,"ease":1,"confidence":1}`)},
		{"PUT", "/ideas/" + id, rawJSON(`null`)},
	}
	for _, c := range cases {
		r := s.do(t, c.method, c.path, c.body, tok)
		if r.Status < 400 || r.Status >= 500 {
			// A lone surrogate may legitimately be replaced; anything else must be refused.
			surrogate := c.method == "POST" && c.path == "/ideas" && r.Status == http.StatusCreated && strings.Contains(fmt.Sprint(c.body), `\ud800`)
			if !surrogate {
				t.Errorf("%s: want a 4xx client error", r)
			}
		}
	}
	// Odd content types.
	r := s.do(t, "POST", "/users", []byte(`{"email":"x@example.com"}`), withHeader("Content-Type", "text/plain"))
	if r.Status < 400 || r.Status >= 500 {
		t.Errorf("%s: want a 4xx", r)
	}
	r = s.do(t, "POST", "/users", url.Values{"email": {"a@example.com"}}, withHeader("Content-Type", "multipart/form-data; boundary=x"))
	if r.Status < 400 || r.Status >= 500 {
		t.Errorf("%s: want a 4xx", r)
	}
}
