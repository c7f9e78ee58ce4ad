package e2e_test

// The operator end to end: a real API server (envtest), `ideapool operator`
// and `ideapool serve` as the Deployment would run it, both as processes;
// rotation and revocation through `kubectl annotate`, as a person would
// type them; tokens checked by a verifier that caches the JWKS for its
// max-age and never refetches it for an unknown kid, as a strict verifier
// in another service would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Short key timings so that a requested rotation completes in seconds:
// a Next key may sign once published for jwksMaxAge + clockSkew = 3s.
const (
	opJWKSMaxAge = 2 * time.Second
	opAccessTTL  = 2 * time.Minute // differs from the flag default: proves the ConfigMap applies
	opAppName    = "pool"
)

var ideasAppsGVR = schema.GroupVersionResource{Group: "ideapool.dev", Version: "v1alpha1", Resource: "ideasapps"}

// cluster is an envtest API server with the IdeasApp CRD and a kubeconfig
// file for processes.
type cluster struct {
	kubeconfig string // admin
	dir        string
	assets     string
	client     kubernetes.Interface
	dynamic    dynamic.Interface
	rawConfig  []byte
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	return startClusterWith(t, nil)
}

// startClusterWith is startCluster with configure applied to the
// environment before it starts (kube-apiserver flags, say).
func startClusterWith(t testing.TB, configure func(*envtest.Environment)) *cluster {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or `KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./e2e/` " +
			"(it builds kube-apiserver, etcd and kubectl once, then caches them)")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime's logger
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	if configure != nil {
		configure(env)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stop envtest: %v", err)
		}
	})
	user, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("envtest user: %v", err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("envtest kubeconfig: %v", err)
	}
	c := &cluster{dir: t.TempDir(), assets: assets, rawConfig: raw,
		client: kubernetes.NewForConfigOrDie(cfg), dynamic: dynamic.NewForConfigOrDie(cfg)}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// kubeconfigAs writes a kubeconfig that impersonates a ServiceAccount, so a
// process has exactly the permissions the operator's Role gives the pods.
func (c *cluster) kubeconfigAs(t *testing.T, namespace, serviceAccount string) string {
	t.Helper()
	cfg, err := clientcmd.Load(c.rawConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = "system:serviceaccount:" + namespace + ":" + serviceAccount
		a.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	}
	path := filepath.Join(c.dir, "kubeconfig-"+serviceAccount)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectl runs the kubectl of the envtest assets as the admin, with the
// plugin directory first on PATH, and returns its standard output.
func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.assets, "kubectl"), args...)
	cmd.Env = append(cleanEnv(), "KUBECONFIG="+c.kubeconfig,
		"PATH="+filepath.Join(c.dir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// startOperator runs `ideapool operator` against the cluster until the test
// ends, and checks it stops cleanly on SIGTERM.
func (c *cluster) startOperator(t testing.TB) *syncBuffer {
	t.Helper()
	logs, _ := c.runOperator(t)
	return logs
}

// runOperator is startOperator with extra flags (a later flag wins); it
// also returns the process, whose memory a benchmark reads.
func (c *cluster) runOperator(t testing.TB, extra ...string) (*syncBuffer, *os.Process) {
	t.Helper()
	logs := &syncBuffer{}
	args := append([]string{"operator", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--leader-elect=false", "--app-image=example.com/ideapool:e2e"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), "KUBECONFIG="+c.kubeconfig)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start operator: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("operator exited with %v after SIGTERM\n%s", err, logs)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("operator did not stop within 15 s of SIGTERM\n%s", logs)
		}
		if t.Failed() {
			t.Logf("operator logs:\n%s", logs)
		}
	})
	return logs, cmd.Process
}

// appKey is one row of the IdeasApp's status.keys.
type appKey struct {
	KID   string `json:"kid"`
	State string `json:"state"`
}

type appStatus struct {
	ActiveKeyID string   `json:"activeKeyID"`
	Keys        []appKey `json:"keys"`
}

func (c *cluster) status(t *testing.T, ns string) appStatus {
	t.Helper()
	u, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns).Get(context.Background(), opAppName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get ideasapp: %v", err)
	}
	b, _ := json.Marshal(u.Object["status"])
	var s appStatus
	_ = json.Unmarshal(b, &s)
	return s
}

