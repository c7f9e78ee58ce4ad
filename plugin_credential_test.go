package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
)

func TestWriteExecCredentialExactJSON(t *testing.T) {
	exp := time.Date(2026, 6, 1, 13, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	tests := map[string]struct {
		info string
		want string
	}{
		"run by hand: v1": {"",
			`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false},"status":{"expirationTimestamp":"2026-06-01T11:00:00Z","token":"TOKEN"}}` + "\n"},
		"v1, interactive": {`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":true}}`,
			`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":true},"status":{"expirationTimestamp":"2026-06-01T11:00:00Z","token":"TOKEN"}}` + "\n"},
		"v1beta1 answered in kind": {`{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"cluster":{"server":"https://k"}}}`,
			`{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false},"status":{"expirationTimestamp":"2026-06-01T11:00:00Z","token":"TOKEN"}}` + "\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := execRequest(tc.info)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := writeExecCredential(&out, req, "TOKEN", exp); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("got  %s\nwant %s", out.String(), tc.want)
			}
			// client-go's own type reads it.
			var cred clientauthv1.ExecCredential
			if err := json.Unmarshal(out.Bytes(), &cred); err != nil || cred.Status == nil || cred.Status.Token != "TOKEN" ||
				cred.Status.ExpirationTimestamp == nil || !cred.Status.ExpirationTimestamp.Time.Equal(exp) {
				t.Errorf("client-go reads %+v, %v", cred.Status, err)
			}
		})
	}
}

func TestExecRequestRefusals(t *testing.T) {
	tests := map[string]struct {
		info string
		want string
	}{
		"not JSON":            {"{", "KUBERNETES_EXEC_INFO is not an ExecCredential"},
		"another kind":        {`{"apiVersion":"client.authentication.k8s.io/v1","kind":"Pod"}`, `has kind "Pod"`},
		"unknown API version": {`{"apiVersion":"client.authentication.k8s.io/v2","kind":"ExecCredential"}`, `asks for apiVersion "client.authentication.k8s.io/v2"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := execRequest(tc.info); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// jwtWith is an unsigned token with the given iat and exp (the plugin reads
// them and never verifies).
func jwtWith(iat, exp time.Time) string {
	p, _ := json.Marshal(map[string]any{"iss": "https://i", "iat": iat.Unix(), "exp": exp.Unix()})
	return "e30." + base64.RawURLEncoding.EncodeToString(p) + ".c2ln"
}

func TestIDTokenFreshness(t *testing.T) {
	iat := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		life  time.Duration // exp - iat
		at    time.Duration // now - iat
		fresh bool          // reused without a refresh
		valid bool          // not expired
	}{
		"1h token, new":                    {time.Hour, 0, true, true},
		"1h token, 61s left":               {time.Hour, 59*time.Minute - time.Second, true, true},
		"1h token, 60s left: refreshed":    {time.Hour, 59 * time.Minute, false, true},
		"1h token, expired":                {time.Hour, time.Hour, false, false},
		"20s token, 6s left":               {20 * time.Second, 14 * time.Second, true, true},
		"20s token, 5s left: refreshed":    {20 * time.Second, 15 * time.Second, false, true},
		"20s token, 1s past its expiry":    {20 * time.Second, 21 * time.Second, false, false},
		"token from the future (skew)":     {time.Hour, -time.Minute, true, true},
		"10h token still refreshed at 60s": {10 * time.Hour, 10*time.Hour - time.Minute, false, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := parseIDToken(jwtWith(iat, iat.Add(tc.life)))
			if err != nil {
				t.Fatal(err)
			}
			now := iat.Add(tc.at)
			if c.fresh(now) != tc.fresh || c.valid(now) != tc.valid {
				t.Errorf("fresh %v valid %v, want %v %v", c.fresh(now), c.valid(now), tc.fresh, tc.valid)
			}
		})
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x"}`)) + ".c"} {
		if _, err := parseIDToken(bad); err == nil {
			t.Errorf("parseIDToken(%q) succeeded", bad)
		}
	}
}

// credential runs `credential` for alice at iss.
func (p *pluginRun) credential(t *testing.T, iss *testIssuer, extra ...string) pluginResult {
	t.Helper()
	return p.run(t, append([]string{"credential", "--issuer", iss.URL, "--username", "alice"}, extra...)...)
}

