// Package e2e_test is an independent black-box contract test of
// "ideapool serve", written only from the API document (seed 003) and the
// issue that specifies the service. It builds the binary once, starts it as
// a subprocess and talks to it over HTTP; tokens are verified with an
// independent JWT library (golang-jwt) and JWKS client (keyfunc) through the
// discovery document, as another service would.
package e2e_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	// binary is the ideapool executable built by TestMain.
	binary string
	// serverErrors counts 5xx answers seen anywhere in the run: no client
	// mistake may ever produce one.
	serverErrors atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Most of the suite waits on the server (slow password hashing, token
	// expiry); run more tests at once than there are CPUs unless told.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "32")
	}
	tmp, err := os.MkdirTemp("", "ideapool-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: finding the module root:", err)
		return 1
	}
	binary = filepath.Join(tmp, "ideapool")
	build := exec.Command("go", "build", "-o", binary, "github.com/ideapool/ideapool")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build failed: %v\n%s", err, out)
		return 1
	}

	code := m.Run()
	if n := serverErrors.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: the service answered %d request(s) with a 5xx status (see the test logs)\n", n)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// moduleRoot is the directory of the go.mod this package belongs to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		abs, err := filepath.Abs("..")
		return abs, err
	}
	return filepath.Dir(gomod), nil
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort picks a free loopback port, checked by listening on it and
// closing. It is drawn below the kernel's ephemeral range (32768+), so that
// neither the suite's own client connections nor another :0 listener can
// take it between this check and the server's bind (a restart reuses its
// ports); :0 is the fallback.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for try := 0; try < 200; try++ {
		p := 20000 + rand.IntN(12000)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	portsUsed[p] = true
	return p
}

// syncBuffer is a bytes.Buffer safe for the process writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is one running "ideapool serve".
type server struct {
	Base        string // http://127.0.0.1:PORT
	MetricsBase string // http://127.0.0.1:PORT2
	Issuer      string
	Dir         string // holds db and keyset.json
	KeysPath    string
	Args        []string
	Env         []string
	Alg         string        // expected signing algorithm; "" means RS256
	TTL         time.Duration // expected access token TTL; 0 means 10m

	// client speaks to the API when it serves TLS; nil means httpClient.
	client *http.Client

	cmd    *exec.Cmd
	stderr *syncBuffer
	stdout *syncBuffer
	done   chan struct{}
	err    error // of Wait, valid after done is closed

	stopped atomic.Bool

	jwksOnce    sync.Once
	verifier    *verifier
	jwksErr     error
	jwksCtxOnce sync.Once
	jwksCtx     context.Context
	jwksCancel  context.CancelFunc

	secretsMu sync.Mutex
	secrets   []string // passwords and tokens that must never be logged
}

type serverOptions struct {
	dir     string   // reuse this data directory (restart); default a new temp dir
	port    int      // API port; default a free one
	mport   int      // metrics port; default a free one
	args    []string // extra flags
	envOnly bool     // configure listen/metrics/database/keys/issuer by IDEAPOOL_* only
	env     []string // extra environment
	// https: the API serves TLS (args carry --tls-cert-file and
	// --tls-key-file) and is spoken to with this client.
	https *http.Client
}

// startServer starts "ideapool serve" with the standard flags plus extra.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServerOpts(t, serverOptions{args: extra})
}

func startServerOpts(t *testing.T, o serverOptions) *server {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	port, mport := o.port, o.mport
	if port == 0 {
		port = freePort(t)
	}
	if mport == 0 {
		mport = freePort(t)
	}
	scheme, client := "http", &http.Client{Timeout: 2 * time.Second}
	if o.https != nil {
		scheme, client = "https", o.https
	}
	s := &server{
		Base:        fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
		MetricsBase: fmt.Sprintf("http://127.0.0.1:%d", mport),
		Dir:         dir,
		KeysPath:    filepath.Join(dir, "keyset.json"),
		stderr:      &syncBuffer{},
		stdout:      &syncBuffer{},
		done:        make(chan struct{}),
		client:      o.https,
	}
	s.Issuer = s.Base
	std := map[string]string{
		"listen":         fmt.Sprintf("127.0.0.1:%d", port),
		"metrics-listen": fmt.Sprintf("127.0.0.1:%d", mport),
		"database":       "sqlite:" + filepath.Join(dir, "db"),
		"keys":           "file:" + s.KeysPath,
		"issuer":         s.Issuer,
	}
	order := []string{"listen", "metrics-listen", "database", "keys", "issuer"}

	env := cleanEnv()
	args := []string{"serve"}
	if o.envOnly {
		for _, k := range order {
			env = append(env, "IDEAPOOL_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+std[k])
		}
	} else {
		for _, k := range order {
			args = append(args, "--"+k, std[k])
		}
	}
	args = append(args, o.args...)
	env = append(env, o.env...)
	s.Args, s.Env = args, o.env

	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stderr = s.stderr
	cmd.Stdout = s.stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %v: %v", binary, args, err)
	}
	s.cmd = cmd
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("ideapool %v exited before it was ready: %v\nstderr:\n%s\nstdout:\n%s", args, s.err, s.stderr, s.stdout)
		default:
		}
		resp, err := client.Get(s.Base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ideapool %v: /readyz did not answer 200 within 20 s (last: %v)\nstderr:\n%s", args, describe(resp, err), s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// cleanEnv is the test's environment without any IDEAPOOL_* variable.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDEAPOOL_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and checks the server exits 0 within 10 s (graceful
// shutdown is part of the contract), and that its logs hold no secret.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	if s.jwksCancel != nil {
		s.jwksCancel()
	}
	select {
	case <-s.done:
		t.Errorf("ideapool %v had already exited: %v\nstderr:\n%s", s.Args, s.err, s.stderr)
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("ideapool %v: after SIGTERM it exited with %v, want exit status 0\nstderr:\n%s", s.Args, s.err, s.stderr)
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("ideapool %v did not exit within 10 s of SIGTERM\nstderr:\n%s", s.Args, s.stderr)
	}
	s.checkLogs(t)
}

// remember registers a secret (password, refresh token, JWT) that must never
// show up in the server's logs.
func (s *server) remember(secret string) {
	if len(secret) < 8 {
		return
	}
	s.secretsMu.Lock()
	s.secrets = append(s.secrets, secret)
	s.secretsMu.Unlock()
}

// checkLogs: structured JSON logs, never a secret.
func (s *server) checkLogs(t *testing.T) {
	t.Helper()
	logs := s.stderr.String() + s.stdout.String()
	s.secretsMu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.secretsMu.Unlock()
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("the server's logs contain a secret (%.12s...): logs must never hold passwords or tokens", sec)
		}
	}
	if !regexp.MustCompile(`(?i)"request[_.-]?id"\s*:`).MatchString(s.stderr.String()) && strings.Contains(s.stderr.String(), "/") {
		t.Errorf("no log line carries a request id (structured JSON logs with a request id)")
	}
	bad := 0
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !jsonObject([]byte(line)) {
			bad++
			if bad <= 3 {
				t.Errorf("the server's log line is not a JSON object (structured JSON logs): %q", line)
			}
		}
	}
}

// jwksContext is cancelled when the server stops.
func (s *server) jwksContext() context.Context {
	s.jwksCtxOnce.Do(func() {
		s.jwksCtx, s.jwksCancel = context.WithCancel(context.Background())
	})
	return s.jwksCtx
}
