package server_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/clocktest"
)

// Two replicas on one database and one keyset agree on tokens, sessions,
// revocations and throttling without talking to each other.
func TestReplicasAgree(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	url := "sqlite:" + filepath.Join(t.TempDir(), "shared.db")
	a, b := newReplica(t, url, clk), newReplica(t, url, clk)

	p := a.signup(t, "shared@example.com")
	if r := b.do(t, "GET", "/me", nil, auth(p)...); r.status != 200 {
		t.Fatalf("replica b refuses a's token: %d %s", r.status, r.body)
	}
	if r := b.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": p.RefreshToken}); r.status != 200 {
		t.Fatalf("replica b refuses a's refresh token: %d", r.status)
	}

	// Logout on a: b refuses the refresh token at once and the access
	// token after its next poll of the revocation list.
	if r := a.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": p.RefreshToken}, auth(p)...); r.status != 204 {
		t.Fatalf("logout: %d", r.status)
	}
	if r := a.do(t, "GET", "/me", nil, auth(p)...); r.status != 401 {
		t.Fatalf("replica a still accepts a logged-out access token: %d", r.status)
	}
	if r := b.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": p.RefreshToken}); r.status != 401 {
		t.Fatalf("replica b still refreshes a logged-out session: %d", r.status)
	}
	if err := b.acct.SyncRevocations(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := b.do(t, "GET", "/me", nil, auth(p)...); r.status != 401 {
		t.Fatalf("replica b accepts a revoked session's access token after syncing: %d", r.status)
	}

	// Failures counted on a throttle logins on b.
	for range 10 {
		a.do(t, "POST", "/access-tokens", map[string]any{"email": "shared@example.com", "password": "Wrong-pass-1"})
	}
	if r := b.do(t, "POST", "/access-tokens", map[string]any{"email": "shared@example.com", "password": "the-Secret-123"}); r.status != 429 {
		t.Fatalf("replica b ignores a's failed logins: %d", r.status)
	}
}

// One address guessing many accounts is stopped after 100 failures, even
// though no single account reached its limit of 10.
func TestThrottlePerAddress(t *testing.T) {
	ts := newTestServer(t)
	ts.signup(t, "target@example.com")
	for n := range 100 {
		r := ts.do(t, "POST", "/access-tokens", map[string]any{"email": fmt.Sprintf("guess%d@example.com", n%20), "password": "Wrong-pass-1"})
		if r.status != 401 {
			t.Fatalf("attempt %d: %d, want 401", n, r.status)
		}
	}
	r := ts.do(t, "POST", "/access-tokens", map[string]any{"email": "target@example.com", "password": "the-Secret-123"})
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 100 failures from one address: %d %v", r.status, r.header)
	}
	ts.clock.Advance(15*time.Minute + time.Second)
	if r := ts.do(t, "POST", "/access-tokens", map[string]any{"email": "target@example.com", "password": "the-Secret-123"}); r.status != 201 {
		t.Fatalf("after the window: %d", r.status)
	}
}
