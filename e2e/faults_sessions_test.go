package e2e_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// revocationDelay is how soon every replica must refuse the access token of
// a revoked session: the revocation list is polled every second.
const revocationDelay = 3 * time.Second

// TestFaultReplicas: two "ideapool serve" processes on one PostgreSQL
// database and one key file agree on tokens (either verifies the other's),
// sessions (refresh anywhere; a logout at A ends the session at B: its
// refresh token at once, its access token within 3 s) and throttling (10
// failed logins at A: 429 at B).
func TestFaultReplicas(t *testing.T) {
	t.Parallel()
	db := freshPostgres(t)
	keys := filepath.Join(t.TempDir(), "keyset.json")
	portA := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", portA)
	shared := []string{"--database", db, "--keys", "file:" + keys, "--issuer", issuer}
	a := startServerOpts(t, serverOptions{port: portA, args: shared})
	b := startServerOpts(t, serverOptions{args: shared})
	b.Issuer = issuer

	// One keyset: the same published keys (each asked directly: B's
	// discovery document points at the issuer, A).
	kids := func(s *server) []string {
		r := s.do(t, "GET", "/.well-known/jwks.json", nil)
		must(t, r, http.StatusOK)
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		r.decode(t, &set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Kid)
		}
		slices.Sort(out)
		return out
	}
	if ka, kb := kids(a), kids(b); len(ka) == 0 || !slices.Equal(ka, kb) {
		t.Errorf("replicas on one key file publish different keys: A %v, B %v", ka, kb)
	}

	// Tokens: A's at B, B's at A.
	u := a.signup(t, "replica")
	b.remember(u.Password)
	b.remember(u.JWT)
	b.remember(u.Refresh)
	expect(t, b.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	r := b.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	jwtB, refreshB := b.tokenPair(t, r)
	a.remember(jwtB)
	a.remember(refreshB)
	expect(t, a.do(t, "GET", "/me", nil, withToken(jwtB)), http.StatusOK)
	i := b.createIdea(t, jwtB, "seen by both", 3, 4, 5)
	if list := a.listIdeas(t, u.JWT, ""); len(list) != 1 || list[0].ID != i.ID {
		t.Errorf("A lists %s, want the idea %s created at B", ids(list), i.ID)
	}

	// Sessions: A's login refreshes at B.
	r = b.refresh(t, u.Refresh)
	must(t, r, http.StatusOK)
	fromB, _ := r.object(t)["jwt"].(string)
	b.remember(fromB)
	expect(t, a.do(t, "GET", "/me", nil, withToken(fromB)), http.StatusOK)

	// Logout at A: B refuses the refresh token at once, and the access
	// tokens of that session (issued by A and by B) within 3 s.
	must(t, a.do(t, "DELETE", "/access-tokens", map[string]any{"refresh_token": u.Refresh}, withToken(u.JWT)), http.StatusNoContent)
	loggedOut := time.Now()
	expect(t, b.refresh(t, u.Refresh), http.StatusUnauthorized)
	for _, tok := range []string{u.JWT, fromB} {
		took, ok := waitFor(revocationDelay, func() bool {
			return b.do(t, "GET", "/me", nil, withToken(tok)).Status == http.StatusUnauthorized
		})
		if !ok {
			t.Errorf("B still accepts an access token of the session logged out at A %v later", took.Round(time.Millisecond))
		}
	}
	t.Logf("B refused the logged-out session's access tokens %v after the logout at A", time.Since(loggedOut).Round(time.Millisecond))
	// The other session of the same user lives on, at both.
	expect(t, b.do(t, "GET", "/me", nil, withToken(jwtB)), http.StatusOK)
	expect(t, a.refresh(t, refreshB), http.StatusOK)

	// Throttling: 10 failures at A, then B refuses even the right password.
	v := a.signup(t, "replica-throttle")
	b.remember(v.Password)
	for n := range 10 {
		expect(t, a.login(t, v.Email, fmt.Sprintf("Wrong-Pass-%d", n)), http.StatusUnauthorized)
	}
	r = b.login(t, v.Email, v.Password)
	expect(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("%s: 429 without Retry-After", r)
	}
}

// TestFaultUsersDisable: "ideapool users disable" on a running server's
// database ends the user's sessions: refresh tokens are refused at once,
// access tokens within 3 s, and the user cannot log in again.
func TestFaultUsersDisable(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var s *server
			var db string
			if backend == "postgres" {
				db = freshPostgres(t)
				s = startServer(t, "--database", db)
			} else {
				s = startServer(t)
				db = "sqlite:" + filepath.Join(s.Dir, "db")
			}
			u := s.signup(t, "disable")
			r := s.login(t, u.Email, u.Password)
			must(t, r, http.StatusCreated)
			jwt2, refresh2 := s.tokenPair(t, r)
			bystander := s.signup(t, "disable-bystander")
			expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)

			cmd := exec.Command(binary, "users", "disable", "--database", db, u.Email)
			cmd.Env = cleanEnv()
			cmd.Dir = s.Dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ideapool users disable --database %s %s: %v\n%s", db, u.Email, err, out)
			}
			disabled := time.Now()
			expect(t, s.refresh(t, u.Refresh), http.StatusUnauthorized)
			expect(t, s.refresh(t, refresh2), http.StatusUnauthorized)
			for _, tok := range []string{u.JWT, jwt2} {
				took, ok := waitFor(revocationDelay, func() bool {
					return s.do(t, "GET", "/me", nil, withToken(tok)).Status == http.StatusUnauthorized
				})
				if !ok {
					t.Errorf("the server still accepts a disabled user's access token %v after ideapool users disable", took.Round(time.Millisecond))
				}
			}
			t.Logf("access tokens refused %v after the CLI returned", time.Since(disabled).Round(time.Millisecond))
			if r := s.login(t, u.Email, u.Password); r.Status < 400 {
				t.Errorf("a disabled user logs in: %s", r)
			}
			// Only that user.
			expect(t, s.do(t, "GET", "/me", nil, withToken(bystander.JWT)), http.StatusOK)
			expect(t, s.refresh(t, bystander.Refresh), http.StatusOK)
		})
	}
}
