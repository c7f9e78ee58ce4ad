package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/store"
)

func TestSignupValidation(t *testing.T) {
	ts := newTestServer(t)
	ts.signup(t, "Taken@Example.com")
	tests := map[string]struct {
		body   any
		status int
		field  string // named in the error's fields
	}{
		"missing everything":       {map[string]any{}, 422, "email"},
		"invalid email":            {map[string]any{"email": "nope", "name": "A", "password": "the-Secret-123"}, 422, "email"},
		"email as number":          {map[string]any{"email": 5, "name": "A", "password": "the-Secret-123"}, 422, "email"},
		"short password":           {map[string]any{"email": "a@example.com", "name": "A", "password": "aB3"}, 422, "password"},
		"password without upper":   {map[string]any{"email": "a@example.com", "name": "A", "password": "the-secret-123"}, 422, "password"},
		"password without lower":   {map[string]any{"email": "a@example.com", "name": "A", "password": "THE-SECRET-123"}, 422, "password"},
		"password without digit":   {map[string]any{"email": "a@example.com", "name": "A", "password": "the-Secret-abc"}, 422, "password"},
		"password over 1024 bytes": {map[string]any{"email": "a@example.com", "name": "A", "password": "aB3" + strings.Repeat("x", 1022)}, 422, "password"},
		"blank name":               {map[string]any{"email": "a@example.com", "name": "  ", "password": "the-Secret-123"}, 422, "name"},
		"bad username":             {map[string]any{"email": "a@example.com", "name": "A", "password": "the-Secret-123", "username": "a b"}, 422, "username"},
		"email taken in any case":  {map[string]any{"email": "taken@EXAMPLE.com", "name": "A", "password": "the-Secret-123"}, 409, "email"},
		"malformed JSON":           {`{"email":`, 400, ""},
		"JSON array":               {`[1,2]`, 400, ""},
		"JSON not UTF-8":           {"{\"email\":\"a@example.com\",\"name\":\"A\xff\",\"password\":\"the-Secret-123\"}", 400, ""},
		"body over 1 MiB":          {`{"name":"` + strings.Repeat("x", 1<<20) + `"}`, 413, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := ts.do(t, "POST", "/users", tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var e struct {
				Message string            `json:"message"`
				Fields  map[string]string `json:"fields"`
			}
			r.json(t, &e)
			if e.Message == "" {
				t.Errorf("error body has no message: %s", r.body)
			}
			if tc.field != "" && e.Fields[tc.field] == "" {
				t.Errorf("error does not name field %q: %s", tc.field, r.body)
			}
		})
	}
}

func TestSignupAcceptsFormBodies(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "POST", "/users", "email=form%40example.com&name=Form&password=the-Secret-123",
		"Content-Type", "application/x-www-form-urlencoded")
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestLoginFailuresLookAlikeAndThrottle(t *testing.T) {
	ts := newTestServer(t)
	ts.signup(t, "victim@example.com")
	wrong := ts.do(t, "POST", "/access-tokens", map[string]any{"email": "victim@example.com", "password": "Wrong-pass-1"})
	unknown := ts.do(t, "POST", "/access-tokens", map[string]any{"email": "nobody@example.com", "password": "Wrong-pass-1"})
	if wrong.status != 401 || unknown.status != 401 || string(wrong.body) != string(unknown.body) {
		t.Fatalf("wrong password %d %s vs unknown email %d %s", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	for i := 0; i < 9; i++ {
		ts.do(t, "POST", "/access-tokens", map[string]any{"email": "VICTIM@example.com", "password": "Wrong-pass-1"})
	}
	right := map[string]any{"email": "victim@example.com", "password": "the-Secret-123"}
	r := ts.do(t, "POST", "/access-tokens", right)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("11th attempt: status %d, want 429: %s", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	ts.clock.Advance(15*time.Minute + time.Second)
	if r := ts.do(t, "POST", "/access-tokens", right); r.status != http.StatusCreated {
		t.Fatalf("after the window: status %d: %s", r.status, r.body)
	}
}

func TestRefreshAndLogout(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.signup(t, "alice@example.com")
	bob := ts.signup(t, "bob@example.com")

	r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": alice.RefreshToken})
	var got map[string]string
	r.json(t, &got)
	if r.status != 200 || got["jwt"] == "" || len(got) != 1 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/me", nil, "X-Access-Token", got["jwt"]); r.status != 200 {
		t.Fatalf("refreshed token refused: %d %s", r.status, r.body)
	}

	// Bob's refresh token presented by Alice is left alone.
	if r := ts.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": bob.RefreshToken}, auth(alice)...); r.status != 204 {
		t.Fatalf("logout with another's token: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": bob.RefreshToken}); r.status != 200 {
		t.Fatalf("bob's session was ended by alice: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": alice.RefreshToken}); r.status != 401 {
		t.Fatalf("logout without access token: %d", r.status)
	}
	if r := ts.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": alice.RefreshToken}, auth(alice)...); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": alice.RefreshToken}); r.status != 401 {
		t.Fatalf("refresh after logout: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{}); r.status != 422 {
		t.Fatalf("refresh without token: %d %s", r.status, r.body)
	}
}

