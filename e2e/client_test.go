package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// httpClient is shared by every test; each call goes through server.do,
// which fails the test on any 5xx.
var httpClient = &http.Client{
	Timeout: 20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
	What   string // "METHOD URL" for messages
}

func (r response) String() string {
	b := r.Body
	if len(b) > 600 {
		b = append(b[:600:600], "..."...)
	}
	return fmt.Sprintf("%s -> %d %s", r.What, r.Status, b)
}

// decode unmarshals the body into v, failing the test if it is not JSON.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(r.Body))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: body is not the expected JSON: %v", r, err)
	}
}

func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

type reqOpt func(*http.Request)

// withToken sends the access token in X-Access-Token, as the seed says.
func withToken(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("X-Access-Token", tok) }
}

// withBearer sends the access token as Authorization: Bearer.
func withBearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func withHeader(k, v string) reqOpt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

// rawJSON is a body sent exactly as written, as application/json.
type rawJSON string

var reportedOnce sync.Map // test name + check -> reported

func reportOnce(t testing.TB, key, format string, args ...any) {
	t.Helper()
	if _, loaded := reportedOnce.LoadOrStore(t.Name()+"\x00"+key, true); !loaded {
		t.Errorf(format, args...)
	}
}

var requestCount atomic.Int64

// do sends one request to the API port and applies the checks that hold for
// every response: never a 5xx, the seed's security headers, and a JSON body
// on every error.
func (s *server) do(t testing.TB, method, path string, body any, opts ...reqOpt) response {
	t.Helper()
	return s.doURL(t, method, s.Base+path, body, true, opts...)
}

func (s *server) doURL(t testing.TB, method, u string, body any, api bool, opts ...reqOpt) response {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case rawJSON:
		rd, ctype = strings.NewReader(string(b)), "application/json"
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/json"
	case io.Reader: // unknown length: sent chunked
		rd, ctype = b, "application/json"
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request body: %v", err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, u, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for _, o := range opts {
		o(req)
	}
	requestCount.Add(1)
	client := httpClient
	if s.client != nil {
		client = s.client
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: data, What: method + " " + u}
	if r.Status >= 500 {
		serverErrors.Add(1)
		t.Errorf("server error (no client mistake may produce a 5xx): %s", r)
	}
	if api {
		if got := resp.Header.Get("X-Content-Type-Options"); !strings.EqualFold(got, "nosniff") {
			reportOnce(t, "nosniff", "%s: X-Content-Type-Options = %q, want nosniff", r.What, got)
		}
		if got := resp.Header.Get("X-Frame-Options"); !strings.EqualFold(got, "SAMEORIGIN") {
			reportOnce(t, "xfo", "%s: X-Frame-Options = %q, want SAMEORIGIN", r.What, got)
		}
		if r.Status < 300 && len(data) > 0 {
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.Contains(ct, "+json") {
				reportOnce(t, "okct", "%s: Content-Type = %q, want application/json", r, ct)
			}
		}
		if r.Status >= 400 {
			if !jsonObject(data) {
				t.Errorf("error response without a JSON object body: %s", r)
			} else if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
				reportOnce(t, "errct", "%s: error response Content-Type = %q, want JSON", r, ct)
			}
		}
	}
	return r
}

// jsonObject reports whether b is a single non-empty JSON object.
func jsonObject(b []byte) bool {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return false
	}
	return len(m) > 0
}

// expect fails the test unless r has the wanted status.
func expect(t testing.TB, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: want status %d", r, status)
	}
}

// must is expect, then stop the test.
func must(t testing.TB, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: want status %d", r, status)
	}
}

// expect422 checks a 422 whose message names the field(s) to fix.
func expect422(t testing.TB, r response, fields ...string) {
	t.Helper()
	if r.Status != http.StatusUnprocessableEntity {
		t.Errorf("%s: want 422", r)
		return
	}
	body := strings.ToLower(string(r.Body))
	for _, f := range fields {
		if !strings.Contains(body, strings.ToLower(f)) {
			t.Errorf("%s: the 422 body does not name the field %q", r, f)
		}
	}
}

// keysOf returns the set of keys of a JSON object, sorted.
func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func sameKeys(m map[string]any, want ...string) bool {
	got := keysOf(m)
	w := append([]string(nil), want...)
	sortStrings(w)
	return strings.Join(got, ",") == strings.Join(w, ",")
}

var emailSeq atomic.Int64

// uniqueEmail is an address no other test uses.
func uniqueEmail(tag string) string {
	return fmt.Sprintf("%s-%d-%d@example.com", tag, time.Now().UnixNano()%1e9, emailSeq.Add(1))
}

const goodPassword = "the-Secret-123"

type user struct {
	Email, Name, Password string
	JWT, Refresh          string
}

// signup creates a fresh account and checks the 201 {jwt, refresh_token}.
func (s *server) signup(t testing.TB, tag string) *user {
	t.Helper()
	u := &user{Email: uniqueEmail(tag), Name: "Name " + tag, Password: goodPassword + tag}
	s.remember(u.Password)
	r := s.do(t, "POST", "/users", map[string]any{"email": u.Email, "name": u.Name, "password": u.Password})
	must(t, r, http.StatusCreated)
	u.JWT, u.Refresh = s.tokenPair(t, r)
	return u
}

