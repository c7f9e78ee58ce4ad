package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers "sqlite" for growing the database
)

// bench-scale (make bench-scale, or -scale): how the hot paths' cost grows
// with the data. Two servers run side by side on one backend: one on a
// database with only the bench's own accounts (the empty database), one on
// a database grown step by step towards the full size (100,000 users,
// 1,000,000 ideas of which 500,000 belong to 5 users with 100,000 each, and
// 1,000,000 sessions with a refresh token each). At every step each
// workload is measured on both, interleaved, so the ratio to the empty
// database is of the same minute of the same machine.
//
// The rows beyond the bench's accounts are written directly in SQL, while
// the server is stopped: multi-row INSERTs of 500 rows, one transaction per
// 20,000 rows, the same schema the server migrated. Their users share one
// password hash (nobody logs in as them); their sessions are live (the
// cleanup of expired ones is measured last, on sessions made to expire).

// full is the size at scale 1.
var full = struct{ users, ideas, sessions, bigUsers, bigIdeas int }{100_000, 1_000_000, 1_000_000, 5, 100_000}

// scaleSize is the database at one step.
type scaleSize struct {
	fraction               float64
	users, ideas, sessions int // filler rows, bench accounts not included
	bigIdeas               int // ideas of each big user
	smallIdeas             int // ideas of the filler users
}

func sizeAt(f float64) scaleSize {
	s := scaleSize{fraction: f, users: int(float64(full.users) * f), sessions: int(float64(full.sessions) * f),
		bigIdeas: int(float64(full.bigIdeas) * f)}
	s.smallIdeas = int(float64(full.ideas)*f) - full.bigUsers*s.bigIdeas
	s.ideas = s.smallIdeas + full.bigUsers*s.bigIdeas
	return s
}

// scaleResult is one workload at one step.
type scaleResult struct {
	Backend     string  `json:"backend"`
	Workload    string  `json:"workload"`
	Ideas       int     `json:"ideas"`
	Users       int     `json:"users"`
	Sessions    int     `json:"sessions"`
	BigIdeas    int     `json:"big_user_ideas"`
	Rate        float64 `json:"requests_per_second"`
	P99Ms       float64 `json:"p99_ms"`
	EmptyRate   float64 `json:"empty_requests_per_second"`
	EmptyP99Ms  float64 `json:"empty_p99_ms"`
	Ratio       float64 `json:"ratio"`
	Errors      int64   `json:"errors"`
	EmptyErrors int64   `json:"empty_errors"`
	Note        string  `json:"note,omitempty"`
}

type scaleReport struct {
	Started        time.Time     `json:"started"`
	ElapsedSeconds float64       `json:"elapsed_seconds"`
	GoVersion      string        `json:"go_version"`
	NumCPU         int           `json:"num_cpu"`
	Duration       string        `json:"duration"`
	Results        []scaleResult `json:"results"`
	LoadNotes      []string      `json:"load_notes"`
}

// replotScale redraws the plots and the table from a saved scale.json.
func replotScale(ctx context.Context, opts options, stdout io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	dir := opts.scaleOut
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "scale.json"))
	if err != nil {
		return err
	}
	var rep scaleReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("scale.json: %w", err)
	}
	if err := rep.write(dir); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, rep.table())
	return err
}

// write saves the JSON and the plots into dir.
func (rep scaleReport) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // results are not secret
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{"scale.json": append(b, '\n'), "scale-throughput.svg": plotThroughput(rep),
		"scale-deep-page.svg": plotDeepPage(rep), "scale.md": []byte(rep.table())}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil { //nolint:gosec // results are not secret
			return err
		}
	}
	return nil
}

