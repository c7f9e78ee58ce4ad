package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// The sign-in commands against a real ideapool API (SQLite, an ES256 key)
// served over TLS with a certificate of its own, on a fake clock shared by
// the issuer and the plugin.

const testPassword = "the-Secret-123"

type fakeClock = clocktest.Clock

// testIssuer is a running ideapool API over TLS.
type testIssuer struct {
	URL       string // https://127.0.0.1:PORT, also the tokens' iss
	CAFile    string // PEM of the certificate it serves
	DB        string // --database of the users command
	clock     *fakeClock
	refreshes atomic.Int64 // POST /v1/auth/refreshtoken seen
	srv       *httptest.Server
}

const testIDTokenTTL = 10 * time.Minute

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clk := clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	iss := &testIssuer{DB: "sqlite:" + filepath.Join(dir, "ideapool.db"), clock: clk}
	iss.srv = httptest.NewUnstartedServer(nil)
	iss.URL = "https://" + iss.srv.Listener.Addr().String()

	db, err := store.Open(ctx, iss.DB, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	tokens, err := token.NewManager(token.Config{Issuer: iss.URL, Now: clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	p := keyset.Policy{Algorithm: keyset.ES256, MaxTokenTTL: time.Hour}.WithDefaults()
	ks, _, err := keyset.Advance(keyset.Keyset{}, p, clk.Now().Add(-24*time.Hour), keyset.NewGenerator(rand.Reader))
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.SetKeyset(ks); err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewHasher(password.OWASP, rand.Reader, 0)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := accounts.New(accounts.Config{Store: db, Signer: tokens, Hasher: hasher,
		Lifetimes: accounts.Lifetimes{Access: 10 * time.Minute, Refresh: 720 * time.Hour, ID: testIDTokenTTL, ReuseGrace: 5 * time.Second},
		Now:       clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.Register(ctx, accounts.SignupRequest{Email: "alice@example.com", Name: "Alice", Password: testPassword, Username: "alice"}, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	api, err := server.New(server.Config{Accounts: acct, Ideas: ideas.New(db, clk.Now, rand.Reader),
		Tokens: tokens, Database: db, Registry: prometheus.NewRegistry(), Now: clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	iss.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/auth/refreshtoken" {
			iss.refreshes.Add(1)
		}
		api.ServeHTTP(w, r)
	})
	caPEM, cert := newTestCA(t)
	iss.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	iss.srv.StartTLS()
	t.Cleanup(iss.srv.Close)
	iss.CAFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(iss.CAFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return iss
}

// newTestCA makes a CA of its own and a certificate it signs for
// 127.0.0.1, as a platform team's private CA would.
func newTestCA(t *testing.T) (caPEM []byte, serving tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ideapool test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pluginRun is one run of the plugin in a test's environment.
type pluginRun struct {
	home     string
	clock    *fakeClock
	env      map[string]string
	stdin    string
	terminal string // a password typed at a terminal; "" means stdin is not one
	prompts  []string
}

type pluginResult struct {
	code           int
	stdout, stderr string
}

func (p *pluginRun) run(t *testing.T, args ...string) pluginResult {
	t.Helper()
	var out, errOut bytes.Buffer
	e := pluginEnv{
		stdin: strings.NewReader(p.stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return p.env[k] },
		home:   func() (string, error) { return p.home, nil },
		now:    p.clock.Now,
		readPassword: func(prompt string) (string, bool, error) {
			p.prompts = append(p.prompts, prompt)
			return p.terminal, p.terminal != "", nil
		},
		lockWait: 10 * time.Second,
	}
	code := e.run(context.Background(), args)
	return pluginResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// login signs alice in and fails the test if that does not work.
func (p *pluginRun) login(t *testing.T, iss *testIssuer) {
	t.Helper()
	p.stdin = testPassword + "\n"
	if r := p.run(t, "login", "--issuer", iss.URL, "--username", "alice", "--certificate-authority", iss.CAFile); r.code != 0 {
		t.Fatalf("login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func (p *pluginRun) session(t *testing.T, iss *testIssuer) session {
	t.Helper()
	s := sessionStore{dir: filepath.Join(p.home, ".kube", "cache", "ideapool")}
	sess, err := s.load(newSessionRef(iss.URL, "alice"))
	if err != nil {
		t.Fatalf("load session: %v", err)
	}
	return sess
}

func TestLogin(t *testing.T) {
	iss := newTestIssuer(t)
	other := newTestIssuer(t) // its certificate is a CA that did not sign iss's
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	tests := map[string]struct {
		stdin    string
		terminal string
		args     []string
		code     int
		want     string // in stdout (code 0) or stderr
	}{
		"password on standard input": {stdin: testPassword + "\n",
			args: []string{"--issuer", iss.URL, "--username", "alice", "--certificate-authority", iss.CAFile}, want: "Signed in to " + iss.URL + " as alice"},
		"password at the terminal, standard input unread": {terminal: testPassword, stdin: "not-the-password\n",
			args: []string{"--issuer", iss.URL + "/", "--username", "Alice", "--certificate-authority", iss.CAFile}, want: "Signed in"},
		"email instead of username": {stdin: testPassword + "\n",
			args: []string{"--issuer", iss.URL, "--username", "alice@example.com", "--certificate-authority", iss.CAFile}, want: "Signed in"},
		"wrong password": {stdin: "the-Wrong-123\n", code: 1,
			args: []string{"--issuer", iss.URL, "--username", "alice", "--certificate-authority", iss.CAFile}, want: `wrong username or password for "alice"`},
		"no password": {code: 1,
			args: []string{"--issuer", iss.URL, "--username", "alice", "--certificate-authority", iss.CAFile}, want: "no password"},
		"private CA not given": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", iss.URL, "--username", "alice"}, want: "pass --certificate-authority FILE"},
		"another CA given": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", iss.URL, "--username", "alice", "--certificate-authority", other.CAFile}, want: "is not signed by the CA in --certificate-authority " + other.CAFile},
		"CA file that is not PEM": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", iss.URL, "--username", "alice", "--certificate-authority", "plugin.go"}, want: "--certificate-authority plugin.go holds no PEM certificate"},
		"CA file missing": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", iss.URL, "--username", "alice", "--certificate-authority", "/nonexistent/ca.crt"}, want: "--certificate-authority: open /nonexistent/ca.crt"},
		"unreachable issuer": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", "https://127.0.0.1:1", "--username", "alice"}, want: "cannot reach the issuer https://127.0.0.1:1"},
		"plain http behind an https URL": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", strings.Replace(plain.URL, "http:", "https:", 1), "--username", "alice"}, want: "does not answer TLS"},
		"not an ideapool issuer": {stdin: testPassword + "\n", code: 1,
			args: []string{"--issuer", plain.URL, "--username", "alice"}, want: "has no /v1/auth (404)"},
		"http issuer off loopback": {stdin: testPassword + "\n", code: 2,
			args: []string{"--issuer", "http://idp.example.com", "--username", "alice"}, want: "the issuer must be https"},
		"issuer with a query": {stdin: testPassword + "\n", code: 2,
			args: []string{"--issuer", iss.URL + "?x=1", "--username", "alice"}, want: "is not an issuer URL"},
		"no username": {code: 2, args: []string{"--issuer", iss.URL}, want: "login needs --issuer and --username"},
		"a flag of another command": {code: 2,
			args: []string{"--issuer", iss.URL, "--username", "alice", "-n", "x"}, want: "login does not take -n"},
		"an argument": {code: 2, args: []string{"extra", "--issuer", iss.URL, "--username", "alice"}, want: "login takes 0 argument(s), got 1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := &pluginRun{home: t.TempDir(), clock: iss.clock, stdin: tc.stdin, terminal: tc.terminal}
			r := p.run(t, append([]string{"login"}, tc.args...)...)
			text := r.stdout
			if tc.code != 0 {
				text = r.stderr
			}
			if r.code != tc.code || !strings.Contains(text, tc.want) {
				t.Fatalf("exit %d (want %d)\nstdout %q\nstderr %q\nwant %q", r.code, tc.code, r.stdout, r.stderr, tc.want)
			}
			if tc.terminal != "" && (len(p.prompts) != 1 || !strings.Contains(p.prompts[0], "Password for Alice at "+iss.URL)) {
				t.Errorf("prompts %q, want one naming the user and the issuer", p.prompts)
			}
			files, _ := filepath.Glob(filepath.Join(p.home, ".kube", "cache", "ideapool", "*.json"))
			if (tc.code == 0) != (len(files) == 1) {
				t.Errorf("session files %v after exit %d: want one after a sign-in, none after a failure", files, r.code)
			}
		})
	}
}

func TestLoginKeepsTheSessionPrivate(t *testing.T) {
	iss := newTestIssuer(t)
	home := t.TempDir()
	// kubectl's cache directory exists already, with its usual mode, and so
	// does ours, too open.
	if err := os.MkdirAll(filepath.Join(home, ".kube", "cache", "ideapool"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &pluginRun{home: home, clock: iss.clock}
	p.login(t, iss)
	dir := filepath.Join(home, ".kube", "cache", "ideapool")
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("session directory: %v, %v; want mode 0700", st, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("session files %v, want one", files)
	}
	st, err = os.Stat(files[0])
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v, %v; want mode 0600", st, err)
	}
	sess := p.session(t, iss)
	if sess.IDToken == "" || sess.RefreshToken == "" || sess.CertificateAuthorityFile != iss.CAFile || !strings.Contains(sess.CertificateAuthority, "BEGIN CERTIFICATE") {
		t.Errorf("session %+v: want both tokens and the CA (file and PEM)", sess)
	}
	// Signing in again replaces the session whole: one file, new tokens.
	p.login(t, iss)
	again := p.session(t, iss)
	files, _ = filepath.Glob(filepath.Join(dir, "*"))
	if again.RefreshToken == sess.RefreshToken || len(files) != 2 { // the session and its lock file
		t.Errorf("after a second login: same refresh token %v, files %v (want a new session in the same file)", again.RefreshToken == sess.RefreshToken, files)
	}
}

func TestSessionFileNames(t *testing.T) {
	base := newSessionRef("https://idp.example.com", "alice").fileName()
	tests := map[string]struct {
		issuer, username string
		same             bool // names the same file as https://idp.example.com and alice
	}{
		"trailing slash":           {"https://idp.example.com/", "alice", true},
		"username case and spaces": {"https://idp.example.com", " Alice ", true},
		"another user":             {"https://idp.example.com", "bob", false},
		"another issuer":           {"https://idp2.example.com", "alice", false},
		"no ambiguity in the join": {"https://idp.example.com\x00alice", "", false},
		"path characters":          {"https://idp.example.com", "../../etc/passwd", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := newSessionRef(tc.issuer, tc.username).fileName()
			if (got == base) != tc.same {
				t.Errorf("file %s (base %s): same = %v, want %v", got, base, got == base, tc.same)
			}
			if len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" {
				t.Errorf("file name %q is not 64 hex digits", got)
			}
		})
	}
}
