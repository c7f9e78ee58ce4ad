//go:build cluster

package e2e_test

// TestCluster is the journey of a platform team on a real one-node
// Kubernetes (hack/cluster.sh), through helm, kubectl and the app's HTTP
// API only: `make test-cluster` (issue 13). It starts the node when none
// runs (and stops it afterwards), imports the image of `make image`, and
// prints a summary: each step, its time and the verifiers' counts.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	jNS        = "ideapool-system" // the chart's namespace
	jRelease   = "ideapool"
	jApp       = "ideapool" // the chart's IdeasApp: the release's full name
	jClientNS  = "journey"  // where the verifiers run, as another team's services
	jPGNS      = "journey-pg"
	jPGApp     = "pool"
	jH4NS      = "journey-h4"
	jH4Release = "ideapool4"
	jCRD       = "ideasapps.ideapool.dev"
	jChart     = "charts/ideapool"
	appPods    = "app.kubernetes.io/name=ideapool,app.kubernetes.io/instance="
	opPods     = "app.kubernetes.io/name=ideapool-operator,app.kubernetes.io/instance=" + jRelease
)

// journeyValues is the platform team's values file: the chart's defaults
// but for key timings short enough that rotations happen within the
// journey (a key is published 15 s before it signs and signs for 45 s).
const journeyValues = `app:
  spec:
    tokens:
      idTokenTTL: 2m
    signingKeys:
      rotationInterval: 45s
      publishAhead: 15s
      jwksMaxAge: 10s
      clockSkew: 5s
`

// journeyStep is one line of the summary.
type journeyStep struct {
	name   string
	took   time.Duration
	failed bool
	counts []string // the verifiers' counts during the step
	note   string
}

type journey struct {
	*node
	t      *testing.T
	values string // path of journeyValues
	image  string // the chart's default image, as imported
	steps  []*journeyStep
	// What steps hand to later steps.
	ttl      time.Duration // the chart app's access token lifetime now
	user     *user         // signed up in step 2
	ideas    []string      // user's ideas
	verifier *loadVerifier
	others   []*loadVerifier
}

func TestCluster(t *testing.T) {
	j := setUpJourney(t)
	defer j.summary()
	j.step("1 helm install (Helm 3, fresh cluster)", j.install)
	j.step("2 basics through the Service", j.basics)
	j.step("3 verifier pod", j.startVerifier)
	j.step("4 keys: requested, scheduled, revoked", j.keys)
	j.step("5 helm upgrade, rollback (Helm 3 and 4)", j.upgrade)
	j.step("6 delete the SQLite pod", j.deleteSQLitePod)
	j.step("7 PostgreSQL, 2 replicas: delete, evict", j.postgres)
	j.step("8 operator failover", j.operatorFailover)
	j.step("9 helm uninstall", j.uninstall)
	j.step("5 helm upgrade (Helm 4, fresh install)", j.helm4Fresh)
}

// step runs f as a subtest, timing it; a failed step fails the test but
// the journey goes on where it can (a Fatal inside ends only that step).
func (j *journey) step(name string, f func(t *testing.T, s *journeyStep)) {
	s := &journeyStep{name: name}
	j.steps = append(j.steps, s)
	start := time.Now()
	ok := j.t.Run(name, func(t *testing.T) {
		saved := j.node.t
		j.node.t = t
		defer func() { j.node.t = saved }()
		f(t, s)
	})
	s.took, s.failed = time.Since(start), !ok
}

func (j *journey) summary() {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-44s %9s  %s\n", "step", "took", "result")
	var total time.Duration
	for _, s := range j.steps {
		total += s.took
		res := "ok"
		if s.failed {
			res = "FAILED"
		}
		if s.note != "" {
			res += " (" + s.note + ")"
		}
		fmt.Fprintf(&b, "%-44s %8.1fs  %s\n", s.name, s.took.Seconds(), res)
		for _, c := range s.counts {
			fmt.Fprintf(&b, "%-44s %9s    %s\n", "", "", c)
		}
	}
	fmt.Fprintf(&b, "%-44s %8.1fs\n", "total", total.Seconds())
	fmt.Print(b.String())
}