// tokenPair checks a {jwt, refresh_token} body and verifies the JWT.
func (s *server) tokenPair(t testing.TB, r response) (string, string) {
	t.Helper()
	m := r.object(t)
	if !sameKeys(m, "jwt", "refresh_token") {
		t.Errorf("%s: want exactly the members jwt and refresh_token, got %v", r, keysOf(m))
	}
	jwtStr, _ := m["jwt"].(string)
	refresh, _ := m["refresh_token"].(string)
	if jwtStr == "" || refresh == "" {
		t.Fatalf("%s: jwt and refresh_token must be non-empty strings", r)
	}
	s.remember(jwtStr)
	s.remember(refresh)
	checkRefreshTokenEntropy(t, refresh)
	s.verify(t, jwtStr)
	return jwtStr, refresh
}

// checkRefreshTokenEntropy: at least 256 random bits, judged by length: 64
// hex digits or 43 base64 characters.
func checkRefreshTokenEntropy(t testing.TB, tok string) {
	t.Helper()
	hex := true
	for _, c := range tok {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			hex = false
			break
		}
	}
	if hex && len(tok) < 64 {
		t.Errorf("refresh token %q: hex with %d digits is under 256 bits", tok, len(tok))
	}
	if !hex && len(tok) < 43 {
		t.Errorf("refresh token %q: %d characters is under 256 bits of base64", tok, len(tok))
	}
}

func (s *server) login(t testing.TB, email, password string) response {
	t.Helper()
	return s.do(t, "POST", "/access-tokens", map[string]any{"email": email, "password": password})
}

func (s *server) refresh(t testing.TB, refresh string) response {
	t.Helper()
	return s.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": refresh})
}

// idea is the API's idea, decoded strictly.
type idea struct {
	ID           string      `json:"id"`
	Content      string      `json:"content"`
	Impact       json.Number `json:"impact"`
	Ease         json.Number `json:"ease"`
	Confidence   json.Number `json:"confidence"`
	AverageScore json.Number `json:"average_score"`
	CreatedAt    json.Number `json:"created_at"`
}

func ideaBody(content string, impact, ease, confidence int) map[string]any {
	return map[string]any{"content": content, "impact": impact, "ease": ease, "confidence": confidence}
}

// createIdea posts an idea and checks the 201 idea.
func (s *server) createIdea(t testing.TB, tok, content string, impact, ease, confidence int) idea {
	t.Helper()
	r := s.do(t, "POST", "/ideas", ideaBody(content, impact, ease, confidence), withToken(tok))
	must(t, r, http.StatusCreated)
	return checkIdea(t, r, content, impact, ease, confidence)
}

// checkIdea checks an idea body: exactly the seven members, with the values sent.
func checkIdea(t testing.TB, r response, content string, impact, ease, confidence int) idea {
	t.Helper()
	m := r.object(t)
	if !sameKeys(m, "id", "content", "impact", "ease", "confidence", "average_score", "created_at") {
		t.Errorf("%s: an idea has exactly id, content, impact, ease, confidence, average_score, created_at; got %v", r, keysOf(m))
	}
	checkIdeaTypes(t, r.String(), m)
	var i idea
	r.decode(t, &i)
	checkIdeaValues(t, r.String(), i, content, impact, ease, confidence)
	return i
}

func checkIdeaValues(t testing.TB, what string, i idea, content string, impact, ease, confidence int) {
	t.Helper()
	if i.ID == "" || len(i.ID) > 32 || strings.ContainsAny(i.ID, "/?#% ") {
		t.Errorf("%s: id %q is not a short URL-safe string", what, i.ID)
	}
	if i.Content != content {
		t.Errorf("%s: content = %q, want %q", what, i.Content, content)
	}
	for _, f := range []struct {
		name string
		got  json.Number
		want int
	}{{"impact", i.Impact, impact}, {"ease", i.Ease, ease}, {"confidence", i.Confidence, confidence}} {
		if f.got.String() != fmt.Sprint(f.want) {
			t.Errorf("%s: %s = %s, want the integer %d", what, f.name, f.got, f.want)
		}
	}
	avg, err := i.AverageScore.Float64()
	want := float64(impact+ease+confidence) / 3
	if err != nil || avg-want > 1e-9 || want-avg > 1e-9 {
		t.Errorf("%s: average_score = %s, want %v (the mean as a float)", what, i.AverageScore, want)
	}
	created, err := i.CreatedAt.Int64()
	if err != nil {
		t.Errorf("%s: created_at = %s, want integer Unix seconds", what, i.CreatedAt)
	} else if d := time.Since(time.Unix(created, 0)); d < -5*time.Second || d > 120*time.Second {
		t.Errorf("%s: created_at = %d is not near now (%d)", what, created, time.Now().Unix())
	}
}

func (s *server) listIdeas(t testing.TB, tok, query string) []idea {
	t.Helper()
	r := s.do(t, "GET", "/ideas"+query, nil, withToken(tok))
	must(t, r, http.StatusOK)
	var raw []map[string]any
	r.decode(t, &raw)
	for _, m := range raw {
		checkIdeaTypes(t, r.String(), m)
	}
	var list []idea
	r.decode(t, &list)
	if list == nil && strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("%s: want a JSON array", r)
	}
	return list
}

// checkIdeaTypes: numbers are JSON numbers (never strings), id and content strings.
func checkIdeaTypes(t testing.TB, what string, m map[string]any) {
	t.Helper()
	for _, k := range []string{"id", "content"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("%s: %s = %#v, want a string", what, k, m[k])
		}
	}
	for _, k := range []string{"impact", "ease", "confidence", "average_score", "created_at"} {
		if _, ok := m[k].(json.Number); !ok {
			t.Errorf("%s: %s = %#v, want a JSON number", what, k, m[k])
		}
	}
}