func runScale(ctx context.Context, opts options, bin, tmp, root, pgURL string, stdout io.Writer) error {
	var fractions []float64
	for _, f := range splitList(opts.scaleSteps) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || v > 1 {
			return fmt.Errorf("-scale-steps: %q is not a fraction in (0, 1]", f)
		}
		fractions = append(fractions, v)
	}
	rep := scaleReport{Started: time.Now().UTC(), GoVersion: goVersion(), NumCPU: numCPU(), Duration: opts.duration.String()}
	out := opts.scaleOut
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	for _, backend := range opts.backends {
		rs, notes, err := scaleBackend(ctx, opts, bin, tmp, backend, pgURL, fractions)
		if err != nil {
			return fmt.Errorf("%s: %w", backend, err)
		}
		rep.Results = append(rep.Results, rs...)
		rep.LoadNotes = append(rep.LoadNotes, notes...)
		rep.ElapsedSeconds = time.Since(rep.Started).Seconds()
		if err := rep.write(out); err != nil { // after each backend: a later failure loses nothing
			return err
		}
	}
	if _, err := io.WriteString(stdout, rep.table()); err != nil {
		return err
	}
	logf("wrote %s/scale.json, scale-throughput.svg, scale-deep-page.svg in %s", out, time.Since(rep.Started).Round(time.Second))
	return nil
}

// scaleBackend measures one backend at every step.
func scaleBackend(ctx context.Context, opts options, bin, tmp, backend, pgURL string, fractions []float64) ([]scaleResult, []string, error) {
	mk := func(name string) (*backendRun, func() error, error) {
		dir := filepath.Join(tmp, backend+"-"+name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, nil, err
		}
		database, drop := "sqlite:"+filepath.Join(dir, "ideapool.db"), func() error { return nil }
		if backend == "postgres" {
			var err error
			if database, drop, err = postgresDatabase(ctx, pgURL); err != nil {
				return nil, nil, err
			}
		}
		ports, err := freePorts(ctx, 2)
		if err != nil {
			return nil, nil, err
		}
		return &backendRun{opts: opts, name: backend, spec: serverSpec{
			bin: bin, database: database, keys: "file:" + filepath.Join(dir, "keyset.json"), algorithm: opts.algorithm,
			listen: ports[0], metrics: ports[1], logPath: filepath.Join(dir, "server.log"),
			extraArgs: opts.serverArgs, readyPolled: 5 * time.Millisecond, godebug: opts.godebug,
		}}, drop, nil
	}
	empty, dropEmpty, err := mk("empty")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = dropEmpty() }()
	grown, dropGrown, err := mk("grown")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = dropGrown() }()

	// Both get the bench's accounts and ideas, and the big users as
	// accounts (through the API); only the grown one gets their ideas.
	var bigEmpty, bigGrown []user
	for _, r := range []*backendRun{empty, grown} {
		p, _, err := r.spec.start(ctx)
		if err != nil {
			return nil, nil, err
		}
		err = r.prepare(ctx)
		var big []user
		if err == nil {
			big, err = r.signUp(ctx, "big", full.bigUsers)
		}
		if serr := p.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return nil, nil, err
		}
		if r == empty {
			bigEmpty = big
		} else {
			bigGrown = big
		}
	}
	pe, _, err := empty.spec.start(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = pe.stop() }()

	db, err := openDirect(backend, grown.spec.database)
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	ld := &loader{db: db, pg: backend == "postgres", rng: rand.New(rand.NewPCG(1, 2)), big: bigGrown} //nolint:gosec // filler data, the same every run; no secret
	if err := ld.readBigIDs(ctx); err != nil {
		return nil, nil, err
	}
	var results []scaleResult
	var notes []string
	for _, f := range fractions {
		size := sizeAt(f)
		t0 := time.Now()
		if err := ld.growTo(ctx, size); err != nil {
			return nil, nil, fmt.Errorf("load %v: %w", f, err)
		}
		note := fmt.Sprintf("%s: grew to %d users, %d ideas (%d of each of %d big users), %d sessions in %s (SQL, the server stopped)",
			backend, size.users, size.ideas, size.bigIdeas, full.bigUsers, size.sessions, time.Since(t0).Round(time.Millisecond))
		logf("%s", note)
		notes = append(notes, note)
		pg, _, err := grown.spec.start(ctx)
		if err != nil {
			return nil, nil, err
		}
		rs, err := scaleStep(ctx, opts, backend, size, empty, grown, bigEmpty, bigGrown)
		if serr := pg.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return nil, nil, err
		}
		results = append(results, rs...)
	}
	results = append(results, scaleCleanup(ctx, opts, backend, bin, grown, ld, fractions))
	return results, notes, nil
}

