package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/ideas"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/password"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/token"
	"github.com/ideapool/ideapool/server"
)

// clock is the fake clock the tests move by hand.
type clock = clocktest.Clock

// testServer is an API on a temporary SQLite file with a fixed test key.
type testServer struct {
	*httptest.Server
	clock  *clock
	tokens *token.Manager
	reg    *prometheus.Registry
	acct   *accounts.Service
}

const testIssuer = "http://ideapool.test"

var (
	keyOnce sync.Once
	testKey keyset.Keyset
)

// fixedKeyset is one ES256 key, active since long before any test's clock.
func fixedKeyset(t testing.TB) keyset.Keyset {
	keyOnce.Do(func() {
		p := keyset.Policy{Algorithm: keyset.ES256, MaxTokenTTL: time.Hour}.WithDefaults()
		ks, _, err := keyset.Advance(keyset.Keyset{}, p, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), keyset.NewGenerator(rand.Reader))
		if err != nil {
			t.Fatalf("generate test keyset: %v", err)
		}
		testKey = ks
	})
	return testKey
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	return newReplica(t, "sqlite:"+filepath.Join(t.TempDir(), "ideapool.db"), clk)
}

// option changes a test server's configuration before it is built.
type option func(acct *accounts.Config, srv *server.Config)

// withStore puts wrap(db) between the account core and the database.
func withStore(wrap func(store.Store) accounts.Store) option {
	return func(acct *accounts.Config, _ *server.Config) { acct.Store = wrap(acct.Store.(store.Store)) }
}

// newReplica is a server on the database at url with the fixed test key:
// several replicas on one url share users, sessions and throttling.
func newReplica(t testing.TB, url string, clk *clock, opts ...option) *testServer {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	tokens, err := token.NewManager(token.Config{Issuer: testIssuer, Now: clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.SetKeyset(fixedKeyset(t)); err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewHasher(password.OWASP, rand.Reader, 0)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	acctCfg := accounts.Config{Store: db, Signer: tokens, Hasher: hasher,
		Lifetimes: accounts.Lifetimes{Access: 10 * time.Minute, Refresh: 720 * time.Hour, ID: time.Hour, ReuseGrace: 5 * time.Second},
		Now:       clk.Now, Rand: rand.Reader}
	srvCfg := server.Config{Ideas: ideas.New(db, clk.Now, rand.Reader),
		Tokens: tokens, Database: db, Registry: reg, Now: clk.Now, Rand: rand.Reader}
	for _, o := range opts {
		o(&acctCfg, &srvCfg)
	}
	acct, err := accounts.New(acctCfg)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg.Accounts = acct
	api, err := server.New(srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	return &testServer{Server: ts, clock: clk, tokens: tokens, reg: reg, acct: acct}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request; body is JSON-encoded unless it is a string.
func (ts *testServer) do(t testing.TB, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		t.Errorf("%s %s: server error %d: %s", method, path, res.StatusCode, b)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

type pair struct {
	JWT          string `json:"jwt"`
	RefreshToken string `json:"refresh_token"`
}

// signup creates a user and returns its tokens.
func (ts *testServer) signup(t testing.TB, email string) pair {
	t.Helper()
	r := ts.do(t, "POST", "/users", map[string]any{"email": email, "name": "Test User", "password": "the-Secret-123"})
	if r.status != http.StatusCreated {
		t.Fatalf("signup %s: %d %s", email, r.status, r.body)
	}
	var p pair
	r.json(t, &p)
	return p
}

func auth(p pair) []string { return []string{"X-Access-Token", p.JWT} }
