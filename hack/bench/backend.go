package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// user is one prepared account with a live session.
type user struct {
	email, password string
	jwt, refresh    string
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func benchPassword(i int) string { return fmt.Sprintf("Bench-%02d-pw-Zq9", i) }

// backendRun measures every workload against one database.
type backendRun struct {
	opts  options
	name  string // sqlite or postgres
	spec  serverSpec
	users []user
	rows  []row
}

func (b *backendRun) add(r row) {
	r.Backend = b.name
	b.rows = append(b.rows, r)
	logf("%s  %-30s %s", b.name, r.Workload, r.summary())
}

func runBackend(ctx context.Context, opts options, bin, dir, name, database string) ([]row, error) {
	ports, err := freePorts(ctx, 2)
	if err != nil {
		return nil, err
	}
	b := &backendRun{opts: opts, name: name, spec: serverSpec{
		bin: bin, database: database, keys: "file:" + filepath.Join(dir, "keyset.json"), algorithm: opts.algorithm,
		listen: ports[0], metrics: ports[1], logPath: filepath.Join(dir, "server.log"),
		extraArgs: opts.serverArgs, readyPolled: 2 * time.Millisecond, pprof: opts.pprofDir != "", godebug: opts.godebug,
	}}
	logf("%s: server log in %s", name, b.spec.logPath)

	// A first server creates the schema and the keyset, and the accounts
	// and ideas every workload uses; then it stops, so that the measured
	// server starts on existing data and its peak memory is that of the
	// workloads alone.
	var first time.Duration
	err = b.withServer(ctx, func(_ *process, took time.Duration) error { first = took; return b.prepare(ctx) })
	if err != nil {
		return nil, err
	}
	if err := b.startup(ctx, first); err != nil {
		return nil, err
	}
	for _, measure := range []func(context.Context, *process) error{b.measure, b.measureLogins} {
		if err := b.withServer(ctx, func(p *process, _ time.Duration) error { return measure(ctx, p) }); err != nil {
			return nil, err
		}
	}
	if opts.memcg {
		if err := b.memcgFlood(ctx, dir); err != nil {
			return nil, err
		}
	}
	for _, alg := range opts.refreshAlgorithms {
		if alg == opts.algorithm {
			continue
		}
		if err := b.refreshWith(ctx, alg, dir); err != nil {
			return nil, err
		}
	}
	return b.rows, nil
}

// withServer starts a fresh server, runs fn with it and the time it took
// to start, and stops it.
func (b *backendRun) withServer(ctx context.Context, fn func(p *process, started time.Duration) error) error {
	p, took, err := b.spec.start(ctx)
	if err != nil {
		return err
	}
	err = fn(p, took)
	if serr := p.stop(); err == nil {
		err = serr
	}
	return err
}

// prepare signs up opts.users accounts and gives each opts.ideas ideas.
func (b *backendRun) prepare(ctx context.Context) error {
	t0 := time.Now()
	a := newAPI(b.spec.base(), 64)
	defer a.close()
	b.users = make([]user, b.opts.users)
	err := parallel(len(b.users), 8, func(i int) error {
		u := user{email: fmt.Sprintf("bench-%02d@example.com", i), password: benchPassword(i)}
		body, _, err := a.do(ctx, call{method: http.MethodPost, path: "/users", want: http.StatusCreated, keepBody: true,
			body: mustJSON(map[string]string{"email": u.email, "name": fmt.Sprintf("Bench User %02d", i), "password": u.password})})
		if err != nil {
			return fmt.Errorf("sign up: %w", err)
		}
		var pair struct {
			JWT     string `json:"jwt"`
			Refresh string `json:"refresh_token"`
		}
		if err := json.Unmarshal(body, &pair); err != nil {
			return fmt.Errorf("sign up: %w", err)
		}
		if pair.JWT == "" || pair.Refresh == "" {
			return errors.New("sign up: 201 without jwt or refresh_token")
		}
		u.jwt, u.refresh = pair.JWT, pair.Refresh
		b.users[i] = u
		return nil
	})
	if err != nil {
		return err
	}
	err = parallel(len(b.users), 64, func(i int) error {
		for n := range b.opts.ideas {
			_, _, err := a.do(ctx, call{method: http.MethodPost, path: "/ideas", token: b.users[i].jwt, want: http.StatusCreated,
				body: ideaBody(i, n)})
			if err != nil {
				return fmt.Errorf("prepare ideas: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf("%s: prepared %d users with %d ideas each in %s", b.name, len(b.users), b.opts.ideas, time.Since(t0).Round(time.Millisecond))
	return nil
}

func ideaBody(u, n int) []byte {
	return mustJSON(map[string]any{"content": fmt.Sprintf("idea %d of bench user %02d: a sentence of ordinary length", n, u),
		"impact": 1 + n%10, "ease": 1 + (n/3)%10, "confidence": 1 + (n*7+u)%10})
}

// startup restarts the server on its existing data and keyset, and takes
// the median time from exec to the first 200 of /readyz (workload 8).
func (b *backendRun) startup(ctx context.Context, first time.Duration) error {
	times := make([]time.Duration, 0, b.opts.restarts)
	for range b.opts.restarts {
		p, d, err := b.spec.start(ctx)
		if err != nil {
			return err
		}
		times = append(times, d)
		if err := p.stop(); err != nil {
			return err
		}
	}
	slices.Sort(times)
	med := times[len(times)/2]
	ms := []string{}
	for _, t := range times {
		ms = append(ms, strconv.FormatFloat(millis(t), 'f', 0, 64))
	}
	b.add(row{Workload: "8 start to /readyz", Value: ptr(millis(med)), Unit: "ms",
		Target: "< 300 ms", Met: ptr(med < 300*time.Millisecond),
		Notes: []string{fmt.Sprintf("median of %d restarts on existing data and keyset: %s ms; the very first start (new %s key, empty database) took %.0f ms",
			len(times), joinComma(ms), b.opts.algorithm, millis(first))}})
	return nil
}

func (b *backendRun) win() window { return window{warmup: b.opts.warmup, duration: b.opts.duration} }

// pair measures a workload and its baseline interleaved (see interleave).
func (b *backendRun) pair(x, y func(window) loadResult) (loadResult, loadResult) {
	return interleave(b.win(), b.opts.rounds, x, y)
}

func (b *backendRun) measure(ctx context.Context, p *process) error {
	conns := b.opts.connections
	a := newAPI(b.spec.base(), conns+b.opts.loginConnections)
	defer a.close()
	users := b.users
	atReady, err := p.memoryBreakdown()
	if err != nil {
		return err
	}

	readIdeas := func(win window) loadResult {
		return a.load(ctx, conns, win, func(w int) call {
			return call{method: http.MethodGet, path: "/ideas?page=1", token: users[w%len(users)].jwt, want: http.StatusOK}
		})
	}
	healthz := func(win window) loadResult {
		return a.load(ctx, conns, win, func(int) call {
			return call{method: http.MethodGet, path: "/healthz", want: http.StatusOK}
		})
	}

	// 1 and 7: first, so that the peak resident set is theirs (and that of
	// the interleaved /healthz, which holds less).
	wait := b.profile(ctx, "1 ideas")
	readCosted, readCost := b.spec.costed(ctx, p, "/ideas", readIdeas)
	healthCosted, healthCost := b.spec.costed(ctx, p, "/healthz", healthz)
	reads, health := b.pair(readCosted, healthCosted)
	wait()
	hwm, err := p.memory("VmHWM")
	if err != nil {
		return err
	}
	if b.spec.pprof {
		if err := b.spec.fetchProfile(ctx, "heap", filepath.Join(b.opts.pprofDir, b.name+"-1-ideas.heap.pprof")); err != nil {
			return err
		}
	}
	b.add(loadRow("· GET /healthz (floor)", health))
	r1 := loadRow("1 GET /ideas?page=1", reads)
	r1.versus("/healthz", health)
	r1.Target = "≥ 40% of /healthz; p99 ≤ 1.25x its p99"
	r1.Met = ptr(r1.ok() && *r1.Ratio >= 0.40 && reads.latencies.quantile(0.99) <= health.latencies.quantile(0.99)*5/4)
	r1.Notes = append(r1.Notes, "the server during the reads: "+readCost.String()+"; during /healthz: "+healthCost.String())
	r1.Notes = append(r1.Notes, fmt.Sprintf("p99 %s against /healthz's %s in the same run (%.2fx)", fmtDur(reads.latencies.quantile(0.99)),
		fmtDur(health.latencies.quantile(0.99)), float64(reads.latencies.quantile(0.99))/max(float64(health.latencies.quantile(0.99)), 1)))
	b.add(r1)
	r7 := row{Workload: "7 peak RSS under 1"}
	r7.Value, r7.Unit = ptr(float64(hwm)/(1<<20)), "MiB"
	r7.Target, r7.Met = "< 80 MiB", ptr(hwm < 80<<20)
	r7.Notes = []string{"VmHWM of the server after workload 1 on a fresh process (the data were prepared by an earlier one); " +
		"when it was ready, before any load: " + atReady}
	b.add(r7)

	// 5: the plain GET is the figure; a caching verifier's revalidation
	// (304) is shown beside it.
	_, h, err := a.do(ctx, call{method: http.MethodGet, path: "/.well-known/jwks.json", want: http.StatusOK})
	if err != nil {
		return err
	}
	etag := h.Get("ETag")
	wait = b.profile(ctx, "5 jwks")
	jwks, health := b.pair(func(win window) loadResult {
		return a.load(ctx, conns, win, func(int) call {
			return call{method: http.MethodGet, path: "/.well-known/jwks.json", want: http.StatusOK}
		})
	}, healthz)
	wait()
	r5 := loadRow("5 GET /.well-known/jwks.json", jwks)
	r5.versus("/healthz", health)
	r5.Target, r5.Met = "≥ 80% of /healthz", ptr(r5.ok() && *r5.Ratio >= 0.80)
	b.add(r5)
	jwks304 := a.load(ctx, conns, b.win(), func(int) call {
		return call{method: http.MethodGet, path: "/.well-known/jwks.json", ifNoneMatch: etag, want: http.StatusNotModified}
	})
	r5b := loadRow("5 JWKS If-None-Match (304)", jwks304)
	r5b.versus("/healthz", health)
	b.add(r5b)

	// 3 against the signing floor of the same key.
	if err := b.refresh(ctx, a, b.opts.algorithm); err != nil {
		return err
	}

	return nil
}

// measureLogins runs workloads 4 (and the peak resident set of its flood),
// 6 and 2 on a server started for them: the plain binary with its
// defaults, whose peak resident set is that of the flood alone.
func (b *backendRun) measureLogins(ctx context.Context, p *process) error {
	conns := b.opts.connections
	a := newAPI(b.spec.base(), conns+b.opts.loginConnections)
	defer a.close()
	users := b.users
	readIdeas := func(win window) loadResult {
		return a.load(ctx, conns, win, func(w int) call {
			return call{method: http.MethodGet, path: "/ideas?page=1", token: users[w%len(users)].jwt, want: http.StatusOK}
		})
	}
	healthz := func(win window) loadResult {
		return a.load(ctx, conns, win, func(int) call {
			return call{method: http.MethodGet, path: "/healthz", want: http.StatusOK}
		})
	}

	// 4: logins of distinct accounts (correct passwords: the throttle only
	// counts failures) against the hashing floor, watching the resident
	// set for growth.
	loginBodies := make([][]byte, len(users))
	for i, u := range users {
		loginBodies[i] = mustJSON(map[string]string{"email": u.email, "password": u.password})
	}
	logins := func(win window) loadResult {
		return a.load(ctx, b.opts.loginConnections, win, func(w int) call {
			return call{method: http.MethodPost, path: "/access-tokens", want: http.StatusCreated, body: loginBodies[w%len(users)]}
		})
	}
	ours := func(win window) loadResult {
		r, err := rawHashing(ctx, b.opts.loginConnections, win)
		if err != nil {
			return loadResult{latencies: newHistogram(), samples: []string{err.Error()}, errors: 1, ops: 1}
		}
		return r
	}
	xcrypto := func(win window) loadResult { return rawXCrypto(ctx, b.opts.loginConnections, win) }
	ready, err := p.memoryBreakdown()
	if err != nil {
		return err
	}
	rss := sampleRSS(p, 100*time.Millisecond)
	t0 := time.Now()
	loginCosted, loginCost := b.spec.costed(ctx, p, "/access-tokens", logins)
	wait := b.profile(ctx, "4 login")
	r := interleaveN(b.win(), b.opts.rounds, loginCosted, ours, xcrypto)
	wait()
	rss.stop()
	login, hashed, xhashed := r[0], r[1], r[2]
	first, second := rss.peaks(t0, t0.Add(time.Since(t0)/2), time.Now())
	hwm, err := p.memory("VmHWM")
	if err != nil {
		return err
	}
	after, err := p.memoryBreakdown()
	if err != nil {
		return err
	}
	b.add(loadRow("· argon2id x/crypto (floor)", xhashed))
	b.add(loadRow("· argon2id ours (floor)", hashed))
	floor, floorName := hashed, "argon2id ours"
	if xhashed.rate() > hashed.rate() {
		floor, floorName = xhashed, "argon2id x/crypto"
	}
	r4 := loadRow("4 POST /access-tokens", login)
	r4.versus(floorName, floor)
	want := 0.90
	if b.name == "postgres" {
		want = 0.85
	}
	r4.Target = fmt.Sprintf("≥ %.0f%% of the faster raw argon2id", want*100)
	r4.Met = ptr(r4.ok() && *r4.Ratio >= want)
	r4.Notes = append(r4.Notes, fmt.Sprintf("%d connections over %d accounts; the floors verify the same password in the bench process, as many at once as it has CPUs: "+
		"x/crypto/argon2 %s/s (%.0f%% of it), the server's own argon2id with its memory reused %s/s (%.0f%% of it)",
		b.opts.loginConnections, len(users), fmtRate(xhashed.rate()), 100*login.rate()/max(xhashed.rate(), 1e-9), fmtRate(hashed.rate()), 100*login.rate()/max(hashed.rate(), 1e-9)))
	r4.Notes = append(r4.Notes, "the server during the flood (warm-ups included): "+loginCost.String())
	b.add(r4)
	r7 := row{Workload: "7 peak RSS under 4"}
	r7.Value, r7.Unit = ptr(mib(hwm)), "MiB"
	r7.Target, r7.Met = "< 80 MiB", ptr(hwm < 80<<20)
	r7.Notes = []string{fmt.Sprintf("VmHWM of a server started for the login flood (plain binary, no environment); sampled peaks %.1f MiB in the first half of the flood, %.1f MiB in the second; "+
		"at ready %s; after the flood %s", mib(first), mib(second), ready, after)}
	b.add(r7)

	// 6: workload 1 while logins flood at full speed, against workload 1
	// alone.
	var flood loadResult
	wait = b.profile(ctx, "6 flood")
	alone, during := b.pair(readIdeas, func(win window) loadResult {
		var (
			wg sync.WaitGroup
			f  loadResult
		)
		wg.Go(func() { f = logins(win) })
		r := readIdeas(win)
		wg.Wait()
		flood = flood.add(f)
		return r
	})
	wait()
	r6 := loadRow("6 GET /ideas during login flood", during)
	p99 := alone.latencies.quantile(0.99)
	r6.Baseline, r6.BaselineValue = "p99 alone "+fmtDur(p99), ptr(millis(p99))
	if p99 > 0 {
		r6.Ratio = ptr(float64(during.latencies.quantile(0.99)) / float64(p99))
	}
	r6.Unit = "x"
	r6.Target = "p99 ≤ 5x alone"
	r6.Met = ptr(r6.ok() && r6.Ratio != nil && *r6.Ratio <= 5)
	r6.Notes = []string{fmt.Sprintf("the flood: %s logins/s on %d connections (p99 %s, %d errors); reads alone: %s/s, p50 %s",
		fmtRate(flood.rate()), b.opts.loginConnections, fmtDur(flood.latencies.quantile(0.99)), flood.errors,
		fmtRate(alone.rate()), fmtDur(alone.latencies.quantile(0.5)))}
	b.add(r6)

	// 2 last: it adds ideas to the users the reads use.
	return b.createIdeas(ctx, a, healthz)
}

// refresh runs workload 3 on the current server against the signing floor
// of its active key.
func (b *backendRun) refresh(ctx context.Context, a *api, alg string) error {
	users := b.users
	bodies := make([][]byte, len(users))
	for i, u := range users {
		bodies[i] = mustJSON(map[string]string{"refresh_token": u.refresh})
	}
	var keyAlg string
	var signErr error
	wait := b.profile(ctx, "3 refresh "+alg)
	refreshes, signing := b.pair(func(win window) loadResult {
		return a.load(ctx, b.opts.connections, win, func(w int) call {
			return call{method: http.MethodPost, path: "/access-tokens/refresh", want: http.StatusOK, body: bodies[w%len(users)]}
		})
	}, func(win window) loadResult {
		var r loadResult
		r, keyAlg, signErr = rawSigning(ctx, b.spec.keys, b.spec.base(), b.opts.connections, win)
		return r
	})
	wait()
	if signErr != nil {
		return signErr
	}
	if keyAlg != alg {
		return fmt.Errorf("the server signs with %s, not %s: the keyset %s is not the one expected", keyAlg, alg, b.spec.keys)
	}
	b.add(loadRow("· sign "+alg+" (floor)", signing))
	r3 := loadRow("3 POST /access-tokens/refresh "+alg, refreshes)
	r3.versus("sign "+alg, signing)
	if alg == b.opts.algorithm {
		r3.Target, r3.Met = "≥ 80% of raw signing", ptr(r3.ok() && *r3.Ratio >= 0.80)
	} else {
		r3.Notes = []string{"for comparison with " + b.opts.algorithm + ": same database, a server with a fresh " + alg + " keyset"}
	}
	b.add(r3)
	return nil
}

// refreshWith runs workload 3 against a server whose keys use alg.
func (b *backendRun) refreshWith(ctx context.Context, alg, dir string) error {
	spec := b.spec
	spec.algorithm = alg
	spec.keys = "file:" + filepath.Join(dir, "keyset-"+alg+".json")
	p, _, err := spec.start(ctx)
	if err != nil {
		return err
	}
	saved := b.spec
	b.spec = spec
	a := newAPI(spec.base(), b.opts.connections)
	err = b.refresh(ctx, a, alg)
	a.close()
	b.spec = saved
	if serr := p.stop(); err == nil {
		err = serr
	}
	return err
}

// createIdeas runs workload 2 against healthz and then checks that every
// idea answered with 201 is listed.
func (b *backendRun) createIdeas(ctx context.Context, a *api, healthz func(window) loadResult) error {
	users := b.users
	conns := b.opts.connections
	created := make([][]string, conns) // by worker; every 201, measured or not
	counters := make([]int, conns)
	create := func(win window) loadResult {
		return runClosedLoop(ctx, conns, win, func(ctx context.Context, w int) error {
			counters[w]++
			body, _, err := a.do(ctx, call{method: http.MethodPost, path: "/ideas", token: users[w%len(users)].jwt,
				want: http.StatusCreated, keepBody: true, body: ideaBody(w, 1000+counters[w])})
			if err != nil {
				return err
			}
			var idea struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(body, &idea); err != nil {
				return fmt.Errorf("POST /ideas: %w", err)
			}
			if idea.ID == "" {
				return errors.New("POST /ideas: 201 without an id")
			}
			created[w] = append(created[w], idea.ID)
			return nil
		})
	}
	wait := b.profile(ctx, "2 create")
	r, health := b.pair(create, healthz)
	wait()

	want := make([]map[string]bool, len(users))
	total := 0
	for w, ids := range created {
		u := w % len(users)
		if want[u] == nil {
			want[u] = map[string]bool{}
		}
		for _, id := range ids {
			want[u][id] = true
			total++
		}
	}
	var mu sync.Mutex
	lost := 0
	err := parallel(len(users), 8, func(u int) error {
		if len(want[u]) == 0 {
			return nil
		}
		missing := maps.Clone(want[u])
		for page := 1; ; page++ {
			body, _, err := a.do(ctx, call{method: http.MethodGet, path: "/ideas?page=" + strconv.Itoa(page),
				token: users[u].jwt, want: http.StatusOK, keepBody: true})
			if err != nil {
				return fmt.Errorf("list ideas to check workload 2: %w", err)
			}
			var list []struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(body, &list); err != nil {
				return fmt.Errorf("list ideas to check workload 2: %w", err)
			}
			if len(list) == 0 {
				break
			}
			for _, i := range list {
				delete(missing, i.ID)
			}
		}
		mu.Lock()
		lost += len(missing)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	r2 := loadRow("2 POST /ideas", r)
	r2.versus("/healthz", health)
	if b.name == "sqlite" {
		r2.Target = "≥ 25% of /healthz; nothing lost"
		r2.Met = ptr(r2.ok() && *r2.Ratio >= 0.25 && lost == 0)
	} else {
		r2.Target = "nothing lost"
		r2.Met = ptr(r2.ok() && lost == 0)
	}
	if lost == 0 {
		r2.Notes = []string{fmt.Sprintf("nothing lost: all %d ideas answered with 201 (warm-up included) are listed", total)}
	} else {
		r2.Notes = []string{fmt.Sprintf("LOST %d of %d ideas answered with 201", lost, total)}
	}
	b.add(r2)
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// profile starts fetching a CPU profile of the server over the measured
// window of the workload about to start (with -pprof); the returned
// function waits for it.
func (b *backendRun) profile(ctx context.Context, workload string) (wait func()) {
	if !b.spec.pprof {
		return func() {}
	}
	file := filepath.Join(b.opts.pprofDir, b.name+"-"+slug(workload)+".cpu.pprof")
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(b.opts.warmup):
		case <-ctx.Done():
			return
		}
		secs := int((b.opts.duration + time.Second - 1) / time.Second)
		if err := b.spec.fetchProfile(ctx, "profile?seconds="+strconv.Itoa(secs), file); err != nil {
			logf("%s: %v", b.name, err)
		}
	}()
	return func() { <-done }
}

func slug(s string) string {
	var out []rune
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			out = append(out, r)
		case len(out) > 0 && out[len(out)-1] != '-':
			out = append(out, '-')
		}
	}
	return strings.Trim(string(out), "-")
}