// signUp creates n accounts named prefix-N through the API.
func (b *backendRun) signUp(ctx context.Context, prefix string, n int) ([]user, error) {
	a := newAPI(b.spec.base(), 8)
	defer a.close()
	users := make([]user, n)
	err := parallel(n, 4, func(i int) error {
		u := user{email: fmt.Sprintf("%s-%d@example.com", prefix, i), password: benchPassword(i)}
		body, _, err := a.do(ctx, call{method: http.MethodPost, path: "/users", want: http.StatusCreated, keepBody: true,
			body: mustJSON(map[string]string{"email": u.email, "name": prefix, "password": u.password})})
		if err != nil {
			return err
		}
		var pair struct {
			JWT     string `json:"jwt"`
			Refresh string `json:"refresh_token"`
		}
		if err := json.Unmarshal(body, &pair); err != nil {
			return err
		}
		u.jwt, u.refresh = pair.JWT, pair.Refresh
		users[i] = u
		return nil
	})
	return users, err
}

// scaleStep measures every workload on the grown server against the empty
// one.
func scaleStep(ctx context.Context, opts options, backend string, size scaleSize, empty, grown *backendRun, bigEmpty, bigGrown []user) ([]scaleResult, error) {
	conns := opts.connections
	ae, ag := newAPI(empty.spec.base(), conns+8), newAPI(grown.spec.base(), conns+8)
	defer ae.close()
	defer ag.close()
	type workload struct {
		name  string
		conns int
		op    func(a *api, users, big []user) op
	}
	deepPage := max(size.bigIdeas/10, 1)
	var seq [2][]int // per server, per worker: a counter for unique contents
	seq[0], seq[1] = make([]int, conns), make([]int, conns)
	workloads := []workload{
		{"POST /access-tokens (login)", opts.loginConnections, func(a *api, users, _ []user) op {
			return func(ctx context.Context, w int) error {
				u := users[w%len(users)]
				_, _, err := a.do(ctx, call{method: http.MethodPost, path: "/access-tokens", want: http.StatusCreated,
					body: mustJSON(map[string]string{"email": u.email, "password": u.password})})
				return err
			}
		}},
		{"POST /access-tokens/refresh", conns, func(a *api, users, _ []user) op {
			return func(ctx context.Context, w int) error {
				_, _, err := a.do(ctx, call{method: http.MethodPost, path: "/access-tokens/refresh", want: http.StatusOK,
					body: mustJSON(map[string]string{"refresh_token": users[w%len(users)].refresh})})
				return err
			}
		}},
		{"GET /ideas?page=1", conns, func(a *api, users, _ []user) op {
			return func(ctx context.Context, w int) error {
				_, _, err := a.do(ctx, call{method: http.MethodGet, path: "/ideas?page=1", token: users[w%len(users)].jwt, want: http.StatusOK})
				return err
			}
		}},
		// A latency goal: measured where the server is not saturated (8
		// connections), unlike the throughput workloads.
		{"GET /ideas deep page", 8, func(a *api, _, big []user) op {
			return func(ctx context.Context, w int) error {
				_, _, err := a.do(ctx, call{method: http.MethodGet, path: "/ideas?page=" + strconv.Itoa(deepPage), token: big[w%len(big)].jwt, want: http.StatusOK})
				return err
			}
		}},
		{"create, update, delete an idea", conns, func(a *api, users, _ []user) op {
			return func(ctx context.Context, w int) error {
				s := &seq[0][w]
				if a.base == grown.spec.base() {
					s = &seq[1][w]
				}
				*s++
				u := users[w%len(users)]
				body, _, err := a.do(ctx, call{method: http.MethodPost, path: "/ideas", token: u.jwt, want: http.StatusCreated, keepBody: true, body: ideaBody(w, *s)})
				if err != nil {
					return err
				}
				var idea struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(body, &idea); err != nil {
					return err
				}
				if _, _, err := a.do(ctx, call{method: http.MethodPut, path: "/ideas/" + idea.ID, token: u.jwt, want: http.StatusOK, body: ideaBody(w, *s+1)}); err != nil {
					return err
				}
				_, _, err = a.do(ctx, call{method: http.MethodDelete, path: "/ideas/" + idea.ID, token: u.jwt, want: http.StatusNoContent})
				return err
			}
		}},
		{"GET /.well-known/jwks.json", conns, func(a *api, _, _ []user) op {
			return func(ctx context.Context, w int) error {
				_, _, err := a.do(ctx, call{method: http.MethodGet, path: "/.well-known/jwks.json", want: http.StatusOK})
				return err
			}
		}},
	}
	var out []scaleResult
	for _, wl := range workloads {
		g := wl.op(ag, grown.users, bigGrown)
		e := wl.op(ae, empty.users, bigEmpty)
		rg, re := interleave(window{warmup: opts.warmup, duration: opts.duration}, opts.rounds,
			func(win window) loadResult { return runClosedLoop(ctx, wl.conns, win, g) },
			func(win window) loadResult { return runClosedLoop(ctx, wl.conns, win, e) })
		r := scaleResult{Backend: backend, Workload: wl.name, Ideas: size.ideas, Users: size.users, Sessions: size.sessions, BigIdeas: size.bigIdeas,
			Rate: rg.rate(), P99Ms: millis(rg.latencies.quantile(0.99)), EmptyRate: re.rate(), EmptyP99Ms: millis(re.latencies.quantile(0.99)),
			Errors: rg.errors, EmptyErrors: re.errors}
		if re.rate() > 0 {
			r.Ratio = rg.rate() / re.rate()
		}
		if wl.name == "GET /ideas deep page" {
			r.Note = fmt.Sprintf("page %d of a user with %d ideas, 8 connections over the %d big users; on the empty database the same page is past the end (an empty list)", deepPage, size.bigIdeas, full.bigUsers)
		}
		for _, s := range append(rg.samples, re.samples...) {
			r.Note += "; error: " + s
		}
		logf("%s %-32s ideas %8d: %s/s vs %s/s empty (%.0f%%), p99 %s vs %s, errors %d/%d", backend, wl.name, size.ideas,
			fmtRate(r.Rate), fmtRate(r.EmptyRate), 100*r.Ratio, fmtMs(r.P99Ms), fmtMs(r.EmptyP99Ms), r.Errors, r.EmptyErrors)
		out = append(out, r)
	}
	return out, nil
}