func setUpJourney(t *testing.T) *journey {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tar := os.Getenv("IDEAPOOL_IMAGE_TAR")
	h3, h4 := os.Getenv("IDEAPOOL_HELM3"), os.Getenv("IDEAPOOL_HELM4")
	if tar == "" || h3 == "" || h4 == "" {
		t.Fatal("IDEAPOOL_IMAGE_TAR, IDEAPOOL_HELM3 and IDEAPOOL_HELM4 must be set: run `make test-cluster`")
	}
	if !filepath.IsAbs(tar) {
		tar = filepath.Join(root, tar)
	}
	assets, err := exec.Command(filepath.Join(root, "hack/envtest-assets.sh")).Output()
	if err != nil {
		t.Fatalf("hack/envtest-assets.sh: %v", err)
	}
	cache := os.Getenv("IDEAPOOL_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "ideapool")
	}
	n := &node{t: t, root: root, kubeconfig: filepath.Join(cache, "cluster", "kubeconfig"),
		kubectl: filepath.Join(strings.TrimSpace(string(assets)), "kubectl"), helm: map[int]string{3: h3, 4: h4}}

	clusterSh := filepath.Join(root, "hack/cluster.sh")
	start := time.Now()
	if err := exec.Command(clusterSh, "status").Run(); err == nil {
		t.Log("a node is running: using it (hack/cluster.sh load)")
		if out, err := n.run(clusterSh, "load", tar); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	} else {
		if out, err := n.run(clusterSh, "up", tar); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if os.Getenv("IDEAPOOL_CLUSTER_KEEP") == "" {
			t.Cleanup(func() {
				if out, err := n.run(clusterSh, "down"); err != nil {
					t.Errorf("%v\n%s", err, out)
				}
			})
		}
	}
	t.Logf("node ready after %s", time.Since(start).Round(100*time.Millisecond))
	useClusterDNS()

	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(journeyValues), 0o644); err != nil {
		t.Fatal(err)
	}
	image := chartDefaultImage(t, root)
	j := &journey{node: n, t: t, values: values, image: image, ttl: 10 * time.Minute}
	// A clean slate: nothing of an earlier journey on a reused node, and no
	// IdeasApp CRD, so that step 1 is the first install a cluster sees.
	j.deleteAndWait("namespace", jNS, jClientNS, jPGNS, jH4NS)
	j.deleteAndWait("crd", jCRD)
	j.deleteAndWait("clusterrole,clusterrolebinding", "-l", "app.kubernetes.io/managed-by=Helm")
	return j
}

