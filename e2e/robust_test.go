package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kill ends the server with SIGKILL (a crash) and waits for it.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	if s.jwksCancel != nil {
		s.jwksCancel()
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// TestGracefulShutdown: SIGTERM lets requests in flight finish, then the
// process exits 0. In flight: requests whose body is still arriving when the
// signal comes, and a burst of signups queued behind password hashing.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	type result struct {
		what   string
		status int
		err    error
	}
	const slow, burst = 3, 16
	results := make(chan result, slow+burst)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	send := func(what string, req *http.Request) {
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			results <- result{what: what, err: err}
			return
		}
		resp.Body.Close()
		results <- result{what: what, status: resp.StatusCode}
	}
	signupBody := func(tag string) []byte {
		b, _ := json.Marshal(map[string]any{"email": uniqueEmail(tag), "name": "In Flight", "password": goodPassword})
		return b
	}
	// Slow bodies: headers and half the body now, the rest after SIGTERM.
	var rest []func()
	for i := 0; i < slow; i++ {
		body := signupBody("slowbody")
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", s.Base+"/users", pr)
		req.ContentLength = int64(len(body))
		go send("slow body", req)
		half := len(body) / 2
		go func() { _, _ = pw.Write(body[:half]) }()
		rest = append(rest, func() {
			_, _ = pw.Write(body[half:])
			_ = pw.Close()
		})
	}
	// A burst of signups, queued behind the slow password hashing.
	for i := 0; i < burst; i++ {
		req, _ := http.NewRequest("POST", s.Base+"/users", strings.NewReader(string(signupBody("burst"))))
		go send("burst signup", req)
	}
	time.Sleep(300 * time.Millisecond) // all accepted and being served
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.stop(t) // SIGTERM, then exit 0 within 10 s
	}()
	time.Sleep(300 * time.Millisecond)
	for _, f := range rest {
		f()
	}
	for i := 0; i < slow+burst; i++ {
		r := <-results
		if r.err != nil || r.status != http.StatusCreated {
			if r.status >= 500 {
				serverErrors.Add(1)
			}
			t.Errorf("%s in flight at SIGTERM: status %d, error %v; want it finished with 201", r.what, r.status, r.err)
		}
	}
	<-stopped
}

// TestShutdownDelay: with --shutdown-delay a server told to stop keeps
// serving for that long, each answer with Connection: close, so that
// clients still routed to it (kube-proxy and load balancers drop a deleted
// pod a moment later) get answers instead of refusals and reconnect
// elsewhere; a keep-alive connection idle at SIGTERM is answered too, not
// closed under a client that may be sending on it; then it exits 0.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--shutdown-delay=3s")
	var d net.Dialer
	idle, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(s.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	br := bufio.NewReader(idle)
	get := func() (*http.Response, error) {
		if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: ideapool\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get(); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive request before SIGTERM: %v %v", resp, err)
	}

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.stop(t) // SIGTERM, then exit 0 within 10 s
	}()
	time.Sleep(500 * time.Millisecond)
	if resp, err := get(); err != nil || resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("the connection idle at SIGTERM: %v %v; want 200 and Connection: close", resp, err)
	}
	for i := range 3 {
		// A new connection each time, as from a client just routed here.
		client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
		resp, err := client.Get(s.Base + "/.well-known/jwks.json")
		if err != nil {
			t.Fatalf("request %d during the shutdown delay: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !resp.Close {
			t.Errorf("request %d during the shutdown delay: status %d, Connection: close %v; want 200 and close", i, resp.StatusCode, resp.Close)
		}
		time.Sleep(500 * time.Millisecond)
	}
	<-stopped
}