// scaleCleanup measures how long the server's cleanup (issue 12: serve
// --cleanup-interval) takes to delete the sessions of the full database
// once they have all expired, and what reads cost meanwhile.
func scaleCleanup(ctx context.Context, opts options, backend, bin string, grown *backendRun, ld *loader, fractions []float64) scaleResult {
	r := scaleResult{Backend: backend, Workload: "cleanup of expired sessions", Sessions: ld.sessions, Ideas: ld.ideas, Users: ld.users}
	help, _ := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput() //nolint:gosec // our own binary
	if !strings.Contains(string(help), "--cleanup-interval") {
		r.Note = "not available: this ideapool serve has no --cleanup-interval (issue 12 is not merged)"
		logf("%s cleanup: %s", backend, r.Note)
		return r
	}
	_ = fractions
	// Every filler session (and its token) ended an hour ago, and so did
	// the last access token it issued.
	past := time.Now().Add(-time.Hour).UnixMicro()
	if _, err := ld.db.ExecContext(ctx, ld.bind("UPDATE sessions SET expires_at = ?, access_expires_at = ? WHERE id LIKE 'fill%'"), past, past); err != nil {
		r.Note = "failed: expire the sessions: " + err.Error()
		return r
	}
	count := func() (int, error) {
		var n int
		err := ld.db.QueryRowContext(ctx, ld.bind("SELECT count(*) FROM sessions WHERE id LIKE 'fill%'")).Scan(&n)
		return n, err
	}
	spec := grown.spec
	spec.extraArgs = append(append([]string{}, spec.extraArgs...), "--cleanup-interval=1s")
	p, _, err := spec.start(ctx)
	if err != nil {
		r.Note = "failed: " + err.Error()
		return r
	}
	defer func() { _ = p.stop() }()
	a := newAPI(spec.base(), opts.connections)
	defer a.close()
	users := grown.users
	t0 := time.Now()
	deadline := t0.Add(30 * time.Minute)
	var reads loadResult
	for {
		n, err := count()
		if err != nil {
			r.Note = "failed: count sessions: " + err.Error()
			return r
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.Note = fmt.Sprintf("NOT done after 30 minutes: %d sessions left", n)
			return r
		}
		reads = reads.add(a.load(ctx, opts.connections, window{duration: time.Second}, func(w int) call {
			return call{method: http.MethodGet, path: "/ideas?page=1", token: users[w%len(users)].jwt, want: http.StatusOK}
		}))
	}
	took := time.Since(t0)
	r.Rate = float64(ld.sessions) / took.Seconds()
	r.P99Ms = millis(reads.latencies.quantile(0.99))
	r.Errors = reads.errors
	r.Note = fmt.Sprintf("%d expired sessions deleted in %s (%s sessions/s) by serve --cleanup-interval=1s; GET /ideas?page=1 meanwhile: %s/s, p99 %s",
		ld.sessions, took.Round(time.Millisecond), fmtRate(r.Rate), fmtRate(reads.rate()), fmtMs(r.P99Ms))
	logf("%s cleanup: %s", backend, r.Note)
	return r
}

