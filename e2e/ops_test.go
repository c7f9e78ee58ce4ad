package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// promtool finds promtool: $IDEAPOOL_PROMTOOL, else on PATH.
func promtool() (string, error) {
	if p := os.Getenv("IDEAPOOL_PROMTOOL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("IDEAPOOL_PROMTOOL=%s: %w", p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		return "", errors.New("promtool not found: set IDEAPOOL_PROMTOOL or put promtool on PATH (Debian's prometheus package has it)")
	}
	return p, nil
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+\S+`)

type sample struct{ name, labels, line string }

func parseSamples(text string) []sample {
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if m := sampleRE.FindStringSubmatch(line); m != nil {
			out = append(out, sample{m[1], m[2], line})
		}
	}
	return out
}

func testMetrics(t *testing.T, s *server) {
	// Traffic of every kind the metrics must show.
	u := s.signup(t, "metrics")
	expect(t, s.login(t, u.Email, u.Password), http.StatusCreated)
	expect(t, s.login(t, u.Email, "Wrong-Pass-1"), http.StatusUnauthorized)
	expect(t, s.login(t, uniqueEmail("metrics-nobody"), "Wrong-Pass-1"), http.StatusUnauthorized)
	expect(t, s.refresh(t, u.Refresh), http.StatusOK)
	i := s.createIdea(t, u.JWT, "metrics", 1, 2, 3)
	expect(t, s.do(t, "PUT", "/ideas/"+i.ID, ideaBody("metrics 2", 3, 2, 1), withToken(u.JWT)), http.StatusOK)
	expect(t, s.do(t, "PUT", "/ideas/nosuchid42", ideaBody("x", 3, 2, 1), withToken(u.JWT)), http.StatusNotFound)
	expect(t, s.do(t, "DELETE", "/ideas/"+i.ID, nil, withToken(u.JWT)), http.StatusNoContent)
	expect(t, s.do(t, "GET", "/ideas?page=1", nil, withToken(u.JWT)), http.StatusOK)
	h, _, _ := tokenParts(t, u.JWT)
	kid, _ := h["kid"].(string)

	// Not on the API port.
	if r := s.do(t, "GET", "/metrics", nil); r.Status == http.StatusOK {
		t.Errorf("%s: /metrics must be kept off the API port", r.What)
	}

	r := s.doURL(t, "GET", s.MetricsBase+"/metrics", nil, false)
	must(t, r, http.StatusOK)
	text := string(r.Body)
	samples := parseSamples(text)

	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if !hasSample(samples, func(x sample) bool { return x.name == n || x.name == "ideapool_"+n }) {
			t.Errorf("/metrics: no %s (Go and process collectors)", n)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			if !strings.HasPrefix(name, "ideapool_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
				t.Errorf("/metrics: metric %s is not prefixed ideapool_", name)
			}
		}
	}
	routeOK := func(labels string) bool {
		return strings.Contains(labels, `"/ideas/:id"`) || strings.Contains(labels, `"/ideas/{id}"`)
	}
	methodStatus := func(labels string) bool {
		return strings.Contains(labels, `method="PUT"`) && (strings.Contains(labels, `status="200"`) || strings.Contains(labels, `code="200"`))
	}
	if !hasSample(samples, func(x sample) bool {
		return strings.HasPrefix(x.name, "ideapool_") && strings.Contains(x.name, "request") && strings.HasSuffix(x.name, "_total") && routeOK(x.labels) && methodStatus(x.labels)
	}) {
		t.Errorf("/metrics: no ideapool_*request*_total counter with the route pattern /ideas/:id, method and status labels for PUT /ideas/%s", i.ID)
	}
	if !hasSample(samples, func(x sample) bool {
		return strings.HasPrefix(x.name, "ideapool_") && strings.Contains(x.name, "duration") && strings.HasSuffix(x.name, "_bucket") && routeOK(x.labels) && strings.Contains(x.labels, `method="PUT"`)
	}) {
		t.Errorf("/metrics: no ideapool_*duration* histogram by route pattern (/ideas/:id) and method")
	}
	if strings.Contains(text, i.ID) || strings.Contains(text, "nosuchid42") {
		t.Errorf("/metrics holds a raw idea id: label values must be route patterns")
	}
	if !hasSample(samples, func(x sample) bool {
		return strings.HasPrefix(x.name, "ideapool_") && strings.Contains(x.name, "token") && strings.Contains(x.labels, "kind=")
	}) {
		t.Errorf("/metrics: no ideapool_ tokens-issued metric by kind")
	}
	if !hasSample(samples, func(x sample) bool {
		return strings.HasPrefix(x.name, "ideapool_") && strings.Contains(x.name, "login") && strings.Contains(x.labels, "reason=")
	}) {
		t.Errorf("/metrics: no ideapool_ failed-logins metric by reason")
	}
	if kid == "" || !hasSample(samples, func(x sample) bool {
		return strings.HasPrefix(x.name, "ideapool_") && strings.Contains(x.name, "key") && strings.Contains(x.labels, `"`+kid+`"`)
	}) {
		t.Errorf("/metrics: no ideapool_ metric naming the active key id %q", kid)
	}
	// Access tokens checked by result, JWKS answers by code, tokens by the
	// key that signed them (issue 11).
	for _, want := range []struct{ name, labels string }{
		{"ideapool_token_verifications_total", `result="ok"`},
		{"ideapool_token_verifications_total", `result="malformed"`},
		{"ideapool_jwks_requests_total", `code="200"`},
		{"ideapool_jwks_requests_total", `code="304"`},
		{"ideapool_tokens_signed_total", `kid="` + kid + `"`},
	} {
		if !hasSample(samples, func(x sample) bool { return x.name == want.name && strings.Contains(x.labels, want.labels) }) {
			t.Errorf("/metrics: no %s{%s}", want.name, want.labels)
		}
	}
	for _, sec := range []string{u.Password, u.Refresh, u.JWT} {
		if strings.Contains(text, sec) {
			t.Errorf("/metrics leaks a user secret or address (%.10s...)", sec)
		}
	}

	pt, err := promtool()
	if err != nil {
		t.Fatalf("promtool check metrics cannot run: %v", err)
	}
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = bytes.NewReader(r.Body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics fails (%v):\n%s", err, out)
	}
}

func hasSample(samples []sample, f func(sample) bool) bool {
	for _, s := range samples {
		if f(s) {
			return true
		}
	}
	return false
}

// TestRestart: a restart on the same files keeps users, ideas, sessions and
// keys; the key file is created with mode 0600.
func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port, mport := freePort(t), freePort(t)
	s1 := startServerOpts(t, serverOptions{dir: dir, port: port, mport: mport})
	fi, err := os.Stat(s1.KeysPath)
	if err != nil {
		t.Fatalf("--keys file:%s: the key file was not created: %v", s1.KeysPath, err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file %s has mode %o, want 0600", s1.KeysPath, mode)
	}
	u := s1.signup(t, "restart")
	i := s1.createIdea(t, u.JWT, "survives", 4, 5, 6)
	claims := s1.verify(t, u.JWT)
	s1.stop(t)

	s2 := startServerOpts(t, serverOptions{dir: dir, port: port, mport: mport})
	for _, sec := range s1.secrets {
		s2.remember(sec)
	}
	// The old token still verifies, for the server and through the new JWKS.
	expect(t, s2.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	if c := s2.verify(t, u.JWT); c != nil && claims != nil && c["sub"] != claims["sub"] {
		t.Errorf("sub changed across restart")
	}
	if list := s2.listIdeas(t, u.JWT, ""); len(list) != 1 || list[0].ID != i.ID || list[0].Content != "survives" || list[0].CreatedAt != i.CreatedAt {
		t.Errorf("after restart, GET /ideas = %s, want %s", ids(list), i.ID)
	}
	expect(t, s2.refresh(t, u.Refresh), http.StatusOK)
	r := s2.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	s2.tokenPair(t, r)
	expect(t, s2.do(t, "POST", "/users", map[string]any{"email": strings.ToUpper(u.Email), "name": "x", "password": goodPassword}), http.StatusConflict)
	if fi, err := os.Stat(s2.KeysPath); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("after restart the key file has mode %o, want 0600", fi.Mode().Perm())
	}
}

// TestEnvConfig: a server configured only by IDEAPOOL_* variables.
func TestEnvConfig(t *testing.T) {
	t.Parallel()
	s := startServerOpts(t, serverOptions{envOnly: true, env: []string{
		"IDEAPOOL_ACCESS_TOKEN_TTL=3m",
		"IDEAPOOL_KEY_ALGORITHM=ES256",
	}})
	s.Alg, s.TTL = "ES256", 3*time.Minute
	testDiscovery(t, s)
	u := s.signup(t, "env")
	checkJWKS(t, s, u.JWT)
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	r := s.doURL(t, "GET", s.MetricsBase+"/metrics", nil, false)
	expect(t, r, http.StatusOK)
	if _, err := os.Stat(s.KeysPath); err != nil {
		t.Errorf("IDEAPOOL_KEYS: no key file at %s: %v", s.KeysPath, err)
	}
	if _, err := os.Stat(s.Dir + "/db"); err != nil {
		t.Errorf("IDEAPOOL_DATABASE: no database at %s/db: %v", s.Dir, err)
	}
}

// TestCLI: help names every flag and its variable; version prints one.
func TestCLI(t *testing.T) {
	t.Parallel()
	flags := []string{"listen", "metrics-listen", "database", "keys", "issuer", "access-token-ttl", "refresh-token-ttl", "key-algorithm", "key-rotation-interval"}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}} {
		cmd := exec.Command(binary, args...)
		cmd.Env = cleanEnv()
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("ideapool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, f := range flags {
			if !regexp.MustCompile(`(^|[^-\w])--?` + regexp.QuoteMeta(f) + `\b([^-]|$)`).Match(out) {
				t.Errorf("ideapool %s does not mention the flag --%s", strings.Join(args, " "), f)
			}
			env := "IDEAPOOL_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
			if !regexp.MustCompile(`\b` + env + `\b`).Match(out) {
				t.Errorf("ideapool %s does not mention the variable %s", strings.Join(args, " "), env)
			}
		}
	}
	cmd := exec.Command(binary, "version")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Errorf("ideapool version: %v, output %q; want a version", err, out)
	}
	// An unknown flag is refused (non-zero) without starting anything.
	cmd = exec.Command(binary, "serve", "--no-such-flag")
	cmd.Env = cleanEnv()
	cmd.Dir = t.TempDir()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("ideapool serve --no-such-flag exited 0")
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("ideapool serve --no-such-flag did not exit (killed: %v)", <-done)
	}
}

// TestPprof: profiles are served only when asked for, and only on the
// metrics listener.
func TestPprof(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args        []string
		wantMetrics int // GET /debug/pprof/ on the metrics listener
	}{
		"off by default": {wantMetrics: http.StatusNotFound},
		"--pprof":        {args: []string{"--pprof"}, wantMetrics: http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tc.args...)
			expect(t, s.doURL(t, "GET", s.MetricsBase+"/debug/pprof/", nil, false), tc.wantMetrics)
			// Never on the API port, whatever the flag.
			expect(t, s.do(t, "GET", "/debug/pprof/", nil), http.StatusNotFound)
			if tc.wantMetrics == http.StatusOK {
				r := s.doURL(t, "GET", s.MetricsBase+"/debug/pprof/profile?seconds=1", nil, false)
				expect(t, r, http.StatusOK)
				if len(r.Body) == 0 {
					t.Error("an empty CPU profile")
				}
			}
		})
	}
}