func TestRefreshExpiryIsAbsolute(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "carol@example.com")
	for i := 0; i < 3; i++ {
		ts.clock.Advance(240 * time.Hour)
		want := 200
		if i == 2 { // 720h after login, however often it was used
			want = 401
		}
		if r := ts.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": p.RefreshToken}); r.status != want {
			t.Fatalf("after %dh: status %d, want %d", 240*(i+1), r.status, want)
		}
	}
}

func TestAccessTokenExpiryLeeway(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "dave@example.com")
	ts.clock.Advance(10*time.Minute + 4*time.Second)
	if r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+p.JWT); r.status != 200 {
		t.Fatalf("within leeway: %d %s", r.status, r.body)
	}
	ts.clock.Advance(2 * time.Second)
	r := ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+p.JWT)
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("past leeway: %d %v %s", r.status, r.header, r.body)
	}
}

func TestMe(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "  Email-4@Test.com ")
	r := ts.do(t, "GET", "/me", nil, auth(p)...)
	var me map[string]string
	r.json(t, &me)
	want := map[string]string{"email": "email-4@test.com", "name": "Test User",
		"avatar_url": "https://www.gravatar.com/avatar/b36aafe03e05a85031fd8c411b69f792?d=mm&s=200"}
	if fmt.Sprint(me) != fmt.Sprint(want) {
		t.Fatalf("me = %v, want %v", me, want)
	}
	for h, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN"} {
		if r.header.Get(h) != v {
			t.Errorf("%s = %q, want %q", h, r.header.Get(h), v)
		}
	}
}

type idea struct {
	ID           string  `json:"id"`
	Content      string  `json:"content"`
	Impact       int     `json:"impact"`
	Ease         int     `json:"ease"`
	Confidence   int     `json:"confidence"`
	AverageScore float64 `json:"average_score"`
	CreatedAt    int64   `json:"created_at"`
}

func TestIdeaValidation(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "erin@example.com")
	ok := func(content string) map[string]any {
		return map[string]any{"content": content, "impact": 5, "ease": 5, "confidence": 5}
	}
	with := func(k string, v any) map[string]any { m := ok("x"); m[k] = v; return m }
	without := func(k string) map[string]any { m := ok("x"); delete(m, k); return m }
	tests := map[string]struct {
		body  any
		field string // "" means 201
	}{
		"255 code points":     {ok(strings.Repeat("é", 255)), ""},
		"256 code points":     {ok(strings.Repeat("é", 256)), "content"},
		"empty content":       {ok(""), "content"},
		"white space content": {ok(" \t\n "), "content"},
		"missing content":     {without("content"), "content"},
		"impact 0":            {with("impact", 0), "impact"},
		"ease 11":             {with("ease", 11), "ease"},
		"confidence string":   {with("confidence", "5"), "confidence"},
		"impact fraction":     {with("impact", 5.5), "impact"},
		"impact 5.0":          {`{"content":"x","impact":5.0,"ease":5,"confidence":5}`, "impact"},
		"ease null":           {with("ease", nil), "ease"},
		"missing confidence":  {without("confidence"), "confidence"},
		"content number":      {with("content", 7), "content"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := ts.do(t, "POST", "/ideas", tc.body, auth(p)...)
			if tc.field == "" {
				if r.status != 201 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			var e struct {
				Fields map[string]string `json:"fields"`
			}
			r.json(t, &e)
			if r.status != 422 || e.Fields[tc.field] == "" {
				t.Fatalf("status %d, want 422 naming %q: %s", r.status, tc.field, r.body)
			}
		})
	}
}