// openDirect opens the server's database for the loader: the same driver
// and pragmas the store uses for writing.
func openDirect(backend, database string) (*sql.DB, error) {
	if backend == "postgres" {
		return sql.Open("pgx", database)
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(database, "sqlite:")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// loader adds filler rows up to a size.
type loader struct {
	db                     *sql.DB
	pg                     bool
	rng                    *rand.Rand
	big                    []user
	bigIDs                 []string
	users, ideas, sessions int // filler rows so far
	bigIdeas, smallIdeas   int
	clock                  int64 // microseconds, increasing: created_at of the next row
}

// fillerHash is a valid argon2id hash nobody knows the password of.
const fillerHash = "$argon2id$v=19$m=19456,t=2,p=1$/nzMuGySjFzAunFmuGJ+Vw$0nZZGK2G1mAt9IDMvBt+yJ7U5UaTva8QK3LZjAYPhRE"

func (l *loader) bind(q string) string {
	if !l.pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (l *loader) readBigIDs(ctx context.Context) error {
	for _, u := range l.big {
		var id string
		if err := l.db.QueryRowContext(ctx, l.bind("SELECT id FROM users WHERE email = ?"), u.email).Scan(&id); err != nil {
			return fmt.Errorf("find big user %s: %w", u.email, err)
		}
		l.bigIDs = append(l.bigIDs, id)
	}
	l.clock = time.Now().Add(-24 * time.Hour).UnixMicro()
	return nil
}

// growTo inserts the rows that size has and the database does not yet.
func (l *loader) growTo(ctx context.Context, size scaleSize) error {
	now := time.Now()
	if n := size.users - l.users; n > 0 {
		start := l.users
		err := l.insert(ctx, "users", []string{"id", "email", "username", "name", "password_hash", "role", "created_at"}, n, func(i int) []any {
			k := start + i
			email := fmt.Sprintf("fill-%d@example.com", k)
			return []any{fillID(k), email, email, "Filler " + strconv.Itoa(k), fillerHash, 1, l.tick()}
		})
		if err != nil {
			return err
		}
		l.users = size.users
	}
	if n := size.bigIdeas - l.bigIdeas; n > 0 {
		err := l.insert(ctx, "ideas", []string{"id", "user_id", "content", "impact", "ease", "confidence", "created_at"}, n*len(l.bigIDs), func(i int) []any {
			return l.idea(l.bigIDs[i%len(l.bigIDs)])
		})
		if err != nil {
			return err
		}
		l.bigIdeas = size.bigIdeas
	}
	if n := size.smallIdeas - l.smallIdeas; n > 0 && l.users > 0 {
		err := l.insert(ctx, "ideas", []string{"id", "user_id", "content", "impact", "ease", "confidence", "created_at"}, n, func(int) []any {
			return l.idea(fillID(l.rng.IntN(l.users)))
		})
		if err != nil {
			return err
		}
		l.smallIdeas = size.smallIdeas
	}
	l.ideas = l.smallIdeas + l.bigIdeas*len(l.bigIDs)
	if n := size.sessions - l.sessions; n > 0 && l.users > 0 {
		start := l.sessions
		expires := now.Add(30 * 24 * time.Hour).UnixMicro()
		err := l.insert(ctx, "sessions", []string{"id", "user_id", "auth_time", "created_at", "expires_at", "access_expires_at", "secret"}, n, func(i int) []any {
			t := l.tick()
			return []any{"fill" + fillID(start+i), fillID(l.rng.IntN(l.users)), t, t, expires, expires, l.bytes(32)}
		})
		if err != nil {
			return err
		}
		err = l.insert(ctx, "refresh_tokens", []string{"hash", "session_id", "created_at"}, n, func(i int) []any {
			return []any{l.bytes(32), "fill" + fillID(start+i), l.tick()}
		})
		if err != nil {
			return err
		}
		l.sessions = size.sessions
	}
	// Fresh statistics, as autovacuum (PostgreSQL) or an ANALYZE after a
	// migration would give a real database of this size; and on SQLite
	// the load's write-ahead log folded into the database and emptied, as
	// SQLite's automatic checkpoints (every 1,000 pages) keep it in a
	// database that grew by use: a WAL of the whole load would make every
	// read of the measured server search it.
	qs := []string{"ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"}
	if l.pg {
		qs = []string{"VACUUM ANALYZE"}
	}
	for _, q := range qs {
		if _, err := l.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func (l *loader) tick() int64 { l.clock += 7; return l.clock }

func (l *loader) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(l.rng.Uint32()) //nolint:gosec // any byte will do
	}
	return b
}

func (l *loader) idea(userID string) []any {
	n := l.ideas
	l.ideas++
	return []any{"f" + fillID(n), userID, fmt.Sprintf("filler idea %d: a sentence of ordinary length for the listing", n),
		1 + l.rng.IntN(10), 1 + l.rng.IntN(10), 1 + l.rng.IntN(10), l.tick()}
}

// fillID is a plausible id (randid's alphabet) for filler row k.
func fillID(k int) string { return fmt.Sprintf("%010s", strconv.FormatInt(int64(k), 32)) }

// insert writes n rows of cols, 500 to a statement, 20,000 to a
// transaction.
func (l *loader) insert(ctx context.Context, table string, cols []string, n int, row func(i int) []any) error {
	const perStmt, perTx = 500, 20_000
	for done := 0; done < n; {
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for end := min(done+perTx, n); done < end; {
			k := min(perStmt, end-done)
			var b strings.Builder
			b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
			args := make([]any, 0, k*len(cols))
			p := 0
			for i := range k {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteByte('(')
				for c := range cols {
					if c > 0 {
						b.WriteString(", ")
					}
					p++
					if l.pg {
						b.WriteString("$" + strconv.Itoa(p))
					} else {
						b.WriteByte('?')
					}
				}
				b.WriteByte(')')
				args = append(args, row(done+i)...)
			}
			if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("insert into %s: %w", table, err)
			}
			done += k
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
