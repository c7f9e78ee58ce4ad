package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/server"
)

// The hardening of issue 12, tried through HTTP as an attacker would.

func withLifetimes(l accounts.Lifetimes) option {
	return func(a *accounts.Config, _ *server.Config) { a.Lifetimes = l }
}

// withAccountMetrics registers the account metrics on the server's registry.
func withAccountMetrics(t testing.TB) option {
	return func(a *accounts.Config, s *server.Config) {
		m, err := server.NewAccountMetrics(s.Registry)
		if err != nil {
			t.Fatal(err)
		}
		a.Observer = m
	}
}

// TestAssertionReplayWithinLeeway: a client JWT is accepted until exp plus
// 5 s of leeway, and its jti is remembered as long: a replay in those 5 s
// is -32008, never a fresh session.
func TestAssertionReplayWithinLeeway(t *testing.T) {
	ts := newTestServer(t)
	owner := ts.signup(t, "robots@example.com")
	id, secret := ts.rpcClient(t, owner, nil)
	a := rpcSign(t, jwt.SigningMethodHS256, []byte(secret), ts.rpcClaims(id)) // exp in 2 minutes
	if v := ts.rpcAuthenticate(t, id, a); v.Result == nil {
		t.Fatalf("first use: %+v", v.Error)
	}
	used := ts.clock.Now()
	for _, after := range []time.Duration{2 * time.Minute, 2*time.Minute + 4*time.Second} {
		ts.clock.Advance(used.Add(after).Sub(ts.clock.Now()))
		if v := ts.rpcAuthenticate(t, id, a); v.code() != -32008 {
			t.Fatalf("replay %v after the first use (exp is at 2m): code %d, want -32008 (%+v)", after, v.code(), v.Result)
		}
	}
}

// revokeClientDuring revokes every API client of the user right before a
// session is created for one: DELETE /api-clients/:id lands while
// user.Authenticate is being checked.
type revokeClientDuring struct{ store.Store }

func (r revokeClientDuring) CreateSession(ctx context.Context, s store.Session, rt store.RefreshToken, role store.Role) error {
	if s.ClientID != "" {
		if _, err := r.RevokeAPIClient(ctx, s.UserID, s.ClientID, time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)); err != nil {
			return err
		}
	}
	return r.Store.CreateSession(ctx, s, rt, role)
}

// TestClientRevokedDuringAuthentication: once DELETE /api-clients/:id has
// committed, an authentication that read the client before gets no
// session.
func TestClientRevokedDuringAuthentication(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "ideapool.db")
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	ts := newReplica(t, url, clk)
	owner := ts.signup(t, "robots@example.com")
	id, secret := ts.rpcClient(t, owner, nil)
	racy := newReplica(t, url, clk, withStore(func(s store.Store) accounts.Store { return revokeClientDuring{s} }))
	v := racy.rpcAuthenticate(t, id, rpcSign(t, jwt.SigningMethodHS256, []byte(secret), racy.rpcClaims(id)))
	if v.code() != -32001 {
		t.Fatalf("authenticate while the client is revoked: %+v %+v, want -32001", v.Result, v.Error)
	}
}

// TestClientSessionsCannotManageClients: an access token of a session an
// API client started cannot create, list or delete API clients.
func TestClientSessionsCannotManageClients(t *testing.T) {
	ts := newTestServer(t)
	owner := ts.signup(t, "robots@example.com")
	id, secret := ts.rpcClient(t, owner, nil)
	v := ts.rpcAuthenticate(t, id, rpcSign(t, jwt.SigningMethodHS256, []byte(secret), ts.rpcClaims(id)))
	if v.Result == nil {
		t.Fatalf("authenticate: %+v", v.Error)
	}
	robot := []string{"Authorization", "Bearer " + v.Result.AccessToken}
	calls := map[string]struct {
		method, path string
		body         any
	}{
		"create": {"POST", "/api-clients", map[string]any{"name": "second"}},
		"list":   {"GET", "/api-clients", nil},
		"delete": {"DELETE", "/api-clients/" + id, nil},
	}
	for name, c := range calls {
		r := ts.do(t, c.method, c.path, c.body, robot...)
		var e struct{ Error, Message string }
		r.json(t, &e)
		if r.status != http.StatusForbidden || e.Error != "forbidden" || !strings.Contains(e.Message, "password") {
			t.Errorf("%s with a client session's token: %d %s, want 403 forbidden saying why", name, r.status, r.body)
		}
	}
	// Its other routes still work, and the owner's password session may.
	if r := ts.do(t, "GET", "/me", nil, robot...); r.status != http.StatusOK {
		t.Errorf("/me with a client session's token: %d", r.status)
	}
	r := ts.do(t, "GET", "/api-clients", nil, auth(owner)...)
	var list []map[string]any
	r.json(t, &list)
	if r.status != http.StatusOK || len(list) != 1 {
		t.Fatalf("the owner's list: %d %s, want the one client", r.status, r.body)
	}
}