// chartDefaultImage is what `helm template` renders for the operator image.
func chartDefaultImage(t *testing.T, root string) string {
	var chart, values struct {
		AppVersion string `json:"appVersion"`
		Image      struct {
			Repository string `json:"repository"`
		} `json:"image"`
	}
	for f, v := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		b, err := os.ReadFile(filepath.Join(root, jChart, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return values.Image.Repository + ":" + chart.AppVersion
}

// ---- step 1 ----------------------------------------------------------------

func (j *journey) install(t *testing.T, s *journeyStep) {
	// The platform team's namespace enforces the restricted Pod Security
	// Standard: every pod of the chart and of the operator must comply.
	j.restrictedNamespace(jNS)
	if out, err := j.helmRun(3, "install", jRelease, jChart, "-n", jNS, "-f", j.values, "--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("helm install: %v", err)
	} else if strings.Contains(out, "Warning") {
		t.Errorf("helm install warned:\n%s", out)
	}
	ops := j.waitReadyPods(jNS, opPods, 1, 2*time.Minute)
	for _, c := range ops[0].Spec.Containers {
		if c.Image != j.image || c.ImagePullPolicy != "IfNotPresent" {
			t.Errorf("operator container: image %s (%s), want %s (IfNotPresent)", c.Image, c.ImagePullPolicy, j.image)
		}
	}
	j.waitIdeasAppReady(jNS, jApp, 2*time.Minute)
	pods := j.waitReadyPods(jNS, appPods+jApp, 1, 2*time.Minute)
	if img := pods[0].Spec.Containers[0].Image; img != j.image {
		t.Errorf("app pod runs %s, want the operator's own image %s", img, j.image)
	}
	var pvc struct {
		Status struct {
			Phase string `json:"phase"`
		} `json:"status"`
	}
	j.kJSON(&pvc, "-n", jNS, "get", "pvc", jApp+"-data")
	if pvc.Status.Phase != "Bound" {
		t.Errorf("PVC %s-data is %s, want Bound", jApp, pvc.Status.Phase)
	}
	// helm test runs the chart's own check (its /readyz and JWKS).
	if out, err := j.helmRun(3, "test", jRelease, "-n", jNS, "--timeout", "3m"); err != nil {
		t.Errorf("helm test: %v\n%s", err, out)
	}
}

// ---- step 2 ----------------------------------------------------------------

// service is the e2e suite's client of an IdeasApp's Service; the chart's
// app issues tokens of j.ttl, others of the default 10m.
func (j *journey) service(app, ns string) *server {
	base := "http://" + app + "." + ns + ".svc"
	ttl := 10 * time.Minute
	if app == jApp && ns == jNS {
		ttl = j.ttl
	}
	return &server{Base: base, Issuer: base, TTL: ttl}
}

func (j *journey) basics(t *testing.T, s *journeyStep) {
	srv := j.service(jApp, jNS)
	// A new Service needs a moment before its rules exist on the node.
	eventually(t, 30*time.Second, "the app's Service answers", func() error {
		code, err := get(srv.Base+"/readyz", "")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/readyz: %d", code)
		}
		return err
	})
	for name, f := range map[string]func(*testing.T, *server){
		"Signup": testSignup, "Login": testLogin, "Refresh": testRefresh, "Me": testMe,
		"IdeaCreate": testIdeaCreate, "IdeaPaging": testIdeaPaging, "Discovery": testDiscovery, "JWKS": testJWKS,
	} {
		t.Run(name, func(t *testing.T) { f(t, srv) })
	}
	// What step 6 expects to find after the pod is replaced.
	j.user = srv.signup(t, "journey")
	for i := range 3 {
		j.ideas = append(j.ideas, srv.createIdea(t, j.user.JWT, fmt.Sprintf("journey idea %d", i), 9-i, 8, 7).ID)
	}

	// kubectl port-forward, logs and exec work against the node.
	base, stop := j.portForward(jNS, "svc/"+jApp, "80")
	defer stop()
	if code, err := get(base+"/readyz", ""); err != nil || code != http.StatusOK {
		t.Errorf("/readyz through kubectl port-forward: %d %v", code, err)
	}
	if out := j.k("-n", jNS, "logs", "deploy/"+jApp); !strings.Contains(out, `"msg":"serving"`) {
		t.Errorf("kubectl logs of the app lacks its start line:\n%.2000s", out)
	}
	if out := j.k("-n", jNS, "exec", "deploy/"+jApp, "--", "/usr/local/bin/kubectl-ideapool", "--help"); !strings.Contains(out, "kubectl ideapool") {
		t.Errorf("kubectl exec of the plugin beside the binary: %s", out)
	}
	if out := j.k("-n", jNS, "exec", "deploy/"+jApp, "--", "/usr/local/bin/ideapool", "version"); !strings.HasPrefix(out, "ideapool ") {
		t.Errorf("kubectl exec ideapool version: %s", out)
	}
}

// ---- step 3 ----------------------------------------------------------------

func (j *journey) startVerifier(t *testing.T, s *journeyStep) {
	j.restrictedNamespace(jClientNS)
	j.verifier = j.node.startVerifier(jClientNS, "verify-load", "http://"+jApp+"."+jNS+".svc", j.image)
	c := j.verifier.counts()
	s.counts = append(s.counts, "verifier: "+c.String())
	if c.Failures != 0 || c.UnknownKid != 0 || c.Status5xx != 0 {
		t.Errorf("verifier from its start: %s (last failure %q, last error %q)", c, c.LastFailure, c.LastError)
	}
}

// underLoad runs f and checks what the verifiers saw meanwhile: no
// verification failure, no unknown kid, no 5xx, and no request without an
// answer unless allowErrors (a step that names an outage).
func (j *journey) underLoad(t *testing.T, s *journeyStep, allowErrors bool, f func()) (deltas []counts) {
	vs := append([]*loadVerifier{j.verifier}, j.others...)
	before := make([]counts, len(vs))
	for i, v := range vs {
		if v != nil {
			before[i] = v.counts()
		}
	}
	defer func() {
		for i, v := range vs {
			if v == nil {
				continue
			}
			d := v.counts().minus(before[i])
			deltas = append(deltas, d)
			s.counts = append(s.counts, v.name+": "+d.String())
			switch {
			case d.Tokens == 0:
				t.Errorf("verifier %s obtained no token during the step: %s (last error %q)", v.name, d, d.LastError)
			case d.Failures != 0 || d.UnknownKid != 0 || d.Status5xx != 0 || d.Status4xx != 0:
				t.Errorf("verifier %s: %s (last failure %q, last error %q)", v.name, d, d.LastFailure, d.LastError)
			case d.RequestErrors != 0 && !allowErrors:
				t.Errorf("verifier %s: %d requests without an answer: %s (last error %q)", v.name, d.RequestErrors, d, d.LastError)
			}
		}
	}()
	f()
	// Let the load run on a little after the step's change.
	time.Sleep(3 * time.Second)
	return nil // the deferred counts fill deltas
}

// ---- step 4 ----------------------------------------------------------------

func (j *journey) annotate(ns, app, key, value string) {
	j.k("-n", ns, "annotate", "ideasapp", app, key+"="+value, "--overwrite")
}

func (j *journey) keys(t *testing.T, s *journeyStep) {
	srv := j.service(jApp, jNS)
	d := j.underLoad(t, s, false, func() {
		// A token of the key that signs now: it must outlive that key's
		// retirement, and die with its revocation.
		old := srv.signup(t, "old-key")
		oldKid := kid(t, old.JWT)

		// Requested rotation.
		req := fmt.Sprint(time.Now().UnixNano())
		j.annotate(jNS, jApp, "ideapool.dev/rotate-keys", req)
		var requested string
		eventually(t, time.Minute, "requested rotation", func() error {
			a, err := j.ideasApp(jNS, jApp)
			if err != nil {
				return err
			}
			if a.Status.LastRotateRequest != req || a.Status.ActiveKeyID == oldKid {
				return fmt.Errorf("lastRotateRequest %q, active %s", a.Status.LastRotateRequest, a.Status.ActiveKeyID)
			}
			requested = a.Status.ActiveKeyID
			return nil
		})
		// Scheduled rotation: the next key takes over by itself.
		eventually(t, 90*time.Second, "scheduled rotation", func() error {
			a, err := j.ideasApp(jNS, jApp)
			if err != nil {
				return err
			}
			if a.Status.ActiveKeyID == requested {
				return fmt.Errorf("still %s", requested)
			}
			return nil
		})
		// The retired key's token still works on every pod...
		pods := j.readyPods(jNS, appPods+jApp)
		for _, p := range pods {
			if code, err := get("http://"+p.Status.PodIP+":8080/me", old.JWT); err != nil || code != http.StatusOK {
				t.Errorf("pod %s: GET /me with a token of the retired key %s: %d %v", p.Metadata.Name, oldKid, code, err)
			}
		}
		// ... until the key is revoked: then every pod refuses it within 5 s.
		j.annotate(jNS, jApp, "ideapool.dev/revoke-key", oldKid)
		start := time.Now()
		for _, p := range pods {
			eventually(t, 30*time.Second, "pod "+p.Metadata.Name+" refuses the revoked key", func() error {
				code, err := get("http://"+p.Status.PodIP+":8080/me", old.JWT)
				if err == nil && code != http.StatusUnauthorized {
					err = fmt.Errorf("GET /me: %d", code)
				}
				return err
			})
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the revoked key's token was refused by every pod %s after the annotation; want within 5 s", took.Round(100*time.Millisecond))
		} else {
			s.note = fmt.Sprintf("revoked key refused after %s", took.Round(100*time.Millisecond))
		}
		_, keys := srv.jwkSet(t)
		for _, k := range keys {
			if k["kid"] == oldKid {
				t.Errorf("the revoked key %s is still in the JWKS", oldKid)
			}
		}
	})
	// The verifier saw the rotations: tokens of several keys verified.
	if len(d) > 0 && len(d[0].ByKid) < 3 {
		t.Errorf("the verifier verified tokens of %d keys during two rotations, want at least 3", len(d[0].ByKid))
	}
}

// ---- step 5 ----------------------------------------------------------------

// tokenLifetime waits until fresh tokens from the app's Service live ttl.
func (j *journey) tokenLifetime(t *testing.T, app, ns string, ttl time.Duration) {
	base := "http://" + app + "." + ns + ".svc"
	eventually(t, time.Minute, fmt.Sprintf("fresh tokens of %s/%s live %s", ns, app, ttl), func() error {
		body := fmt.Sprintf(`{"email":%q,"name":"TTL","password":%q}`, uniqueEmail("ttl"), goodPassword+"ttl")
		resp, err := httpClient.Post(base+"/users", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var tok struct {
			JWT string `json:"jwt"`
		}
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("signup: status %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
			return fmt.Errorf("signup: %w", err)
		}
		if got := lifetime(t, tok.JWT); got != ttl {
			return fmt.Errorf("a fresh token lives %s", got)
		}
		return nil
	})
}

// upgradeTTL runs the plain `helm upgrade --set
// app.spec.tokens.accessTokenTTL=...` (with the team's values file) and
// checks the running pods issue tokens of that lifetime.
func (j *journey) upgradeTTL(t *testing.T, major int, release, ns, app string, ttl time.Duration) {
	if out, err := j.helmRun(major, "upgrade", release, jChart, "-n", ns, "-f", j.values,
		"--set", "app.spec.tokens.accessTokenTTL="+ttl.String(), "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm %d upgrade: %v\n%s", major, err, out)
	}
	eventually(t, 30*time.Second, fmt.Sprintf("helm %d upgrade reaches the IdeasApp", major), func() error {
		a, err := j.ideasApp(ns, app)
		if err != nil {
			return err
		}
		if d, err := time.ParseDuration(a.Spec.Tokens.AccessTokenTTL); err != nil || d != ttl {
			return fmt.Errorf("spec.tokens.accessTokenTTL is %q, want %s", a.Spec.Tokens.AccessTokenTTL, ttl)
		}
		return nil
	})
	j.tokenLifetime(t, app, ns, ttl)
}

func (j *journey) upgrade(t *testing.T, s *journeyStep) {
	j.underLoad(t, s, false, func() {
		before, err := j.ideasApp(jNS, jApp)
		if err != nil {
			t.Fatal(err)
		}
		// Whatever the outcome, later steps expect the lifetime in force.
		defer j.readTTL(t)
		t.Run("Helm3", func(t *testing.T) { j.upgradeTTL(t, 3, jRelease, jNS, jApp, 7*time.Minute) })
		t.Run("Helm4", func(t *testing.T) { j.upgradeTTL(t, 4, jRelease, jNS, jApp, 8*time.Minute) })
		// A rollback to the first revision keeps the IdeasApp (the same
		// object: its keys and database) and the users in it.
		if out, err := j.helmRun(3, "rollback", jRelease, "1", "-n", jNS, "--wait"); err != nil {
			t.Fatalf("helm rollback: %v\n%s", err, out)
		}
		after, err := j.ideasApp(jNS, jApp)
		if err != nil || after.Metadata.UID != before.Metadata.UID {
			t.Fatalf("after helm rollback the IdeasApp is gone or replaced (uid %s, was %s): %v", after.Metadata.UID, before.Metadata.UID, err)
		}
		srv := j.service(jApp, jNS)
		must(t, srv.login(t, j.user.Email, j.user.Password), http.StatusCreated)
	})
}

// readTTL sets j.ttl from the chart app's spec.
func (j *journey) readTTL(t *testing.T) {
	a, err := j.ideasApp(jNS, jApp)
	if err != nil {
		t.Error(err)
		return
	}
	if d, err := time.ParseDuration(a.Spec.Tokens.AccessTokenTTL); err == nil {
		j.ttl = d
	}
}

// ---- step 6 ----------------------------------------------------------------

func (j *journey) deleteSQLitePod(t *testing.T, s *journeyStep) {
	srv := j.service(jApp, jNS)
	// The single SQLite pod is replaced (Recreate): the API is briefly
	// unavailable, which this step names; nothing may fail otherwise.
	j.underLoad(t, s, true, func() {
		old := j.readyPods(jNS, appPods+jApp)
		if len(old) != 1 {
			t.Fatalf("%d Ready app pods, want 1", len(old))
		}
		j.k("-n", jNS, "delete", "pod", old[0].Metadata.Name, "--wait=false")
		var now []pod
		eventually(t, 2*time.Minute, "a new app pod Ready", func() error {
			now = j.readyPods(jNS, appPods+jApp)
			if len(now) != 1 || now[0].Metadata.UID == old[0].Metadata.UID {
				return fmt.Errorf("%d Ready pods", len(now))
			}
			return nil
		})
		claim := func(p pod) string {
			for _, v := range p.Spec.Volumes {
				if v.PersistentVolumeClaim != nil {
					return v.PersistentVolumeClaim.ClaimName
				}
			}
			return ""
		}
		if claim(now[0]) != claim(old[0]) || claim(now[0]) == "" {
			t.Errorf("the new pod uses claim %q, the old one %q", claim(now[0]), claim(old[0]))
		}
		eventually(t, 30*time.Second, "the Service answers again", func() error {
			code, err := get(srv.Base+"/readyz", "")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("/readyz: %d", code)
			}
			return err
		})
		// Users, sessions and ideas are all there.
		must(t, srv.login(t, j.user.Email, j.user.Password), http.StatusCreated)
		r := srv.refresh(t, j.user.Refresh)
		must(t, r, http.StatusOK)
		var fresh struct {
			JWT string `json:"jwt"`
		}
		r.decode(t, &fresh)
		have := map[string]bool{}
		for _, i := range srv.listIdeas(t, fresh.JWT, "?page=1") {
			have[i.ID] = true
		}
		for _, id := range j.ideas {
			if !have[id] {
				t.Errorf("idea %s is gone after the pod was replaced", id)
			}
		}
		if acked, missing := j.verifier.audit(); len(missing) != 0 {
			t.Errorf("%d of %d acknowledged ideas of the verifier are gone: %v", len(missing), acked, missing)
		}
	})
}