func (s appStatus) kid(state string) string {
	for _, k := range s.Keys {
		if k.State == state {
			return k.KID
		}
	}
	return ""
}

// issued is a token handed out during the test.
type issued struct {
	raw string
	kid string
	exp time.Time
}

// tokenLedger remembers every access token issued and checks, on every JWKS
// fetch, that no unexpired one lacks its key (except a revoked key's).
type tokenLedger struct {
	mu       sync.Mutex
	tokens   []issued
	revoked  map[string]bool
	failures []string
}

func (l *tokenLedger) add(tok issued) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, tok)
}

func (l *tokenLedger) revoke(kid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked[kid] = true
}

func (l *tokenLedger) check(published []string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tok := range l.tokens {
		if now.Before(tok.exp) && !l.revoked[tok.kid] && !slices.Contains(published, tok.kid) {
			l.failures = append(l.failures, fmt.Sprintf("%s: the JWKS %v lacks key %s of a token valid until %s",
				now.Format(time.RFC3339Nano), published, tok.kid, tok.exp.Format(time.RFC3339)))
		}
	}
}

// watchJWKS fetches the JWKS every 100ms until ctx ends.
func watchJWKS(ctx context.Context, t *testing.T, url string, ledger *tokenLedger) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 2 * time.Second}
		for ctx.Err() == nil {
			resp, err := client.Get(url)
			if err == nil {
				var set struct {
					Keys []struct {
						KID string `json:"kid"`
					} `json:"keys"`
				}
				err = json.NewDecoder(resp.Body).Decode(&set)
				resp.Body.Close()
				if err == nil {
					kids := make([]string, len(set.Keys))
					for i, k := range set.Keys {
						kids[i] = k.KID
					}
					ledger.check(kids, time.Now())
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return done
}

func TestOperatorRotationEndToEnd(t *testing.T) {
	start := time.Now()
	c := startCluster(t)
	ns := "e2e-operator"
	if _, err := c.client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The plugin is the same binary under the name kubectl looks for.
	if err := os.MkdirAll(filepath.Join(c.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(c.dir, "bin", "kubectl-ideapool")); err != nil {
		t.Fatal(err)
	}
	c.startOperator(t)

	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	c.kubectl(t, fmt.Sprintf(`apiVersion: ideapool.dev/v1alpha1
kind: IdeasApp
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 1
  issuer: %s
  tokens:
    accessTokenTTL: %s
  signingKeys:
    algorithm: ES256
    rotationInterval: 1h
    publishAhead: 3s
    jwksMaxAge: %s
    clockSkew: 1s
`, opAppName, ns, issuer, opAccessTTL, opJWKSMaxAge), "apply", "-f", "-")

	// The operator creates the Secret and ConfigMap the server reads.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err1 := c.client.CoreV1().Secrets(ns).Get(context.Background(), opAppName+"-keyset", metav1.GetOptions{})
		_, err2 := c.client.CoreV1().ConfigMaps(ns).Get(context.Background(), opAppName+"-config", metav1.GetOptions{})
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator did not create the keyset Secret and ConfigMap within 30 s: %v; %v", err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The server with the arguments of the Deployment the operator made
	// (but the addresses and the database, which are the harness's), and
	// with the pods' ServiceAccount.
	args := c.serveArgs(t, ns, "listen", "metrics-listen", "database")
	if !slices.Contains(args, "--keys=kubernetes:"+ns+"/"+opAppName+"-keyset") || !slices.Contains(args, "--jwks-max-age="+opJWKSMaxAge.String()) {
		t.Fatalf("the Deployment's arguments %q lack the keyset Secret or the JWKS max-age", args)
	}
	s := startServerOpts(t, serverOptions{port: port, args: args,
		env: []string{"KUBECONFIG=" + c.kubeconfigAs(t, ns, opAppName)},
	})
	s.Alg, s.TTL = "ES256", opAccessTTL
	jwksURL := s.Base + "/.well-known/jwks.json"

	ctx, cancel := context.WithCancel(context.Background())
	// A strict verifier: the JWKS cached for its max-age, no refetch on an
	// unknown kid.
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		RefreshInterval:   opJWKSMaxAge,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Hour), 0),
		RateLimitWaitMax:  time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ledger := &tokenLedger{revoked: map[string]bool{}}
	watching := watchJWKS(ctx, t, jwksURL, ledger)
	defer func() {
		cancel()
		<-watching
		for _, f := range ledger.failures {
			t.Error(f)
		}
	}()

	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired())
	verify := func(what, tok string) error {
		_, err := parser.Parse(tok, kf.Keyfunc)
		if err != nil {
			return fmt.Errorf("%s: the caching verifier refuses the token: %w", what, err)
		}
		return nil
	}
	email := uniqueEmail("operator")
	r := s.do(t, "POST", "/users", map[string]any{"email": email, "name": "Operator E2E", "password": goodPassword})
	must(t, r, http.StatusCreated)
	var pair struct {
		JWT     string `json:"jwt"`
		Refresh string `json:"refresh_token"`
	}
	r.decode(t, &pair)
	s.remember(pair.JWT)
	s.remember(pair.Refresh)
	// newToken gets a fresh access token (refresh: no password hashing).
	newToken := func() issued {
		t.Helper()
		r := s.do(t, "POST", "/access-tokens/refresh", map[string]any{"refresh_token": pair.Refresh})
		must(t, r, http.StatusOK)
		var body struct {
			JWT string `json:"jwt"`
		}
		r.decode(t, &body)
		s.remember(body.JWT)
		return record(t, ledger, body.JWT)
	}
	me := func(tok string) int {
		return s.do(t, "GET", "/me", nil, withToken(tok)).Status
	}

	first := record(t, ledger, pair.JWT)
	if err := verify("first token", first.raw); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(first.exp); d < opAccessTTL-time.Minute || d > opAccessTTL+5*time.Second {
		t.Errorf("first token expires in %s, want the ConfigMap's access-token-ttl %s", d, opAccessTTL)
	}
	st := c.status(t, ns)
	if first.kid != st.ActiveKeyID || st.kid("Next") == "" {
		t.Fatalf("first token kid %s; status %+v: want it signed by the active key, with a Next key published", first.kid, st)
	}
	next := st.kid("Next")

	// Requested rotation: the Next key signs as soon as it is safe.
	c.kubectl(t, "", "annotate", "-n", ns, "ideasapp", opAppName, "ideapool.dev/rotate-keys=1", "--overwrite")
	var rotated issued
	deadline = time.Now().Add(15 * time.Second)
	for {
		rotated = newToken()
		if rotated.kid == next {
			break
		}
		if rotated.kid != first.kid {
			t.Fatalf("after the rotation a token carries kid %s, neither the old %s nor the Next %s", rotated.kid, first.kid, next)
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after rotate-keys new tokens still carry the old kid %s (want %s); status %+v", rotated.kid, next, c.status(t, ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := verify("token of the new key", rotated.raw); err != nil {
		t.Error(err)
	}
	if err := verify("token of the old key after the rotation", first.raw); err != nil {
		t.Error(err)
	}
	if code := me(first.raw); code != http.StatusOK {
		t.Errorf("GET /me with a token of the retired key: %d, want 200", code)
	}
	if code := me(rotated.raw); code != http.StatusOK {
		t.Errorf("GET /me with a token of the new key: %d, want 200", code)
	}

	// The key table through the plugin, as kubectl runs it.
	var table string
	deadline = time.Now().Add(10 * time.Second)
	for {
		table = c.kubectl(t, "", "ideapool", "keys", opAppName, "-n", ns)
		if strings.Contains(table, "* ") && strings.Contains(table, first.kid) && strings.Contains(table, next) &&
			activeRow(table) == next {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl ideapool keys does not show %s as active and %s as well:\n%s", next, first.kid, table)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, col := range []string{"KID", "ALGORITHM", "STATE", "PUBLISHED", "ACTIVE", "RETIRED", "REMOVE AFTER", "Retired", "ES256"} {
		if !strings.Contains(table, col) {
			t.Errorf("kubectl ideapool keys lacks %q:\n%s", col, table)
		}
	}

	// Revocation: tokens of the revoked key are refused within 5 s.
	afterRotation := c.status(t, ns)
	preNext := afterRotation.kid("Next")
	ledger.revoke(next) // before: the JWKS may drop it before kubectl returns
	revokedAt := time.Now()
	c.kubectl(t, "", "annotate", "-n", ns, "ideasapp", opAppName, "ideapool.dev/revoke-key="+next, "--overwrite")
	for me(rotated.raw) != http.StatusUnauthorized {
		if time.Since(revokedAt) > 5*time.Second {
			t.Fatalf("5 s after revoke-key=%s the server still accepts its tokens", next)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("revoked key refused %s after kubectl annotate", time.Since(revokedAt).Round(10*time.Millisecond))
	fresh := newToken()
	if fresh.kid == next || fresh.kid == first.kid || (preNext != "" && fresh.kid == preNext) {
		t.Errorf("after the revocation new tokens carry kid %s; want a fresh key (revoked %s, old %s, pre-published %s)", fresh.kid, next, first.kid, preNext)
	}
	if code := me(fresh.raw); code != http.StatusOK {
		t.Errorf("GET /me with a token of the fresh key: %d, want 200", code)
	}
	if code := me(first.raw); code != http.StatusOK {
		t.Errorf("GET /me with a token of the retired (not revoked) key: %d, want 200", code)
	}
	// A caching verifier learns the fresh key at its next refresh.
	deadline = time.Now().Add(opJWKSMaxAge + 3*time.Second)
	for err := verify("token of the fresh key", fresh.raw); err != nil; err = verify("token of the fresh key", fresh.raw) {
		if time.Now().After(deadline) {
			t.Errorf("%v (after more than the JWKS max-age)", err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The plugin's rotate sets a new request value.
	before := annotation(t, c, ns)
	out := c.kubectl(t, "", "ideapool", "rotate", opAppName, "-n", ns)
	if after := annotation(t, c, ns); after == before || !strings.Contains(out, "rotation requested") {
		t.Errorf("kubectl ideapool rotate: annotation %q -> %q; output %q", before, after, out)
	}
	t.Logf("operator end-to-end took %s", time.Since(start).Round(100*time.Millisecond))
}

// serveArgs waits for the operator's Deployment and returns the arguments
// of its `serve`, less the flags named in drop (the harness sets those).
func (c *cluster) serveArgs(t *testing.T, ns string, drop ...string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		dep, err := c.client.AppsV1().Deployments(ns).Get(context.Background(), opAppName, metav1.GetOptions{})
		if err == nil && len(dep.Spec.Template.Spec.Containers) == 1 {
			var args []string
			for _, a := range dep.Spec.Template.Spec.Containers[0].Args[1:] { // after "serve"
				if name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "="); !slices.Contains(drop, name) {
					args = append(args, a)
				}
			}
			return args
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator did not create the Deployment within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// record decodes a token's kid and expiry and adds it to the ledger.
func record(t *testing.T, ledger *tokenLedger, tok string) issued {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, claims)
	if err != nil {
		t.Fatalf("token is not a JWT: %v", err)
	}
	kid, _ := parsed.Header["kid"].(string)
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil || kid == "" {
		t.Fatalf("token without kid or exp: %v %v", parsed.Header, claims)
	}
	i := issued{raw: tok, kid: kid, exp: exp.Time}
	ledger.add(i)
	return i
}

// activeRow is the kid of the row marked "*" in the plugin's key table.
func activeRow(table string) string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "*" {
			return f[1]
		}
	}
	return ""
}

func annotation(t *testing.T, c *cluster, ns string) string {
	t.Helper()
	u, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns).Get(context.Background(), opAppName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetAnnotations()["ideapool.dev/rotate-keys"]
}
