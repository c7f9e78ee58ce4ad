package e2e_test

// The operator at scale: many IdeasApps in one real API server, the
// operator as a process, and a stand-in for the Deployment controller
// (envtest runs no kube-controller-manager, so nothing else would ever mark
// a Deployment available). Run it with `make bench-operator`.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// scaleSettings come from the environment, so `make bench-operator` can
// change them without editing code.
type scaleSettings struct {
	apps      int           // IDEAPOOL_BENCH_APPS, default 200
	algorithm string        // IDEAPOOL_BENCH_ALGORITHM, default RS256 (the CRD's default)
	rotation  time.Duration // IDEAPOOL_BENCH_ROTATION, default 3m: must outlast creating them all
	workers   int           // clients creating IdeasApps at once
}

func scaleSettingsFromEnv(tb testing.TB) scaleSettings {
	tb.Helper()
	s := scaleSettings{apps: 200, algorithm: "RS256", rotation: 3 * time.Minute, workers: 8}
	if v := os.Getenv("IDEAPOOL_BENCH_APPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("IDEAPOOL_BENCH_APPS=%q: want a positive integer", v)
		}
		s.apps = n
	}
	if v := os.Getenv("IDEAPOOL_BENCH_ALGORITHM"); v != "" {
		s.algorithm = v
	}
	if v := os.Getenv("IDEAPOOL_BENCH_ROTATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			tb.Fatalf("IDEAPOOL_BENCH_ROTATION=%q: want a duration of at least 10s", v)
		}
		s.rotation = d
	}
	return s
}

