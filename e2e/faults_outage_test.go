//go:build faults

package e2e_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pgInstance is a PostgreSQL server of this test's own (hack/pg-instance.sh),
// so that stopping it leaves the run's shared server alone.
type pgInstance struct {
	script, dir string
	port        int
}

func (p *pgInstance) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{p.script}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", p.script, strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func (p *pgInstance) start(t *testing.T) string {
	return p.run(t, "start", p.dir, fmt.Sprint(p.port))
}
func (p *pgInstance) stop(t *testing.T) { p.run(t, "stop", p.dir) }

func newPGInstance(t *testing.T) *pgInstance {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Under /tmp: as root the server runs as an unprivileged user, who
	// cannot enter t.TempDir().
	dir, err := os.MkdirTemp("/tmp", "ideapool-outage-")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgInstance{script: filepath.Join(root, "hack", "pg-instance.sh"), dir: dir, port: freePort(t)}
	t.Cleanup(func() { _ = exec.Command("bash", p.script, "remove", p.dir).Run() })
	return p
}

// TestFaultDatabaseOutage: PostgreSQL stops under load. /readyz turns 503
// within 5 s; every request is answered within the 10 s request timeout,
// either without the database or with 503 and a JSON body saying so (never
// another 5xx, never a 401 that would send a client to log in again); the
// goroutine count stays bounded. When PostgreSQL is back, the service
// recovers by itself within seconds.
func TestFaultDatabaseOutage(t *testing.T) {
	t.Parallel()
	pg := newPGInstance(t)
	url := pg.start(t)
	s := startServer(t, "--database", url)
	u := s.signup(t, "outage")
	idea := s.createIdea(t, u.JWT, "outage", 1, 2, 3)
	client := loadClient(20 * time.Second)
	mclient := loadClient(5 * time.Second)
	base, err := gauge(mclient, s.MetricsBase, "go_goroutines")
	if err != nil {
		t.Fatal(err)
	}

	type op struct {
		name string
		want int
		do   func() rawResult
	}
	tok := []string{"X-Access-Token", u.JWT}
	ops := []op{
		{"GET /ideas", 200, func() rawResult { return rawDo(client, "GET", s.Base+"/ideas", nil, tok...) }},
		{"POST /ideas", 201, func() rawResult {
			return rawDo(client, "POST", s.Base+"/ideas", ideaBody("during outage", 4, 5, 6), tok...)
		}},
		{"PUT /ideas/:id", 200, func() rawResult {
			return rawDo(client, "PUT", s.Base+"/ideas/"+idea.ID, ideaBody("updated in outage", 4, 5, 6), tok...)
		}},
		{"GET /me", 200, func() rawResult { return rawDo(client, "GET", s.Base+"/me", nil, tok...) }},
		{"POST /access-tokens/refresh", 200, func() rawResult {
			return rawDo(client, "POST", s.Base+"/access-tokens/refresh", map[string]any{"refresh_token": u.Refresh})
		}},
		{"POST /access-tokens", 201, func() rawResult {
			return rawDo(client, "POST", s.Base+"/access-tokens", map[string]any{"email": u.Email, "password": u.Password})
		}},
	}

	const workers = 16
	var (
		phase       atomic.Int32 // 0 up, 1 outage, 2 recovered
		wrongUp     = newCounter()
		wrongOutage = newCounter()
		slow        = newCounter()
		mu          sync.Mutex
		seen        = map[string]map[int]int{} // phase/op -> status -> count
		stop        atomic.Bool
		wg          sync.WaitGroup
	)
	phases := []string{"before", "outage", "after"}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w; !stop.Load(); n++ {
				o := ops[n%len(ops)]
				if o.name == "POST /access-tokens" && (n/len(ops))%4 != 0 {
					continue // password hashing is slow; log in less often
				}
				ph := phase.Load()
				r := o.do()
				mu.Lock()
				key := phases[ph] + " " + o.name
				if seen[key] == nil {
					seen[key] = map[int]int{}
				}
				seen[key][r.Status]++
				mu.Unlock()
				if r.Elapsed > 11*time.Second {
					slow.add("%s (%s): %s", o.name, phases[ph], r)
				}
				switch {
				case ph == 1 || phase.Load() == 1:
					if r.Err != nil || (r.Status != o.want && r.Status != http.StatusServiceUnavailable) {
						wrongOutage.add("%s: %s, want %d or 503", o.name, r, o.want)
					} else if r.Status == http.StatusServiceUnavailable && (jsonField(r.Body, "message") == "" || jsonField(r.Body, "error") == "") {
						wrongOutage.add("%s: 503 without a JSON {error, message} body: %s", o.name, r)
					}
				case r.Err != nil || r.Status != o.want:
					wrongUp.add("%s (%s): %s, want %d", o.name, phases[ph], r, o.want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	time.Sleep(2 * time.Second)
	phase.Store(1)
	pg.stop(t)
	stopped := time.Now()
	took, ok := waitFor(5*time.Second, func() bool {
		return rawDo(mclient, "GET", s.Base+"/readyz", nil).Status == http.StatusServiceUnavailable
	})
	if !ok {
		t.Errorf("/readyz did not turn 503 within %v of PostgreSQL stopping", took.Round(time.Millisecond))
	}
	t.Logf("/readyz 503 %v after PostgreSQL stopped", took.Round(time.Millisecond))
	peak := base
	for time.Since(stopped) < 12*time.Second {
		if g, err := gauge(mclient, s.MetricsBase, "go_goroutines"); err == nil && g > peak {
			peak = g
		}
		time.Sleep(250 * time.Millisecond)
	}
	if r := rawDo(mclient, "GET", s.Base+"/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("12 s into the outage /readyz answers %s, want 503", r)
	}
	// A bounded pool: each in-flight request holds a few goroutines, and
	// there are at most `workers` of them at a time.
	if bound := base + 10*workers; peak > bound {
		t.Errorf("goroutines grew from %v to %v during the outage (bound %v): requests pile up", base, peak, bound)
	}
	t.Logf("goroutines: %v before, at most %v during the outage", base, peak)

	pg.start(t)
	back := time.Now()
	took, ok = waitFor(15*time.Second, func() bool {
		return rawDo(mclient, "GET", s.Base+"/readyz", nil).Status == http.StatusOK
	})
	if !ok {
		t.Errorf("/readyz is not 200 %v after PostgreSQL came back", took.Round(time.Millisecond))
	}
	_, ok = waitFor(15*time.Second, func() bool {
		for _, o := range ops {
			if o.do().Status != o.want {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Errorf("requests still fail %v after PostgreSQL came back", time.Since(back).Round(time.Millisecond))
	}
	t.Logf("service back %v after PostgreSQL restarted", time.Since(back).Round(time.Millisecond))
	phase.Store(2)
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	wrongUp.report(t, "failed requests while PostgreSQL was up (before the outage, or after the service said it was back)")
	wrongOutage.report(t, "wrong answers during the outage")
	slow.report(t, "requests answered after more than the 10 s request timeout (+1 s)")
	mu.Lock()
	t.Logf("answers by phase and route: %v", seen)
	outage503 := 0
	for k, st := range seen {
		if strings.HasPrefix(k, "outage ") {
			outage503 += st[http.StatusServiceUnavailable]
		}
	}
	mu.Unlock()
	if outage503 == 0 {
		t.Errorf("no request got a 503 during the outage: the test did not take the database away")
	}
}

// TestFaultSlowBody: a client that sends its body a byte at a time is cut
// off by the 15 s read timeout, not held forever.
func TestFaultSlowBody(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(conn)
		closed <- fmt.Sprintf("%q, %v", b, err)
	}()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case got := <-closed:
			took := time.Since(start)
			t.Logf("cut off after %v (read %s)", took.Round(time.Millisecond), got)
			if took > 18*time.Second {
				t.Errorf("a slow body was cut off only after %v; the read timeout is 15 s", took)
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(start) > 25*time.Second {
			t.Fatalf("a client sending its body a byte every 500 ms is still connected after %v", time.Since(start).Round(time.Millisecond))
		}
		_, _ = conn.Write([]byte(" "))
	}
}