// token reads the token and expiry of a credential's output.
func credentialToken(t *testing.T, r pluginResult) (string, time.Time) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("credential: exit %d\n%s", r.code, r.stderr)
	}
	var cred clientauthv1.ExecCredential
	if err := json.Unmarshal([]byte(r.stdout), &cred); err != nil || cred.Status == nil || cred.Status.ExpirationTimestamp == nil {
		t.Fatalf("credential printed %q: %v", r.stdout, err)
	}
	return cred.Status.Token, cred.Status.ExpirationTimestamp.Time
}

func TestCredential(t *testing.T) {
	iss := newTestIssuer(t)
	p := &pluginRun{home: t.TempDir(), clock: iss.clock}
	p.login(t, iss)
	first := p.session(t, iss)
	loggedIn := iss.clock.Now()

	// Fresh: the cached token, no request to the issuer.
	tok, exp := credentialToken(t, p.credential(t, iss))
	if tok != first.IDToken || !exp.Equal(loggedIn.Add(testIDTokenTTL)) || iss.refreshes.Load() != 0 {
		t.Fatalf("fresh session: token cached %v, exp %s, %d refreshes; want the cached token, exp %s, none",
			tok == first.IDToken, exp, iss.refreshes.Load(), loggedIn.Add(testIDTokenTTL))
	}
	// Within the refresh margin (a quarter of 10 minutes, capped at 1m):
	// a new token, the rotated refresh token saved 0600.
	iss.clock.Advance(testIDTokenTTL - time.Minute)
	tok, exp = credentialToken(t, p.credential(t, iss))
	second := p.session(t, iss)
	if tok == first.IDToken || tok != second.IDToken || second.RefreshToken == first.RefreshToken || iss.refreshes.Load() != 1 {
		t.Fatalf("near expiry: new token %v, saved %v, refresh token rotated %v, %d refreshes; want all, one refresh",
			tok != first.IDToken, tok == second.IDToken, second.RefreshToken != first.RefreshToken, iss.refreshes.Load())
	}
	if !exp.Equal(iss.clock.Now().Add(testIDTokenTTL)) {
		t.Errorf("refreshed token expires %s, want %s", exp, iss.clock.Now().Add(testIDTokenTTL))
	}
	files, _ := filepath.Glob(filepath.Join(p.home, ".kube", "cache", "ideapool", "*.json"))
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("session file after a refresh: %v, %v; want 0600", st, err)
	}
	// Expired: refreshed again, with the rotated token (the first one is
	// spent: the issuer would end the session on its reuse).
	iss.clock.Advance(testIDTokenTTL + time.Second)
	tok, _ = credentialToken(t, p.credential(t, iss))
	if tok == second.IDToken || iss.refreshes.Load() != 2 {
		t.Fatalf("expired: new token %v, %d refreshes; want a new token, two refreshes", tok != second.IDToken, iss.refreshes.Load())
	}
	// A --certificate-authority that does not sign the issuer's certificate
	// is named in the error (the cached token is still fresh: force a
	// refresh by time).
	other := newTestIssuer(t)
	iss.clock.Advance(testIDTokenTTL + time.Second)
	r := p.credential(t, iss, "--certificate-authority", other.CAFile)
	if r.code != 1 || !strings.Contains(r.stderr, "is not signed by the CA in --certificate-authority "+other.CAFile) {
		t.Fatalf("wrong CA: exit %d, %q", r.code, r.stderr)
	}
}

func TestCredentialWhenTheIssuerIsDown(t *testing.T) {
	iss := newTestIssuer(t)
	p := &pluginRun{home: t.TempDir(), clock: iss.clock}
	p.login(t, iss)
	cached := p.session(t, iss)
	iss.srv.Close()

	// 30 s left: not fresh, but valid: used, with a warning.
	iss.clock.Advance(testIDTokenTTL - 30*time.Second)
	r := p.credential(t, iss)
	if tok, _ := credentialToken(t, r); tok != cached.IDToken || !strings.Contains(r.stderr, "warning: could not refresh the session") {
		t.Fatalf("issuer down, token valid: cached %v, stderr %q", tok == cached.IDToken, r.stderr)
	}
	// Expired: an error naming the issuer, exit 1, and the session kept
	// for when the issuer is back.
	iss.clock.Advance(time.Minute)
	r = p.credential(t, iss)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the issuer "+iss.URL) || r.stdout != "" {
		t.Fatalf("issuer down, token expired: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if p.session(t, iss).RefreshToken != cached.RefreshToken {
		t.Error("a failed refresh changed the session")
	}
}