// TestClientAddressBehindProxies: with the proxy trusted, the per-address
// login limit counts the rightmost X-Forwarded-For hop that is not a
// trusted proxy; nothing else the client sends picks the address.
func TestClientAddressBehindProxies(t *testing.T) {
	const limit = 3 // failures per address
	tests := map[string]struct {
		trusted []string
		// failures i are sent with these headers; then the right password
		// with then.
		failure  func(i int) []string
		then     []string
		wantThen int
	}{
		"the rightmost untrusted hop is counted, whatever precedes it": {trusted: []string{"127.0.0.0/8"},
			failure: func(i int) []string { return []string{"X-Forwarded-For", fmt.Sprintf("10.9.9.%d, 198.51.100.7", i)} },
			then:    []string{"X-Forwarded-For", "198.51.100.7"}, wantThen: http.StatusTooManyRequests},
		"another client behind the same proxy is not locked out": {trusted: []string{"127.0.0.0/8"},
			failure: func(int) []string { return []string{"X-Forwarded-For", "198.51.100.7"} },
			then:    []string{"X-Forwarded-For", "198.51.100.8"}, wantThen: http.StatusCreated},
		"trusted hops are skipped": {trusted: []string{"127.0.0.1", "10.0.0.0/8"},
			failure: func(i int) []string { return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.7, 10.0.0.%d", i)} },
			then:    []string{"X-Forwarded-For", "198.51.100.7, 10.1.1.1"}, wantThen: http.StatusTooManyRequests},
		"a hop with a port": {trusted: []string{"127.0.0.0/8"},
			failure: func(int) []string { return []string{"X-Forwarded-For", "198.51.100.7:4711"} },
			then:    []string{"X-Forwarded-For", "198.51.100.7"}, wantThen: http.StatusTooManyRequests},
		"X-Real-IP is not believed": {trusted: []string{"127.0.0.0/8"},
			failure: func(i int) []string { return []string{"X-Real-IP", fmt.Sprintf("203.0.113.%d", i)} },
			then:    []string{"X-Real-IP", "203.0.113.200"}, wantThen: http.StatusTooManyRequests},
		"without trusted proxies X-Forwarded-For is ignored": {
			failure: func(i int) []string { return []string{"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)} },
			then:    []string{"X-Forwarded-For", "203.0.113.200"}, wantThen: http.StatusTooManyRequests},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
			ts := newReplica(t, "sqlite:"+filepath.Join(t.TempDir(), "ideapool.db"), clk, func(a *accounts.Config, s *server.Config) {
				a.Throttle.MaxPerAddr = limit
				s.TrustedProxies = tc.trusted
			})
			ts.signup(t, "victim@example.com")
			for i := range limit {
				r := ts.do(t, "POST", "/access-tokens", map[string]any{"email": fmt.Sprintf("guess%d@example.com", i), "password": "Wrong-pass-1"}, tc.failure(i)...)
				if r.status != http.StatusUnauthorized {
					t.Fatalf("failure %d: %d %s", i, r.status, r.body)
				}
			}
			r := ts.do(t, "POST", "/access-tokens", map[string]any{"email": "victim@example.com", "password": "the-Secret-123"}, tc.then...)
			if r.status != tc.wantThen {
				t.Fatalf("the right password with %v: %d %s, want %d", tc.then, r.status, r.body, tc.wantThen)
			}
		})
	}
	t.Run("a trusted proxy that is no address is refused at start", func(t *testing.T) {
		var cfg server.Config
		ts := newReplica(t, "sqlite:"+filepath.Join(t.TempDir(), "ideapool.db"), clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)),
			func(_ *accounts.Config, s *server.Config) { cfg = *s })
		cfg.Accounts, cfg.Registry = ts.acct, prometheus.NewRegistry()
		cfg.TrustedProxies = []string{"10.0.0.0/8", "proxy.internal"}
		_, err := server.New(cfg)
		if err == nil || !strings.Contains(err.Error(), "proxy.internal") {
			t.Fatalf("server.New with a host name as trusted proxy: %v, want an error naming it", err)
		}
	})
}