// TestCrashDurability: a write that returned success survives SIGKILL.
func TestCrashDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port, mport := freePort(t), freePort(t)
	s1 := startServerOpts(t, serverOptions{dir: dir, port: port, mport: mport})
	u := s1.signup(t, "crash")
	i := s1.createIdea(t, u.JWT, "before crash", 2, 3, 4)
	r := s1.do(t, "PUT", "/ideas/"+i.ID, ideaBody("updated before crash", 9, 9, 9), withToken(u.JWT))
	must(t, r, http.StatusOK)
	gone := s1.createIdea(t, u.JWT, "deleted before crash", 1, 1, 1)
	must(t, s1.do(t, "DELETE", "/ideas/"+gone.ID, nil, withToken(u.JWT)), http.StatusNoContent)
	s1.kill(t)

	s2 := startServerOpts(t, serverOptions{dir: dir, port: port, mport: mport})
	r = s2.login(t, u.Email, u.Password)
	must(t, r, http.StatusCreated)
	jwtStr, _ := s2.tokenPair(t, r)
	list := s2.listIdeas(t, jwtStr, "")
	if len(list) != 1 || list[0].ID != i.ID || list[0].Content != "updated before crash" {
		t.Errorf("after a crash, GET /ideas = %s, want only the updated %s", ids(list), i.ID)
	}
	expect(t, s2.refresh(t, u.Refresh), http.StatusOK)
}

// TestKeyFileReload: the server reloads its key file when it changes on disk:
// the JWKS (and its ETag) follow the file, and new tokens still verify.
func TestKeyFileReload(t *testing.T) {
	t.Parallel()
	a := startServer(t)
	c := startServer(t)
	cr, cKeys := c.jwkSet(t)
	_ = cr
	c.stop(t)
	data, err := os.ReadFile(c.KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	r0, _ := a.jwkSet(t)
	etag0 := r0.Header.Get("ETag")

	tmp := a.KeysPath + ".e2e-new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.KeysPath); err != nil {
		t.Fatal(err)
	}
	wantKid, _ := cKeys[0]["kid"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, keys := a.jwkSet(t)
		found := false
		for _, k := range keys {
			if k["kid"] == wantKid {
				found = true
			}
		}
		if found {
			if etag := r.Header.Get("ETag"); etag != "" && etag == etag0 {
				t.Errorf("the JWKS changed but its ETag %s did not", etag)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the key file was replaced, the JWKS still lacks its key %s: %s", wantKid, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	u := a.signup(t, "reload")
	h, _, _ := tokenParts(t, u.JWT)
	if h["kid"] != wantKid {
		t.Logf("note: after reload the token is signed by %v (the file's key is %s)", h["kid"], wantKid)
	}
	expect(t, a.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
}

// TestLoginFlood: a flood of logins neither starves the rest of the API nor
// exhausts memory (hashing runs under a concurrency bound).
func TestLoginFlood(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.signup(t, "flood")
	const n = 48
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := s.login(t, uniqueEmail(fmt.Sprintf("flood%d", i)), "Wrong-Pass-1")
			if r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
				t.Errorf("%s: want 401 (or 429)", r)
			}
		}(i)
	}
	var worst time.Duration
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for k := 0; ; k++ {
		select {
		case <-done:
		default:
			start := time.Now()
			expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
			expect(t, s.do(t, "GET", "/ideas", nil, withToken(u.JWT)), http.StatusOK)
			if d := time.Since(start); d > worst {
				worst = d
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		break
	}
	if worst > time.Second {
		t.Errorf("during a flood of %d logins, GET /me + GET /ideas took up to %v: the API is starved", n, worst)
	}
	if hwm := peakRSS(t, s.cmd.Process.Pid); hwm > 400<<20 {
		t.Errorf("during a flood of %d logins the server's peak RSS reached %d MiB: password hashing is not bounded (19 MiB each)", n, hwm>>20)
	} else {
		t.Logf("flood of %d logins: worst API latency %v, peak RSS %d MiB", n, worst, hwm>>20)
	}
}

// peakRSS is VmHWM of a process, in bytes (0 if unknown).
func peakRSS(t *testing.T, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("cannot read peak RSS: %v", err)
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