func TestIdeasOrderPagesAndOwnership(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "frank@example.com")
	other := ts.signup(t, "grace@example.com")
	var created []idea
	for n := 0; n < 25; n++ {
		score := n%4 + 1 // many ties
		ts.clock.Advance(time.Millisecond)
		r := ts.do(t, "POST", "/ideas", map[string]any{"content": fmt.Sprint("idea ", n), "impact": score, "ease": score, "confidence": 10}, auth(p)...)
		var i idea
		r.json(t, &i)
		if r.status != 201 || len(i.ID) < 6 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if want := float64(2*score+10) / 3; i.AverageScore != want {
			t.Fatalf("average_score %v, want %v", i.AverageScore, want)
		}
		created = append(created, i)
	}
	var all []idea
	for page := 1; page <= 4; page++ {
		var got []idea
		r := ts.do(t, "GET", fmt.Sprintf("/ideas?page=%d", page), nil, auth(p)...)
		r.json(t, &got)
		wantLen := min(10, max(0, 25-(page-1)*10))
		if r.status != 200 || len(got) != wantLen {
			t.Fatalf("page %d: %d, %d ideas, want %d", page, r.status, len(got), wantLen)
		}
		all = append(all, got...)
	}
	for n := 1; n < len(all); n++ {
		a, b := all[n-1], all[n]
		// Same second for all: ties must follow creation order, newest first.
		if a.AverageScore < b.AverageScore || (a.AverageScore == b.AverageScore && a.Content < b.Content && len(a.Content) == len(b.Content)) {
			t.Fatalf("order broken at %d: %+v before %+v", n, a, b)
		}
	}
	var first []idea
	ts.do(t, "GET", "/ideas", nil, auth(p)...).json(t, &first)
	if fmt.Sprint(first) != fmt.Sprint(all[:10]) {
		t.Errorf("GET /ideas is not page 1")
	}
	for _, q := range []string{"page=0", "page=-1", "page=abc", "page=", "page=1.5"} {
		if r := ts.do(t, "GET", "/ideas?"+q, nil, auth(p)...); r.status != 422 {
			t.Errorf("%s: status %d, want 422", q, r.status)
		}
	}

	target := created[3]
	body := map[string]any{"content": "changed", "impact": 9, "ease": 9, "confidence": 9}
	for name, c := range map[string]struct {
		method, path string
		who          pair
		status       int
	}{
		"update by another user": {"PUT", "/ideas/" + target.ID, other, 404},
		"delete by another user": {"DELETE", "/ideas/" + target.ID, other, 404},
		"update unknown":         {"PUT", "/ideas/unknown00", p, 404},
		"delete unknown":         {"DELETE", "/ideas/unknown00", p, 404},
	} {
		if r := ts.do(t, c.method, c.path, body, auth(c.who)...); r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", name, r.status, c.status, r.body)
		}
	}
	ts.clock.Advance(2 * time.Second)
	var up idea
	r := ts.do(t, "PUT", "/ideas/"+target.ID, body, auth(p)...)
	r.json(t, &up)
	if r.status != 200 || up.ID != target.ID || up.CreatedAt != target.CreatedAt || up.Content != "changed" || up.AverageScore != 9 {
		t.Fatalf("update: %d %+v (was %+v)", r.status, up, target)
	}
	if r := ts.do(t, "DELETE", "/ideas/"+target.ID, nil, auth(p)...); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", "/ideas/"+target.ID, nil, auth(p)...); r.status != 404 {
		t.Fatalf("second delete: %d", r.status)
	}
	var others []idea
	ts.do(t, "GET", "/ideas", nil, auth(other)...).json(t, &others)
	if len(others) != 0 {
		t.Fatalf("another user sees %d ideas", len(others))
	}
}