func TestCredentialSessionEnded(t *testing.T) {
	iss := newTestIssuer(t)
	p := &pluginRun{home: t.TempDir(), clock: iss.clock}
	wantLogin := fmt.Sprintf("To sign in, run:\n  kubectl ideapool login --issuer %s --username alice", iss.URL)

	// Never signed in.
	r := p.credential(t, iss)
	if r.code != exitSessionEnded || r.stdout != "" ||
		r.stderr != fmt.Sprintf("kubectl ideapool: not signed in to %s as alice on this machine.\n%s\n", iss.URL, wantLogin) {
		t.Fatalf("not signed in: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	p.login(t, iss)
	// Disabled with `ideapool users disable`: the ID token in hand works
	// until it expires, then the refresh is refused.
	if code, out, errOut := runCLI(t, "", "users", "disable", "--database", iss.DB, "alice"); code != 0 {
		t.Fatalf("users disable: %d %s %s", code, out, errOut)
	}
	credentialToken(t, p.credential(t, iss))
	iss.clock.Advance(testIDTokenTTL)
	r = p.credential(t, iss)
	want := fmt.Sprintf("kubectl ideapool: the session of alice at %s has ended: %v.\n%s --certificate-authority %s\n",
		iss.URL, errRefreshRefused, wantLogin, iss.CAFile)
	if r.code != exitSessionEnded || r.stdout != "" || r.stderr != want {
		t.Fatalf("disabled user: exit %d, stdout %q\nstderr %q\nwant   %q", r.code, r.stdout, r.stderr, want)
	}
	// The ended session holds no token any more, and later runs say the
	// same without asking the issuer again.
	sess := p.session(t, iss)
	if sess.RefreshToken != "" || sess.IDToken != "" || sess.Ended == "" {
		t.Errorf("ended session %+v: want no tokens and why it ended", sess)
	}
	before := iss.refreshes.Load()
	if r := p.credential(t, iss); r.code != exitSessionEnded || r.stderr != want || iss.refreshes.Load() != before {
		t.Errorf("second run: exit %d, %d more refreshes, stderr %q", r.code, iss.refreshes.Load()-before, r.stderr)
	}
	// Signing in again (enabled again) starts a new session.
	if code, _, _ := runCLI(t, "", "users", "enable", "--database", iss.DB, "alice"); code != 0 {
		t.Fatal("users enable failed")
	}
	p.login(t, iss)
	credentialToken(t, p.credential(t, iss))
}

// Two kubectl processes that find the token expired at once refresh it
// once: the second waits for the lock and reads what the first saved.
// Without the lock each would spend the same refresh token.
func TestConcurrentCredentialsRefreshOnce(t *testing.T) {
	iss := newTestIssuer(t)
	p := &pluginRun{home: t.TempDir(), clock: iss.clock}
	p.login(t, iss)
	iss.clock.Advance(testIDTokenTTL + time.Second)
	const n = 4
	results := make([]pluginResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := &pluginRun{home: p.home, clock: iss.clock}
			results[i] = q.credential(t, iss)
		}()
	}
	wg.Wait()
	tokens := map[string]bool{}
	for _, r := range results {
		tok, _ := credentialToken(t, r)
		tokens[tok] = true
	}
	if got := iss.refreshes.Load(); got != 1 || len(tokens) != 1 {
		t.Fatalf("%d concurrent credentials: %d refreshes, %d distinct tokens; want 1 and 1", n, got, len(tokens))
	}
	// The session lives on.
	iss.clock.Advance(testIDTokenTTL + time.Second)
	credentialToken(t, p.credential(t, iss))
}

func TestCredentialLockTimeout(t *testing.T) {
	iss := newTestIssuer(t)
	p := &pluginRun{home: t.TempDir(), clock: iss.clock}
	p.login(t, iss)
	iss.clock.Advance(testIDTokenTTL)
	s := sessionStore{dir: filepath.Join(p.home, ".kube", "cache", "ideapool")}
	unlock, err := s.lock(context.Background(), newSessionRef(iss.URL, "alice"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	var out, errOut bytes.Buffer
	e := pluginEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" },
		home: func() (string, error) { return p.home, nil }, now: iss.clock.Now,
		readPassword: func(string) (string, bool, error) { return "", false, nil }, lockWait: 50 * time.Millisecond}
	code := e.run(context.Background(), []string{"credential", "--issuer", iss.URL, "--username", "alice"})
	if code != 1 || !strings.Contains(errOut.String(), "for another kubectl ideapool process using the session") || iss.refreshes.Load() != 0 {
		t.Fatalf("lock held elsewhere: exit %d, %d refreshes, stderr %q", code, iss.refreshes.Load(), errOut.String())
	}
}
