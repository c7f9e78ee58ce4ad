// Command bench measures ideapool against the floors of the machine it runs
// on, in one run: it builds the server, starts `ideapool serve` on loopback
// with fresh data (SQLite, then PostgreSQL), drives it with a closed-loop
// load generator, measures each workload's baseline (GET /healthz, raw
// signing with the server's own key, raw password hashing) in the same run,
// and prints one table of ratios against the targets of issue 6. The table
// also goes to a JSON file so runs can be compared.
//
//	make bench                      # SQLite and a throwaway PostgreSQL
//	go run ./hack/bench -backends sqlite -duration 2s
//
// Figures are only comparable within a run: the generator shares the CPUs
// with the server, and the machine with everything else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration, warmup  time.Duration
	connections       int
	loginConnections  int
	users, ideas      int
	restarts          int
	rounds            int
	backends          []string
	algorithm         string
	refreshAlgorithms []string
	serverArgs        []string
	godebug           string
	memcg             bool
	bin               string
	scale             bool
	scaleReplot       bool
	scaleSteps        string
	scaleOut          string
	out               string
	cpuProfile        string
	pprofDir          string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseOptions(args []string) (options, error) {
	var o options
	var backends, refreshAlgs, serverArgs string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of each workload (and as much of its baseline)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time before each workload's measurement")
	fs.IntVar(&o.connections, "connections", 64, "connections of the read, write, refresh and JWKS workloads (and /healthz)")
	fs.IntVar(&o.loginConnections, "login-connections", 16, "connections of the login workload and of the flood in workload 6")
	fs.IntVar(&o.users, "users", 64, "accounts prepared before measuring")
	fs.IntVar(&o.ideas, "ideas", 50, "ideas prepared per account")
	fs.IntVar(&o.rounds, "rounds", 5, "slices each workload and its baseline are measured in, alternately (the first after -warmup, the others after 200ms)")
	fs.IntVar(&o.restarts, "restarts", 5, "restarts whose median is the start time (workload 8)")
	fs.StringVar(&backends, "backends", "sqlite,postgres", "comma-separated backends to run: sqlite, postgres (needs IDEAPOOL_TEST_POSTGRES_URL)")
	fs.StringVar(&o.algorithm, "key-algorithm", "RS256", "key algorithm of the measured server: RS256, ES256 or EdDSA")
	fs.StringVar(&refreshAlgs, "refresh-algorithms", "ES256,EdDSA", "other algorithms whose refresh throughput is shown for comparison (empty for none)")
	fs.StringVar(&o.godebug, "godebug", "", "GODEBUG of the server, for experiments; empty (the default) is the plain binary's own settings, as a user runs it")
	fs.StringVar(&o.bin, "bin", "", "measure this ideapool binary instead of building the module's (to compare releases with the same bench)")
	fs.BoolVar(&o.memcg, "memcg", true, "also flood a server confined to a 128 MiB memory cgroup (workload 9; needs root and cgroup v1 or v2, reported as not available otherwise)")
	fs.BoolVar(&o.scale, "scale", false, "run bench-scale instead: the workloads against databases of growing size (see scale.go); -scale-steps, -scale-out")
	fs.BoolVar(&o.scaleReplot, "scale-replot", false, "redraw the plots and the table of -scale-out from its scale.json, measuring nothing")
	fs.StringVar(&o.scaleSteps, "scale-steps", "0.01,0.1,1", "with -scale: the sizes measured, as fractions of the full database (100,000 users, 1,000,000 ideas of which 5 users have 100,000 each, 1,000,000 sessions)")
	fs.StringVar(&o.scaleOut, "scale-out", "hack/bench/scale", "with -scale: directory of the JSON results and the plots (SVG) the README shows; relative paths are under the module root")
	fs.StringVar(&serverArgs, "server-args", "", "extra arguments of `ideapool serve`, space-separated (for example --log-level=warn)")
	fs.StringVar(&o.out, "out", "hack/bench/results/latest.json", "JSON results file; relative paths are under the module root")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (the load generator and the floors) to this file")
	fs.StringVar(&o.pprofDir, "pprof", "", "save CPU profiles of the server over each workload's window, and a heap profile after workload 1, into this directory (runs the server with --pprof)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.duration <= 0 || o.warmup < 0:
		return o, errors.New("-duration must be positive and -warmup not negative")
	case o.connections < 1 || o.loginConnections < 1:
		return o, errors.New("-connections and -login-connections must be at least 1")
	case o.users < 1 || o.ideas < 10:
		return o, errors.New("-users must be at least 1 and -ideas at least 10 (a full first page)")
	case o.restarts < 1 || o.rounds < 1:
		return o, errors.New("-restarts and -rounds must be at least 1")
	}
	for _, a := range append([]string{o.algorithm}, splitList(refreshAlgs)...) {
		if a != "RS256" && a != "ES256" && a != "EdDSA" {
			return o, fmt.Errorf("algorithm %q: use RS256, ES256 or EdDSA", a)
		}
	}
	o.refreshAlgorithms = splitList(refreshAlgs)
	o.serverArgs = strings.Fields(serverArgs)
	o.backends = splitList(backends)
	for _, b := range o.backends {
		if b != "sqlite" && b != "postgres" {
			return o, fmt.Errorf("-backends: unknown backend %q (sqlite, postgres)", b)
		}
	}
	if len(o.backends) == 0 {
		return o, errors.New("-backends: name at least one")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	opts, err := parseOptions(args)
	if err != nil {
		return err
	}
	if opts.scaleReplot {
		return replotScale(ctx, opts, stdout)
	}
	pgURL := os.Getenv("IDEAPOOL_TEST_POSTGRES_URL")
	for _, b := range opts.backends {
		if b == "postgres" && pgURL == "" {
			return errors.New("IDEAPOOL_TEST_POSTGRES_URL is not set: run `make bench` (which starts a throwaway PostgreSQL) or pass -backends sqlite")
		}
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	started := time.Now()
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ideapool-bench-")
	if err != nil {
		return err
	}
	keep := false // the server logs, when something failed
	defer func() {
		if err == nil && !keep {
			os.RemoveAll(tmp)
		} else {
			logf("server logs kept in %s", tmp)
		}
	}()
	logf("building ideapool")
	if opts.pprofDir != "" {
		if opts.pprofDir, err = filepath.Abs(opts.pprofDir); err != nil {
			return err
		}
		if err := os.MkdirAll(opts.pprofDir, 0o755); err != nil { //nolint:gosec // profiles are not secret
			return err
		}
	}
	bin := opts.bin
	if bin == "" {
		if bin, err = buildServer(ctx, root, tmp); err != nil {
			return err
		}
	}

	if opts.scale {
		return runScale(ctx, opts, bin, tmp, root, pgURL, stdout)
	}
	rep := report{Started: started.UTC(), GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Warmup: opts.warmup.String(), Duration: opts.duration.String(),
		Connections: opts.connections, LoginConnections: opts.loginConnections, KeyAlgorithm: opts.algorithm,
		ServerArgs: opts.serverArgs, ServerGODEBUG: opts.godebug}
	logf("%s", rep.header())
	for _, backend := range opts.backends {
		dir := filepath.Join(tmp, backend)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		database := "sqlite:" + filepath.Join(dir, "ideapool.db")
		drop := func() error { return nil }
		if backend == "postgres" {
			if database, drop, err = postgresDatabase(ctx, pgURL); err != nil {
				return err
			}
		}
		rows, err := runBackend(ctx, opts, bin, dir, backend, database)
		if derr := drop(); err == nil {
			err = derr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", backend, err)
		}
		rep.Rows = append(rep.Rows, rows...)
		for _, r := range rows {
			keep = keep || r.Errors > 0
		}
	}
	rep.ElapsedSeconds = time.Since(started).Seconds()

	if err := rep.writeTable(stdout); err != nil {
		return err
	}
	out := opts.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := rep.writeJSON(out); err != nil {
		return err
	}
	logf("wrote %s in %s", out, time.Since(started).Round(time.Second))
	return nil
}