func TestJWKSAndDiscovery(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "GET", "/.well-known/jwks.json", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Cache-Control"), "public, max-age=") || r.header.Get("ETag") == "" {
		t.Fatalf("jwks: %d %v", r.status, r.header)
	}
	if r := ts.do(t, "GET", "/.well-known/jwks.json", nil, "If-None-Match", r.header.Get("ETag")); r.status != 304 {
		t.Fatalf("conditional jwks: %d", r.status)
	}
	var d map[string]any
	ts.do(t, "GET", "/.well-known/openid-configuration", nil).json(t, &d)
	if d["issuer"] != testIssuer || d["jwks_uri"] != testIssuer+"/.well-known/jwks.json" {
		t.Fatalf("discovery: %v", d)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	ts := newTestServer(t)
	if r := ts.do(t, "GET", "/nope", nil); r.status != 404 || !strings.Contains(string(r.body), "message") {
		t.Fatalf("unknown route: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "PATCH", "/ideas", nil); r.status != 405 {
		t.Fatalf("unknown method: %d %s", r.status, r.body)
	}
}

// TestThrottleHoldsUnderConcurrentAttempts: attempts that arrive together
// see each other, so a burst checks no more passwords than the limit,
// per account and per client address.
func TestThrottleHoldsUnderConcurrentAttempts(t *testing.T) {
	tests := map[string]struct {
		emails    func(i int) string // the login name of attempt i
		attempts  int
		maxTried  int // at most this many answered 401 (checked); the rest 429
		thenRight bool
	}{
		"one account": {emails: func(int) string { return "victim@example.com" }, attempts: 30, maxTried: 10, thenRight: true},
		"one address, many names": {emails: func(i int) string { return fmt.Sprintf("nobody-%d@example.com", i) },
			attempts: 130, maxTried: 100},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t)
			ts.signup(t, "victim@example.com")
			statuses := make(chan int, tc.attempts)
			var wg sync.WaitGroup
			for i := range tc.attempts {
				wg.Go(func() {
					body, _ := json.Marshal(map[string]any{"email": tc.emails(i), "password": "Wrong-pass-1"})
					res, err := http.Post(ts.URL+"/access-tokens", "application/json", bytes.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					res.Body.Close()
					statuses <- res.StatusCode
				})
			}
			wg.Wait()
			close(statuses)
			counts := map[int]int{}
			for s := range statuses {
				counts[s]++
			}
			if counts[http.StatusUnauthorized] > tc.maxTried || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != tc.attempts {
				t.Errorf("%d attempts at once: statuses %v, want at most %d checked (401) and the rest refused (429)",
					tc.attempts, counts, tc.maxTried)
			}
			if tc.thenRight {
				// The burst's checked failures are what counts now: the
				// limit reached means locked, below it the right password
				// still gets in.
				failed := counts[http.StatusUnauthorized]
				want := http.StatusCreated
				if failed >= tc.maxTried {
					want = http.StatusTooManyRequests
				}
				r := ts.do(t, "POST", "/access-tokens", map[string]any{"email": "victim@example.com", "password": "the-Secret-123"})
				if r.status != want {
					t.Errorf("the right password after %d checked failures: %d, want %d", failed, r.status, want)
				}
			}
		})
	}
}

// disableDuring is a store on which every session creation is preceded by
// what `ideapool users disable` does to the account (disable, then revoke
// its sessions): the disable lands while the login is being checked.
type disableDuring struct {
	store.Store
}

