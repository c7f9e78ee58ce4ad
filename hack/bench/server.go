package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for creating the run's database
)

// moduleRoot is the directory of the go.mod of the current module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the ideapool module: run from the repository (go run ./hack/bench)")
	}
	return filepath.Dir(gomod), nil
}

// buildServer compiles ideapool into dir with the version "bench" (without
// -trimpath, so that the build cache of tests and go run is reused).
func buildServer(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "ideapool")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version=bench", "-o", bin, ".") //nolint:gosec // fixed arguments and our own paths
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build ideapool: %w", err)
	}
	// A binary just written has dirty pages in the page cache until the
	// kernel writes them back, and serve cannot hand dirty pages of its
	// startup code back (MADV_PAGEOUT skips them): measure it as the
	// installed binary a user runs, written to disk.
	if err := syncFile(bin); err != nil {
		return "", fmt.Errorf("build ideapool: %w", err)
	}
	return bin, nil
}

func syncFile(name string) error {
	f, err := os.Open(name) //nolint:gosec // our own build output
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return f.Close()
}

// serverSpec is how to start `ideapool serve` for one backend: the same
// data on every start.
type serverSpec struct {
	bin         string
	database    string
	keys        string // file:PATH
	algorithm   string
	listen      string // 127.0.0.1:PORT
	metrics     string // 127.0.0.1:PORT
	logPath     string
	pprof       bool     // serve --pprof: profiles on the metrics listener
	godebug     string   // the server's GODEBUG
	env         []string // more environment, KEY=VALUE
	wrap        []string // a command the server runs under, given the server's command line
	extraArgs   []string
	readyPolled time.Duration // how often /readyz is polled while starting
}

func (s serverSpec) base() string { return "http://" + s.listen }

// process is one running server.
type process struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// start launches the server and waits until /readyz answers 200. It
// returns the time from just before the exec to that answer.
func (s serverSpec) start(ctx context.Context) (*process, time.Duration, error) {
	lf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("server log: %w", err)
	}
	args := append([]string{"serve",
		"--listen", s.listen,
		"--metrics-listen", s.metrics,
		"--database", s.database,
		"--keys", s.keys,
		"--issuer", s.base(),
		"--key-algorithm", s.algorithm,
		// Tokens issued while preparing must outlive the whole run.
		"--access-token-ttl", "1h",
		"--shutdown-timeout", "5s",
	}, s.extraArgs...)
	if s.pprof {
		args = append(args, "--pprof")
	}
	// Not CommandContext: stop() ends the server with SIGTERM, not SIGKILL.
	argv := append([]string{s.bin}, args...)
	if len(s.wrap) > 0 {
		argv = append(append([]string{}, s.wrap...), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec,noctx // our own freshly built binary
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(serverEnv(s.godebug), s.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, log: lf, exited: make(chan struct{})}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, 0, fmt.Errorf("start ideapool serve: %w", err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	if err := s.waitReady(ctx, p); err != nil {
		_ = p.stop()
		return nil, 0, fmt.Errorf("%w\n%s", err, tail(s.logPath, 20))
	}
	return p, time.Since(t0), nil
}

// serverEnv is our environment without IDEAPOOL_ variables, which would
// otherwise configure the server behind the flags' back, nor the Go
// runtime's (the server runs as a user runs the plain binary), and with
// godebug as GODEBUG if set.
func serverEnv(godebug string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "IDEAPOOL_"), name == "GODEBUG", name == "GOGC", name == "GOMEMLIMIT", name == "GOMAXPROCS":
		default:
			env = append(env, kv)
		}
	}
	if godebug != "" {
		env = append(env, "GODEBUG="+godebug)
	}
	return env
}

func (s serverSpec) waitReady(ctx context.Context, p *process) error {
	// A new connection per poll: a refused dial returns at once.
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base()+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("ideapool serve exited before it was ready: %w", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.readyPolled):
		}
		if time.Now().After(deadline) {
			return errors.New("ideapool serve was not ready within 60s")
		}
	}
}