// ---- step 7 ----------------------------------------------------------------

func (j *journey) postgres(t *testing.T, s *journeyStep) {
	ip := nodeIP(t)
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("ideapool-journey-pg-%d", os.Getpid()))
	pgInstance := filepath.Join(j.root, "hack/pg-instance.sh")
	port := fmt.Sprint(freePort(t))
	url, err := j.run(pgInstance, "start", dir, port, ip, clusterPodCIDR)
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL outlives this step: its verifier runs through step 8.
	j.t.Cleanup(func() {
		_, _ = j.run(j.kubectl, "delete", "namespace", jPGNS, "--ignore-not-found", "--wait=true", "--timeout=120s")
		_, _ = j.run(pgInstance, "remove", dir)
	})
	url = strings.TrimSpace(url)

	j.restrictedNamespace(jPGNS)
	j.k("-n", jPGNS, "create", "secret", "generic", jPGApp+"-db", "--from-literal=url="+url)
	j.apply(fmt.Sprintf(`apiVersion: ideapool.dev/v1alpha1
kind: IdeasApp
metadata:
  name: %s
  namespace: %s
spec:
  database:
    postgres:
      urlSecretRef: {name: %[1]s-db, key: url}
  tokens: {idTokenTTL: 2m}
  signingKeys: {rotationInterval: 45s, publishAhead: 15s, jwksMaxAge: 10s, clockSkew: 5s}
`, jPGApp, jPGNS))
	j.waitIdeasAppReady(jPGNS, jPGApp, 2*time.Minute)
	pods := j.waitReadyPods(jPGNS, appPods+jPGApp, 2, 2*time.Minute)
	var pdb struct {
		Spec struct {
			MaxUnavailable any `json:"maxUnavailable"`
			MinAvailable   any `json:"minAvailable"`
		} `json:"spec"`
	}
	j.kJSON(&pdb, "-n", jPGNS, "get", "pdb", jPGApp)

	pg := j.node.startVerifier(jClientNS, "verify-load-pg", "http://"+jPGApp+"."+jPGNS+".svc", j.image)
	j.others = append(j.others, pg)
	j.underLoad(t, s, false, func() {
		time.Sleep(3 * time.Second)
		j.k("-n", jPGNS, "delete", "pod", pods[0].Metadata.Name, "--wait=false")
		pods = j.waitReadyPods(jPGNS, appPods+jPGApp, 2, 2*time.Minute)

		// kubectl drain evicts; the budget lets one pod go at a time.
		evict := func(p pod) (string, error) {
			body := fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}`, p.Metadata.Name, jPGNS)
			return j.kStdin(body, "create", "--raw", "/api/v1/namespaces/"+jPGNS+"/pods/"+p.Metadata.Name+"/eviction", "-f", "-")
		}
		if out, err := evict(pods[0]); err != nil {
			t.Errorf("evicting one of two pods: %v %s", err, out)
		}
		if out, err := evict(pods[1]); err == nil || !strings.Contains(out, "disruption budget") {
			t.Errorf("evicting the second pod at once was not refused by the PodDisruptionBudget: %v %s", err, out)
		}
		j.waitReadyPods(jPGNS, appPods+jPGApp, 2, 2*time.Minute)
	})
	if acked, missing := pg.audit(); len(missing) != 0 || acked == 0 {
		t.Errorf("%d of %d acknowledged ideas are gone: %v", len(missing), acked, missing)
	} else {
		s.note = fmt.Sprintf("%d acknowledged writes all there; PDB %v", acked, pdb.Spec)
	}
}

func nodeIP(t *testing.T) string {
	out, err := exec.Command("ip", "-4", "route", "get", "1.1.1.1").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "src" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no source address in %q", out)
	return ""
}

// ---- step 8 ----------------------------------------------------------------

type lease struct {
	Spec struct {
		HolderIdentity       string `json:"holderIdentity"`
		LeaseDurationSeconds int    `json:"leaseDurationSeconds"`
	} `json:"spec"`
}

func (j *journey) operatorFailover(t *testing.T, s *journeyStep) {
	j.underLoad(t, s, false, func() {
		if out, err := j.helmRun(3, "upgrade", jRelease, jChart, "-n", jNS, "-f", j.values, "--set", "replicaCount=2", "--wait", "--timeout", "3m"); err != nil {
			t.Fatalf("helm upgrade --set replicaCount=2: %v\n%s", err, out)
		}
		ops := j.waitReadyPods(jNS, opPods, 2, 2*time.Minute)
		var l lease
		j.kJSON(&l, "-n", jNS, "get", "lease", "ideapool-operator.ideapool.dev")
		leader, other := ops[0], ops[1]
		if !strings.HasPrefix(l.Spec.HolderIdentity, leader.Metadata.Name) {
			leader, other = other, leader
		}
		if !strings.HasPrefix(l.Spec.HolderIdentity, leader.Metadata.Name) {
			t.Fatalf("lease held by %q, neither operator pod", l.Spec.HolderIdentity)
		}
		j.k("-n", jNS, "delete", "pod", leader.Metadata.Name, "--wait=false")
		// The leader releases the lease as it stops; the standby, or the
		// pod replacing the leader if it asks first, takes it.
		var holder string
		took := eventually(t, 2*time.Minute, "another operator pod takes the lease", func() error {
			var now lease
			out, err := j.kTry("-n", jNS, "get", "lease", "ideapool-operator.ideapool.dev", "-o", "json")
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(out), &now); err != nil {
				return err
			}
			holder = now.Spec.HolderIdentity
			if holder == "" || strings.HasPrefix(holder, leader.Metadata.Name+"_") {
				return fmt.Errorf("held by %q", holder)
			}
			return nil
		})
		who := "the replacement pod"
		if strings.HasPrefix(holder, other.Metadata.Name+"_") {
			who = "the standby"
		}
		s.note = fmt.Sprintf("%s leads after %s (lease %ds)", who, took.Round(100*time.Millisecond), l.Spec.LeaseDurationSeconds)
		if took > time.Duration(l.Spec.LeaseDurationSeconds)*time.Second {
			t.Errorf("a new leader took the lease after %s, more than the lease time %ds", took, l.Spec.LeaseDurationSeconds)
		}
		// The new leader handles a requested rotation.
		a, err := j.ideasApp(jNS, jApp)
		if err != nil {
			t.Fatal(err)
		}
		req := fmt.Sprint(time.Now().UnixNano())
		j.annotate(jNS, jApp, "ideapool.dev/rotate-keys", req)
		eventually(t, time.Minute, "a rotation requested after the failover", func() error {
			b, err := j.ideasApp(jNS, jApp)
			if err != nil {
				return err
			}
			if b.Status.LastRotateRequest != req || b.Status.ActiveKeyID == a.Status.ActiveKeyID {
				return fmt.Errorf("lastRotateRequest %q, active %s", b.Status.LastRotateRequest, b.Status.ActiveKeyID)
			}
			return nil
		})
	})
}

// ---- step 9 ----------------------------------------------------------------

func (j *journey) uninstall(t *testing.T, s *journeyStep) {
	// The verifiers' part ends with step 8.
	j.deleteAndWait("namespace", jClientNS)
	j.verifier, j.others = nil, nil

	if out, err := j.helmRun(3, "uninstall", jRelease, "-n", jNS, "--wait"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	// Kept, as the README says: the CRD, the IdeasApp and its data.
	j.k("get", "crd", jCRD)
	j.k("-n", jNS, "get", "ideasapp", jApp)
	j.k("-n", jNS, "get", "pvc", jApp+"-data")
	j.k("-n", jNS, "get", "secret", jApp+"-keyset")
	// Nothing else of the release remains, namespaced or cluster-wide (the
	// operator's pods may take their grace period to go).
	kinds := strings.Join(strings.Fields(j.kStdout("api-resources", "--verbs=list", "-o", "name")), ",")
	eventually(t, time.Minute, "nothing of the release left", func() error {
		out := j.kStdout("get", kinds, "-A", "-l", "app.kubernetes.io/managed-by=Helm,app.kubernetes.io/instance="+jRelease,
			"-o", "custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name", "--no-headers", "--ignore-not-found")
		var left []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" || strings.HasPrefix(line, "IdeasApp ") || strings.HasPrefix(line, "CustomResourceDefinition ") {
				continue
			}
			left = append(left, strings.Join(strings.Fields(line), " "))
		}
		if len(left) > 0 {
			return fmt.Errorf("left behind by helm uninstall: %s", strings.Join(left, "; "))
		}
		return nil
	})
	if out := j.k("-n", jNS, "get", "secrets", "-l", "owner=helm", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("helm release records left: %s", out)
	}
	// The app still serves its users; deleting the IdeasApp removes it and
	// its data.
	srv := j.service(jApp, jNS)
	must(t, srv.login(t, j.user.Email, j.user.Password), http.StatusCreated)
	j.deleteAndWait("-n", jNS, "ideasapp", jApp)
	eventually(t, time.Minute, "the IdeasApp's children are collected", func() error {
		out, err := j.kTry("-n", jNS, "get", "deploy,svc,pvc,secret,configmap,sa,role,rolebinding", "-l", appPods+jApp, "-o", "name")
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("still there: %s", out)
		}
		return err
	})
}

// ---- step 5, Helm 4 after its own fresh install ------------------------------

func (j *journey) helm4Fresh(t *testing.T, s *journeyStep) {
	// A cluster that has never had the CRD, again.
	j.deleteAndWait("crd", jCRD)
	j.restrictedNamespace(jH4NS)
	if out, err := j.helmRun(4, "install", jH4Release, jChart, "-n", jH4NS, "-f", j.values, "--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("helm 4 install: %v\n%s", err, out)
	}
	j.waitIdeasAppReady(jH4NS, jH4Release, 2*time.Minute)
	j.waitReadyPods(jH4NS, appPods+jH4Release, 1, 2*time.Minute)
	j.upgradeTTL(t, 4, jH4Release, jH4NS, jH4Release, 9*time.Minute)
	if out, err := j.helmRun(4, "uninstall", jH4Release, "-n", jH4NS, "--wait"); err != nil {
		t.Errorf("helm 4 uninstall: %v\n%s", err, out)
	}
	j.deleteAndWait("-n", jH4NS, "ideasapp", "--all")
	j.deleteAndWait("namespace", jH4NS)
	j.deleteAndWait("crd", jCRD)
}