func (d disableDuring) CreateSession(ctx context.Context, s store.Session, rt store.RefreshToken, role store.Role) error {
	at := time.Now().UTC()
	if _, err := d.UpdateUser(ctx, s.UserID, store.UserUpdate{DisabledAt: &at, RevokeSessionsAt: &at}); err != nil {
		return err
	}
	return d.Store.CreateSession(ctx, s, rt, role)
}

// TestDisableDuringLogin: an account disabled while its login is checked
// gets no live session.
func TestDisableDuringLogin(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "ideapool.db")
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	newReplica(t, url, clk).signup(t, "late@example.com")
	racy := newReplica(t, url, clk, withStore(func(s store.Store) accounts.Store { return disableDuring{s} }))
	r := racy.do(t, "POST", "/access-tokens", map[string]any{"email": "late@example.com", "password": "the-Secret-123"})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("login while the account is disabled: %d %s, want 401", r.status, r.body)
	}
}

// TestTextThatNoBackendStores: NUL characters and bytes that are not UTF-8
// are refused by name (or, in a path, are simply not found) before any
// database sees them: PostgreSQL would fail on both.
func TestTextThatNoBackendStores(t *testing.T) {
	ts := newTestServer(t)
	p := ts.signup(t, "text@example.com")
	form := "application/x-www-form-urlencoded"
	tests := map[string]struct {
		method, path string
		body         string
		ctype        string
		auth         bool
		status       int
		field        string
	}{
		"NUL in a name":        {method: "POST", path: "/users", body: `{"email":"a@example.com","name":"a\u0000b","password":"the-Secret-123"}`, status: 422, field: "name"},
		"NUL in a login":       {method: "POST", path: "/access-tokens", body: `{"email":"\u0000","password":"the-Secret-123"}`, status: 422, field: "email"},
		"NUL in idea content":  {method: "POST", path: "/ideas", body: `{"content":"a\u0000b","impact":1,"ease":1,"confidence":1}`, auth: true, status: 422, field: "content"},
		"form byte not UTF-8":  {method: "POST", path: "/users", body: "email=zz%FFc%40example.com&name=Z&password=the-Secret-123", ctype: form, status: 422, field: "email"},
		"form NUL":             {method: "POST", path: "/api-clients", body: "name=%00", ctype: form, auth: true, status: 422, field: "name"},
		"NUL in an idea id":    {method: "DELETE", path: "/ideas/a%00b", auth: true, status: 404},
		"idea id not UTF-8":    {method: "PUT", path: "/ideas/%FF", body: `{"content":"x","impact":1,"ease":1,"confidence":1}`, auth: true, status: 404},
		"client id not UTF-8":  {method: "DELETE", path: "/api-clients/a%FFb", auth: true, status: 404},
		"v1 login NUL":         {method: "POST", path: "/v1/auth", body: `{"username":"\u0000","password":"x"}`, status: 400},
		"userauth login NUL":   {method: "POST", path: "/api/user/authenticate", body: `{"userName":"\u0000","password":"x"}`, status: 400},
		"a long unknown login": {method: "POST", path: "/access-tokens", body: `{"email":"` + strings.Repeat("x", 3000) + `","password":"Wrong-pass-1"}`, status: 401},
		"JSON 33 deep":         {method: "POST", path: "/users", body: `{"name":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, status: 400},
		"JSON 32 deep":         {method: "POST", path: "/users", body: `{"name":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`, status: 422, field: "name"},
		"brackets in strings":  {method: "POST", path: "/users", body: `{"name":"` + strings.Repeat("[", 100) + `"}`, status: 422, field: "email"},
		"a malformed query":    {method: "GET", path: "/ideas?page=3;x", auth: true, status: 422, field: "page"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var h []string
			if tc.auth {
				h = auth(p)
			}
			var body any
			if tc.body != "" {
				body = tc.body
			}
			if tc.ctype != "" {
				h = append(h, "Content-Type", tc.ctype)
			}
			r := ts.do(t, tc.method, tc.path, body, h...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.field != "" && !strings.Contains(string(r.body), `"`+tc.field+`"`) {
				t.Errorf("the error does not name %s: %s", tc.field, r.body)
			}
		})
	}
}
