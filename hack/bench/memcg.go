package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Workload 9: a server confined to a memory cgroup of 128 MiB, as a pod
// with that limit, flooded with logins, sign-ups and refreshes, one after
// the other and then all at once. The kernel OOM-kills a process of the
// cgroup that needs more; the cgroup counts those kills, and they must be
// 0. The server runs with GOMAXPROCS=16, as on a 16-CPU node where the
// default of one hashing slot per CPU would need 304 MiB: it must find its
// slots from the limit.

const memcgLimit = 128 << 20

// memcg is a memory cgroup of cgroup v1 or v2.
type memcg struct {
	v2  bool
	dir string
}

func newMemcg(limit int64) (*memcg, error) {
	name := fmt.Sprintf("ideapool-bench-%d", os.Getpid())
	var m memcg
	switch {
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		m = memcg{v2: true, dir: filepath.Join("/sys/fs/cgroup", name)}
		// The memory controller must be enabled for the root's children.
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory"), 0o644) //nolint:gosec // a cgroup control file
	case fileExists("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
		m = memcg{dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	default:
		return nil, errors.New("no cgroup v1 memory controller nor cgroup v2 mounted under /sys/fs/cgroup")
	}
	if err := os.Mkdir(m.dir, 0o755); err != nil { //nolint:gosec // a cgroup directory
		return nil, fmt.Errorf("create a memory cgroup (needs root): %w", err)
	}
	limitFile, swapFile := "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if m.v2 {
		limitFile, swapFile = "memory.max", "memory.swap.max"
	}
	if err := m.write(limitFile, strconv.FormatInt(limit, 10)); err != nil {
		m.remove()
		return nil, err
	}
	if m.v2 {
		_ = m.write(swapFile, "0") // no swap: the limit is the memory
	} else {
		_ = m.write(swapFile, strconv.FormatInt(limit, 10))
		_ = m.write("memory.swappiness", "0")
	}
	return &m, nil
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

func (m *memcg) write(file, value string) error {
	if err := os.WriteFile(filepath.Join(m.dir, file), []byte(value), 0o644); err != nil { //nolint:gosec // a cgroup control file
		return fmt.Errorf("cgroup %s: %w", file, err)
	}
	return nil
}

// wrap is the command line prefix that starts a command inside the cgroup:
// the shell moves itself in, then becomes the command, so everything the
// server ever allocates is charged to the cgroup.
func (m *memcg) wrap() []string {
	return []string{"/bin/sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, m.dir}
}

// oomKills is how many processes the kernel killed in the cgroup for lack
// of memory.
func (m *memcg) oomKills() (int64, error) {
	file := "memory.oom_control"
	if m.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(m.dir, file))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no oom_kill count in %s (kernel older than 4.13?)", file)
}

// peak is the highest memory charged to the cgroup (anonymous memory and
// page cache: the binary's pages, the database's).
func (m *memcg) peak() (int64, error) {
	file := "memory.max_usage_in_bytes"
	if m.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(m.dir, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func (m *memcg) remove() {
	for range 50 { // the last process may take a moment to leave
		if err := os.Remove(m.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("could not remove the cgroup %s", m.dir)
}

var slotsInLog = regexp.MustCompile(`"password_hash_slots":(\d+),"gomaxprocs":(\d+),"memory_limit_bytes":(\d+),"go_memory_limit_bytes":(\d+)`)

// memcgFlood runs workload 9.
func (b *backendRun) memcgFlood(ctx context.Context, dir string) error {
	const name = "9 128 MiB cgroup: no OOM kill"
	cg, err := newMemcg(memcgLimit)
	if err != nil {
		b.add(row{Workload: name, Target: "0 OOM kills", Notes: []string{"not available: " + err.Error()}})
		return nil
	}
	defer cg.remove()
	spec := b.spec
	spec.wrap = cg.wrap()
	spec.env = []string{"GOMAXPROCS=16"}
	spec.logPath = filepath.Join(dir, "server-memcg.log")
	p, _, err := spec.start(ctx)
	if err != nil {
		return fmt.Errorf("workload 9: %w", err)
	}
	defer func() { _ = p.stop() }()
	settings := "the server's settings are not in its log"
	if m := slotsInLog.FindStringSubmatch(tail(spec.logPath, 50)); m != nil {
		lim, _ := strconv.ParseInt(m[3], 10, 64)
		gl, _ := strconv.ParseInt(m[4], 10, 64)
		settings = fmt.Sprintf("the server found the limit (%.0f MiB) and chose %s hashing slots, GOMAXPROCS %s, a Go memory limit of %.0f MiB",
			mib(lim), m[1], m[2], mib(gl))
	}

	conns := b.opts.connections
	a := newAPI(spec.base(), 3*conns)
	defer a.close()
	users := b.users
	loginBodies := make([][]byte, len(users))
	for i, u := range users {
		loginBodies[i] = mustJSON(map[string]string{"email": u.email, "password": u.password})
	}
	// Every refresh worker has a session of its own.
	chains := make([]string, conns)
	err = parallel(conns, 8, func(w int) error {
		body, _, err := a.do(ctx, call{method: http.MethodPost, path: "/access-tokens", want: http.StatusCreated, keepBody: true, body: loginBodies[w%len(users)]})
		if err != nil {
			return err
		}
		var pair struct {
			Refresh string `json:"refresh_token"`
		}
		if err := json.Unmarshal(body, &pair); err != nil {
			return err
		}
		chains[w] = pair.Refresh
		return nil
	})
	if err != nil {
		return fmt.Errorf("workload 9: log in: %w", err)
	}
	var signups atomic.Int64
	run := map[string]func(window) loadResult{
		"logins": func(win window) loadResult {
			return a.load(ctx, conns, win, func(w int) call {
				return call{method: http.MethodPost, path: "/access-tokens", want: http.StatusCreated, body: loginBodies[w%len(users)]}
			})
		},
		"sign-ups": func(win window) loadResult {
			return a.load(ctx, conns, win, func(int) call {
				n := signups.Add(1)
				return call{method: http.MethodPost, path: "/users", want: http.StatusCreated,
					body: mustJSON(map[string]string{"email": fmt.Sprintf("memcg-%d@example.com", n), "name": "Memcg User", "password": benchPassword(int(n))})}
			})
		},
		"refreshes": func(win window) loadResult {
			// The Idea Pool API keeps the refresh token: each worker
			// refreshes its own session.
			return a.load(ctx, conns, win, func(w int) call {
				return call{method: http.MethodPost, path: "/access-tokens/refresh", want: http.StatusOK,
					body: mustJSON(map[string]string{"refresh_token": chains[w]})}
			})
		},
	}
	var notes []string
	var errs int64
	for _, kind := range []string{"logins", "sign-ups", "refreshes"} {
		r := run[kind](b.win())
		errs += r.errors
		notes = append(notes, fmt.Sprintf("%s alone: %s/s on %d connections, p99 %s, %d errors", kind, fmtRate(r.rate()), conns, fmtDur(r.latencies.quantile(0.99)), r.errors))
		for _, s := range r.samples {
			notes = append(notes, kind+" error: "+s)
		}
	}
	var wg sync.WaitGroup
	all := make([]loadResult, 3)
	for i, kind := range []string{"logins", "sign-ups", "refreshes"} {
		wg.Go(func() { all[i] = run[kind](b.win()) })
	}
	wg.Wait()
	for i, kind := range []string{"logins", "sign-ups", "refreshes"} {
		errs += all[i].errors
		notes = append(notes, fmt.Sprintf("%s during all three: %s/s, %d errors", kind, fmtRate(all[i].rate()), all[i].errors))
	}
	kills, kerr := cg.oomKills()
	peak, perr := cg.peak()
	hwm, herr := p.memory("VmHWM")
	alive := true
	select {
	case <-p.exited:
		alive = false
	default:
	}
	if err := errors.Join(kerr, perr); err != nil {
		return fmt.Errorf("workload 9: read the cgroup: %w", err)
	}
	r := row{Workload: name, Errors: errs, Target: "0 OOM kills, alive, no errors"}
	r.Value, r.Unit = ptr(float64(kills)), "kills"
	r.Met = ptr(kills == 0 && alive && errs == 0)
	notes = append([]string{settings,
		fmt.Sprintf("%d OOM kills; server alive after the floods: %v; cgroup peak %.1f MiB of %d (binary and database pages included)", kills, alive, mib(peak), memcgLimit>>20)}, notes...)
	if herr == nil {
		notes = append(notes, fmt.Sprintf("server VmHWM %.1f MiB", mib(hwm)))
	}
	r.Notes = notes
	b.add(r)
	return nil
}