// BenchmarkOperatorScale creates many IdeasApps at once and reports how
// long until all are Ready, the operator's peak memory, and what one
// scheduled rotation across all of them costs: reconciles per app and
// write conflicts seen by the API server.
func BenchmarkOperatorScale(b *testing.B) {
	if b.N > 1 {
		b.Skip("one run is the measurement: use -benchtime 1x")
	}
	set := scaleSettingsFromEnv(b)
	c := startCluster(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "scale"
	if _, err := c.client.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { c.markDeploymentsAvailable(ctx, b, ns) })

	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	_, operator := c.runOperator(b, "--metrics-bind-address="+metricsAddr, "--metrics-secure=false")

	b.ResetTimer()
	start := time.Now()
	names := make(chan int)
	var createWG sync.WaitGroup
	for range set.workers {
		createWG.Go(func() {
			for i := range names {
				app := scaleApp(ns, fmt.Sprintf("app-%03d", i), set)
				if _, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns).Create(ctx, app, metav1.CreateOptions{}); err != nil {
					b.Errorf("create ideasapp %d: %v", i, err)
				}
			}
		})
	}
	for i := range set.apps {
		names <- i
	}
	close(names)
	createWG.Wait()
	created := time.Since(start)

	// All Ready.
	var apps []unstructured.Unstructured
	deadline := start.Add(set.rotation - 10*time.Second)
	for {
		apps = c.listApps(ctx, b, ns)
		if countReady(apps) == set.apps {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d IdeasApps Ready after %s; the scheduled rotation (IDEAPOOL_BENCH_ROTATION=%s) would begin "+
				"before all are: raise it", countReady(apps), set.apps, time.Since(start).Round(time.Second), set.rotation)
		}
		time.Sleep(250 * time.Millisecond)
	}
	ready := time.Since(start)
	rssReady := vmHWM(b, operator.Pid)

	// One scheduled rotation across all of them: count what happens from
	// just before the first is due until the last has rotated, and how late
	// each status shows its rotation (the servers switch keys by the
	// schedule on their own; the reconcile records it and makes the next
	// key).
	firstActive := map[string]string{}
	due := map[string]time.Time{}
	var firstDue time.Time
	for _, a := range apps {
		firstActive[a.GetName()] = nestedString(a, "status", "activeKeyID")
		at, err := time.Parse(time.RFC3339, nestedString(a, "status", "nextRotationTime"))
		if err != nil {
			b.Fatalf("%s: status.nextRotationTime: %v", a.GetName(), err)
		}
		due[a.GetName()] = at
		if firstDue.IsZero() || at.Before(firstDue) {
			firstDue = at
		}
	}
	time.Sleep(time.Until(firstDue.Add(-2 * time.Second)))
	before := c.scrapeScale(ctx, b, metricsAddr)
	rotStart := time.Now()
	var lags []time.Duration
	seen := map[string]bool{}
	for len(seen) < set.apps {
		if time.Since(rotStart) > set.rotation {
			b.Fatalf("%d of %d IdeasApps rotated %s after the first was due", len(seen), set.apps, time.Since(rotStart).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond)
		now := time.Now()
		for _, a := range c.listApps(ctx, b, ns) {
			name := a.GetName()
			if kid := nestedString(a, "status", "activeKeyID"); !seen[name] && kid != "" && kid != firstActive[name] {
				seen[name] = true
				// nextRotationTime has whole seconds: the key was due up to
				// a second earlier, never later.
				lags = append(lags, max(now.Sub(due[name]), 0))
			}
		}
	}
	slices.Sort(lags)
	rotation := time.Since(rotStart)
	time.Sleep(3 * time.Second) // let the reconciles our own writes cause be counted too
	after := c.scrapeScale(ctx, b, metricsAddr)
	b.StopTimer()
	rssPeak := vmHWM(b, operator.Pid)

	n := float64(set.apps)
	d := after.sub(before)
	if d.rotations != n {
		b.Errorf("%v scheduled rotations for %d IdeasApps, want exactly one each", d.rotations, set.apps)
	}
	// One pass each does the rotation; the watch event of the keyset write
	// must not cause a second (controllers/ownwrites.go).
	if d.reconciles > 1.25*n {
		b.Errorf("%v reconciles for one rotation of %d IdeasApps, want about one each", d.reconciles, set.apps)
	}
	if d.errors > 0 || d.conflicts > n/20 {
		b.Errorf("the rotation met %v reconcile errors and %v write conflicts", d.errors, d.conflicts)
	}
	b.ReportMetric(ready.Seconds(), "s-all-ready")
	b.ReportMetric(rssPeak, "MiB-peak-rss")
	b.ReportMetric(rotation.Seconds(), "s-rotation")
	b.ReportMetric(lags[len(lags)-1].Seconds(), "s-max-rotation-lag")
	b.ReportMetric(d.reconciles/n, "reconciles/app")
	b.ReportMetric(d.conflicts, "conflicts")
	fmt.Printf("\noperator at scale: %d IdeasApps (%s keys) in one API server, one operator process\n\n", set.apps, set.algorithm)
	fmt.Printf("| measure | value |\n|---|---|\n")
	fmt.Printf("| created (%d clients) | %s |\n", set.workers, created.Round(10*time.Millisecond))
	fmt.Printf("| all Ready | %s |\n", ready.Round(10*time.Millisecond))
	fmt.Printf("| operator peak RSS when all Ready | %.1f MiB |\n", rssReady)
	fmt.Printf("| operator peak RSS after the rotation | %.1f MiB |\n", rssPeak)
	fmt.Printf("| scheduled rotation, first due to last done | %s |\n", rotation.Round(10*time.Millisecond))
	fmt.Printf("| status shows the rotation after it is due (p50, max; polled every 250 ms) | %s, %s |\n",
		lags[len(lags)/2].Round(10*time.Millisecond), lags[len(lags)-1].Round(10*time.Millisecond))
	fmt.Printf("| rotations | %.0f (%.2f per app) |\n", d.rotations, d.rotations/n)
	fmt.Printf("| reconciles during the rotation | %.0f (%.2f per app) |\n", d.reconciles, d.reconciles/n)
	fmt.Printf("| reconcile errors during the rotation | %.0f |\n", d.errors)
	fmt.Printf("| API-server 409 Conflict answers during the rotation | %.0f |\n\n", d.conflicts)
}