// stop sends SIGTERM and waits for the graceful shutdown, killing the
// server if it takes longer than its own shutdown timeout allows.
func (p *process) stop() error {
	defer p.log.Close()
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("ideapool serve ignored SIGTERM for 15s; killed")
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// memory reads a field of /proc/PID/status in bytes: VmHWM is the peak
// resident set since the process started, VmRSS the current one.
func (p *process) memory(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, fmt.Errorf("read process status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.pid())
}

// memoryBreakdown describes the resident set now: total, anonymous (heap,
// stacks) and file-backed (the binary's pages).
func (p *process) memoryBreakdown() (string, error) {
	var v [3]int64
	for i, f := range []string{"VmRSS", "RssAnon", "RssFile"} {
		var err error
		if v[i], err = p.memory(f); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%.1f MiB (%.1f anonymous, %.1f file-backed)", float64(v[0])/(1<<20), float64(v[1])/(1<<20), float64(v[2])/(1<<20)), nil
}

// rssSampler records VmRSS every interval until stopped.
type rssSampler struct {
	times []time.Time
	rss   []int64
	stopc chan struct{}
	done  chan struct{}
}

func sampleRSS(p *process, interval time.Duration) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v, err := p.memory("VmRSS"); err == nil {
				s.times, s.rss = append(s.times, time.Now()), append(s.rss, v)
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() { close(s.stopc); <-s.done }

// peaks returns the highest sample in [from, mid) and in [mid, until).
func (s *rssSampler) peaks(from, mid, until time.Time) (first, second int64) {
	for i, t := range s.times {
		switch {
		case t.Before(from) || !t.Before(until):
		case t.Before(mid):
			first = max(first, s.rss[i])
		default:
			second = max(second, s.rss[i])
		}
	}
	return first, second
}

// freePorts returns n loopback ports nobody listens on right now.
func freePorts(ctx context.Context, n int) ([]string, error) {
	var lc net.ListenConfig
	addrs := make([]string, 0, n)
	for range n {
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "server log (" + path + "):\n" + strings.Join(lines, "\n")
}

var pgDatabases atomic.Int64

// postgresDatabase creates a fresh database on the server of baseURL and
// returns its URL and a function that drops it.
func postgresDatabase(ctx context.Context, baseURL string) (string, func() error, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", nil, errors.New("parse IDEAPOOL_TEST_POSTGRES_URL: malformed URL")
	}
	admin, err := sql.Open("pgx", baseURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	name := fmt.Sprintf("ideapool_bench_%d_%d_%d", os.Getpid(), time.Now().Unix(), pgDatabases.Add(1))
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// fetchProfile saves a profile of the server (path and query of
// /debug/pprof, e.g. "profile?seconds=5" or "heap") to file.
func (s serverSpec) fetchProfile(ctx context.Context, query, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metrics+"/debug/pprof/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile %s: status %d", query, resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetch profile: %w", err)
	}
	return f.Close()
}

// procStat is what /proc/PID/stat and the server's /metrics say about its
// cost so far.
type procStat struct {
	cpu       time.Duration // user + system
	minFaults int64
	gcs       float64 // go_gc_duration_seconds_count
	requests  float64 // ideapool_http_requests_total of one route
}

// stat reads p's CPU time and minor page faults, and from its metrics the
// garbage collections and the requests to route.
func (s serverSpec) stat(ctx context.Context, p *process, route string) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return procStat{}, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return procStat{}, errors.New("short /proc/PID/stat")
	}
	var st procStat
	st.minFaults, _ = strconv.ParseInt(f[7], 10, 64)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+stime) * time.Second / 100 // USER_HZ
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metrics+"/metrics", nil)
	if err != nil {
		return st, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return st, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, " ")
		switch {
		case name == "go_gc_duration_seconds_count":
			st.gcs, _ = strconv.ParseFloat(strings.TrimSpace(rest), 64)
		case strings.HasPrefix(name, "ideapool_http_requests_total{") && strings.Contains(name, `route="`+route+`"`):
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			st.requests += v
		}
	}
	return st, sc.Err()
}

// per describes the cost between two stats per request of their route.
func per(a, b procStat) string {
	n := b.requests - a.requests
	if n <= 0 {
		return "no requests counted"
	}
	return fmt.Sprintf("%.0f requests: %.2f ms of server CPU, %.0f minor page faults, %.3f garbage collections each",
		n, millis(b.cpu-a.cpu)/n, float64(b.minFaults-a.minFaults)/n, (b.gcs-a.gcs)/n)
}

// costs adds up the server's cost over the slices of one workload.
type costs struct{ a, b procStat }

// costed wraps a workload so that the server's CPU time, page faults,
// collections and requests to route are summed over its slices only
// (interleave runs others between them).
func (s serverSpec) costed(ctx context.Context, p *process, route string, f func(window) loadResult) (func(window) loadResult, *costs) {
	c := &costs{}
	return func(win window) loadResult {
		before, err := s.stat(ctx, p, route)
		r := f(win)
		after, err2 := s.stat(ctx, p, route)
		if err == nil && err2 == nil {
			c.b.cpu += after.cpu - before.cpu
			c.b.minFaults += after.minFaults - before.minFaults
			c.b.gcs += after.gcs - before.gcs
			c.b.requests += after.requests - before.requests
		}
		return r
	}, c
}

func (c *costs) String() string { return per(c.a, c.b) }