// TestRevocationOutlivesAShorterAccessLifetime: tokens issued under a long
// access lifetime stay refused after a logout even when the lifetime was
// lowered since, on a replica started later too.
func TestRevocationOutlivesAShorterAccessLifetime(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "ideapool.db")
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	long := accounts.Lifetimes{Access: time.Hour, Refresh: 720 * time.Hour, ID: time.Hour, ReuseGrace: 5 * time.Second}
	ts := newReplica(t, url, clk, withLifetimes(long))
	p := ts.signup(t, "ann@example.com")
	short := long
	short.Access = 5 * time.Minute
	if err := ts.acct.SetLifetimes(short); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": p.RefreshToken}, auth(p)...); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d", r.status)
	}
	clk.Advance(30 * time.Minute)
	later := newReplica(t, url, clk, withLifetimes(short))
	for name, r := range map[string]*testServer{"the replica that revoked": ts, "a replica started later": later} {
		if err := r.acct.SyncRevocations(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := r.do(t, "GET", "/me", nil, auth(p)...); got.status != http.StatusUnauthorized {
			t.Errorf("%s accepts a logged-out session's hour-long token 30 minutes on: %d", name, got.status)
		}
	}
}

// TestLoginFailureMetricsHideAccounts: the metrics count an unknown account
// and a wrong password under one reason.
func TestLoginFailureMetricsHideAccounts(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	ts := newReplica(t, "sqlite:"+filepath.Join(t.TempDir(), "ideapool.db"), clk, withAccountMetrics(t))
	ts.signup(t, "victim@example.com")
	ts.do(t, "POST", "/access-tokens", map[string]any{"email": "victim@example.com", "password": "Wrong-pass-1"})
	ts.do(t, "POST", "/access-tokens", map[string]any{"email": "nobody@example.com", "password": "Wrong-pass-1"})
	families, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "ideapool_login_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			reasons[label(m, "reason")] += m.GetCounter().GetValue()
		}
	}
	if len(reasons) != 1 || reasons["invalid_credentials"] != 2 {
		t.Fatalf("ideapool_login_failures_total by reason: %v, want both under invalid_credentials", reasons)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestTokensCarryUsernameAndGroups: access and ID tokens, verified with an
// independent JWT library against the JWKS, carry preferred_username and
// groups, and a client session's token its client_id; discovery lists
// them.
func TestTokensCarryUsernameAndGroups(t *testing.T) {
	ts := newTestServer(t)
	signupWith(t, ts, map[string]any{"email": "ann@example.com", "name": "Ann", "password": "the-Secret-123", "username": "Ann.K"})
	r := ts.do(t, "POST", "/v1/auth", map[string]any{"username": "ann.k", "password": "the-Secret-123"})
	var v1 struct {
		Tokens struct{ IDToken, AccessToken string }
	}
	r.json(t, &v1)
	if r.status != http.StatusOK {
		t.Fatalf("/v1/auth: %d %s", r.status, r.body)
	}
	jwks := ts.do(t, "GET", "/.well-known/jwks.json", nil)
	kf, err := keyfunc.NewJWKSetJSON(jwks.body)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(tok, aud string) jwt.MapClaims {
		t.Helper()
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(testIssuer),
			jwt.WithAudience(aud), jwt.WithExpirationRequired(), jwt.WithTimeFunc(ts.clock.Now))
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return claims
	}
	for name, c := range map[string]jwt.MapClaims{
		"access token": verify(v1.Tokens.AccessToken, testIssuer),
		"ID token":     verify(v1.Tokens.IDToken, "ideapool"),
	} {
		if c["preferred_username"] != "ann.k" || fmt.Sprint(c["groups"]) != "[member]" {
			t.Errorf("%s: preferred_username %v, groups %v; want ann.k and [member]", name, c["preferred_username"], c["groups"])
		}
		if _, ok := c["client_id"]; ok {
			t.Errorf("%s of a password session has a client_id", name)
		}
	}

	owner := ts.signup(t, "robots@example.com")
	id, secret := ts.rpcClient(t, owner, nil)
	rpc := ts.rpcAuthenticate(t, id, rpcSign(t, jwt.SigningMethodHS256, []byte(secret), ts.rpcClaims(id)))
	if rpc.Result == nil {
		t.Fatalf("authenticate: %+v", rpc.Error)
	}
	if c := verify(rpc.Result.AccessToken, testIssuer); c["client_id"] != id {
		t.Errorf("a client session's access token: client_id %v, want %s", c["client_id"], id)
	}

	var d struct {
		Claims []string `json:"claims_supported"`
	}
	if err := json.Unmarshal(ts.do(t, "GET", "/.well-known/openid-configuration", nil).body, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"preferred_username", "groups", "client_id"} {
		if !slices.Contains(d.Claims, c) {
			t.Errorf("claims_supported %v lacks %s", d.Claims, c)
		}
	}
}