// scaleApp is one IdeasApp of the benchmark: SQLite, one replica, and a
// rotation interval that puts the first scheduled rotation after all exist.
func scaleApp(ns, name string, set scaleSettings) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ideapool.dev/v1alpha1",
		"kind":       "IdeasApp",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(1),
			"signingKeys": map[string]any{
				"algorithm":        set.algorithm,
				"rotationInterval": set.rotation.String(),
				"publishAhead":     "3s",
				"jwksMaxAge":       "2s",
				"clockSkew":        "1s",
			},
		},
	}}
}

func (c *cluster) listApps(ctx context.Context, tb testing.TB, ns string) []unstructured.Unstructured {
	tb.Helper()
	list, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		tb.Fatalf("list ideasapps: %v", err)
	}
	return list.Items
}

func countReady(apps []unstructured.Unstructured) int {
	n := 0
	for _, a := range apps {
		conds, _, _ := unstructured.NestedSlice(a.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" {
				n++
			}
		}
	}
	return n
}

func nestedString(u unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// markDeploymentsAvailable does the one part of the Deployment controller
// the operator waits for: every Deployment in ns is reported available
// with all its replicas ready.
func (c *cluster) markDeploymentsAvailable(ctx context.Context, tb testing.TB, ns string) {
	deps := c.client.AppsV1().Deployments(ns)
	for ctx.Err() == nil {
		list, err := deps.List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				tb.Errorf("list deployments: %v", err)
			}
			return
		}
		for i := range list.Items {
			d := &list.Items[i]
			if d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas > 0 {
				continue
			}
			replicas := int32(1)
			if d.Spec.Replicas != nil {
				replicas = *d.Spec.Replicas
			}
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
				ReadyReplicas: replicas, AvailableReplicas: replicas,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
					Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
			}
			if _, err := deps.UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				tb.Logf("mark deployment %s available: %v (retrying)", d.Name, err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// scaleCounters are the counters the rotation phase is judged by.
type scaleCounters struct {
	reconciles, errors, rotations, conflicts float64
}

func (a scaleCounters) sub(b scaleCounters) scaleCounters {
	return scaleCounters{a.reconciles - b.reconciles, a.errors - b.errors, a.rotations - b.rotations, a.conflicts - b.conflicts}
}

// scrapeScale reads the operator's counters from its /metrics and the API
// server's 409 answers from its own.
func (c *cluster) scrapeScale(ctx context.Context, tb testing.TB, operatorMetrics string) scaleCounters {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+operatorMetrics+"/metrics", nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("scrape operator metrics: %v", err)
	}
	defer resp.Body.Close()
	var op strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&op); err != nil {
		tb.Fatalf("read operator metrics: %v", err)
	}
	api, err := c.client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		tb.Fatalf("scrape API server metrics: %v", err)
	}
	return scaleCounters{
		reconciles: sumSamples(op.String(), "controller_runtime_reconcile_total", `controller="ideasapp"`),
		errors:     sumSamples(op.String(), "controller_runtime_reconcile_errors_total", `controller="ideasapp"`),
		rotations:  sumSamples(op.String(), "ideapool_key_rotations_total", `reason="Schedule"`),
		conflicts:  sumSamples(string(api), "apiserver_request_total", `code="409"`),
	}
}

// sumSamples adds up the samples of metric name in a Prometheus text
// exposition whose labels contain every one of match.
func sumSamples(text, name string, match ...string) float64 {
	var sum float64
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels, value := "", strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				continue
			}
			labels, value = rest[:end+1], strings.TrimSpace(rest[end+1:])
		}
		all := true
		for _, m := range match {
			all = all && strings.Contains(labels, m)
		}
		if !all {
			continue
		}
		if f, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			sum += f
		}
	}
	return sum
}

// vmHWM is the peak resident set of process pid, in MiB.
func vmHWM(tb testing.TB, pid int) float64 {
	tb.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("read the operator's memory: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				tb.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb / 1024
		}
	}
	tb.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
