//go:build cluster

package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Addresses of hack/cluster.sh's node.
const (
	clusterDNS     = "10.96.0.10:53"
	clusterPodCIDR = "10.244.0.0/24"
)

// node runs kubectl and helm against the node of hack/cluster.sh.
type node struct {
	t          *testing.T
	root       string // the repository
	kubeconfig string
	kubectl    string
	helm       map[int]string // by major version
}

// useClusterDNS makes this test process resolve NAME.NAMESPACE.svc as a pod
// does, through the cluster's DNS (the Service IPs are reachable from the
// node itself through kube-proxy's rules): the issuer URL and the JWKS URI
// are http://NAME.NAMESPACE.svc.
func useClusterDNS() {
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, clusterDNS)
	}}
	dialer := &net.Dialer{Timeout: 10 * time.Second, Resolver: resolver}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		// A pod's resolv.conf searches svc.cluster.local; this process's does not.
		if strings.HasSuffix(host, ".svc") {
			host += ".cluster.local."
		}
		return dialer.DialContext(ctx, network, net.JoinHostPort(host, port))
	}
	for _, tr := range []*http.Transport{http.DefaultTransport.(*http.Transport)} {
		tr.DialContext = dial
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = dial
	httpClient.Transport = t
}

// run runs a command with the cluster's kubeconfig and returns its
// combined output.
func (c *node) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *node) k(args ...string) string {
	c.t.Helper()
	out, err := c.run(c.kubectl, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// kStdout runs kubectl and returns its standard output alone (no
// deprecation warnings).
func (c *node) kStdout(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// kStdin runs kubectl with stdin and returns its combined output.
func (c *node) kStdin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kTry runs kubectl and returns its error instead of failing.
func (c *node) kTry(args ...string) (string, error) { return c.run(c.kubectl, args...) }

func (c *node) kJSON(out any, args ...string) {
	c.t.Helper()
	s := c.k(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		c.t.Fatalf("kubectl %v: %v\n%s", args, err, s)
	}
}

// apply applies a manifest.
func (c *node) apply(manifest string) {
	c.t.Helper()
	if out, err := c.kStdin(manifest, "apply", "-f", "-"); err != nil {
		c.t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifest)
	}
}

// helmRun runs helm of the given major version.
func (c *node) helmRun(major int, args ...string) (string, error) {
	return c.run(c.helm[major], args...)
}

// eventually retries f every half second until it returns nil, for at most
// d; it returns how long that took, or fails the test with f's last error.
func eventually(t *testing.T, d time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for {
		if err = f(); err == nil {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// restrictedNamespace creates a namespace that enforces the restricted Pod
// Security Standard, as a platform team's namespaces do.
func (c *node) restrictedNamespace(ns string) {
	c.t.Helper()
	c.apply(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
`, ns))
}

// deleteAndWait deletes objects and waits until they are gone.
func (c *node) deleteAndWait(args ...string) {
	c.t.Helper()
	c.k(append([]string{"delete", "--ignore-not-found", "--wait=true", "--timeout=180s"}, args...)...)
}

type podList struct {
	Items []pod `json:"items"`
}

type pod struct {
	Metadata struct {
		Name              string  `json:"name"`
		UID               string  `json:"uid"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		Containers []struct {
			Image           string `json:"image"`
			ImagePullPolicy string `json:"imagePullPolicy"`
		} `json:"containers"`
		Volumes []struct {
			PersistentVolumeClaim *struct {
				ClaimName string `json:"claimName"`
			} `json:"persistentVolumeClaim"`
		} `json:"volumes"`
	} `json:"spec"`
	Status struct {
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p pod) ready() bool {
	if p.Metadata.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// readyPods lists the Ready pods of a selector.
func (c *node) readyPods(ns, selector string) []pod {
	c.t.Helper()
	var l podList
	c.kJSON(&l, "-n", ns, "get", "pods", "-l", selector)
	var out []pod
	for _, p := range l.Items {
		if p.ready() {
			out = append(out, p)
		}
	}
	return out
}

// waitReadyPods waits until exactly n pods of selector are Ready (and no
// other pod of it is left) and returns them.
func (c *node) waitReadyPods(ns, selector string, n int, d time.Duration) []pod {
	c.t.Helper()
	var ready []pod
	eventually(c.t, d, fmt.Sprintf("%d Ready pods %s in %s", n, selector, ns), func() error {
		var l podList
		out, err := c.kTry("-n", ns, "get", "pods", "-l", selector, "-o", "json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			return err
		}
		ready = ready[:0]
		for _, p := range l.Items {
			if p.ready() {
				ready = append(ready, p)
			}
		}
		if len(ready) != n || len(l.Items) != n {
			return fmt.Errorf("%d pods, %d Ready", len(l.Items), len(ready))
		}
		return nil
	})
	return ready
}

// ideasApp is the part of an IdeasApp the journey reads.
type ideasApp struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Tokens struct {
			AccessTokenTTL string `json:"accessTokenTTL"`
		} `json:"tokens"`
	} `json:"spec"`
	Status struct {
		ActiveKeyID       string `json:"activeKeyID"`
		LastRotateRequest string `json:"lastRotateRequest"`
		LastRevokeRequest string `json:"lastRevokeRequest"`
		Keys              []struct {
			Kid   string `json:"kid"`
			State string `json:"state"`
		} `json:"keys"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

func (a ideasApp) ready() bool {
	for _, c := range a.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

func (c *node) ideasApp(ns, name string) (ideasApp, error) {
	var a ideasApp
	out, err := c.kTry("-n", ns, "get", "ideasapp", name, "-o", "json")
	if err != nil {
		return a, err
	}
	return a, json.Unmarshal([]byte(out), &a)
}

func (c *node) waitIdeasAppReady(ns, name string, d time.Duration) ideasApp {
	c.t.Helper()
	var a ideasApp
	eventually(c.t, d, "IdeasApp "+ns+"/"+name+" Ready", func() error {
		var err error
		if a, err = c.ideasApp(ns, name); err != nil {
			return err
		}
		if !a.ready() {
			return fmt.Errorf("conditions %+v", a.Status.Conditions)
		}
		return nil
	})
	return a
}

// kid is the kid of a JWT's header.
func kid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return hdr.Kid
}

// lifetime is exp - iat of a JWT.
func lifetime(t *testing.T, tok string) time.Duration {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Iat, Exp int64
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return time.Duration(c.Exp-c.Iat) * time.Second
}

// get sends a GET with an access token to a URL and returns the status.
func get(url, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// loadVerifier is one `ideapool verify-load` pod and the counts it reports.
type loadVerifier struct {
	c      *node
	ns     string
	name   string
	target string
	podIP  string
}

// counts mirrors verify-load's GET /counts.
type counts struct {
	Tokens        int64            `json:"tokens"`
	Verified      int64            `json:"verified"`
	Failures      int64            `json:"failures"`
	UnknownKid    int64            `json:"unknown_kid"`
	Status5xx     int64            `json:"status_5xx"`
	Status4xx     int64            `json:"status_4xx"`
	RequestErrors int64            `json:"request_errors"`
	IdeasAcked    int64            `json:"ideas_acked"`
	JWKSFetches   int64            `json:"jwks_fetches"`
	ByKid         map[string]int64 `json:"by_kid"`
	LastFailure   string           `json:"last_failure"`
	LastError     string           `json:"last_error"`
}

// minus is the counts of a step: c since before.
func (c counts) minus(before counts) counts {
	d := counts{Tokens: c.Tokens - before.Tokens, Verified: c.Verified - before.Verified,
		Failures: c.Failures - before.Failures, UnknownKid: c.UnknownKid - before.UnknownKid,
		Status5xx: c.Status5xx - before.Status5xx, Status4xx: c.Status4xx - before.Status4xx,
		RequestErrors: c.RequestErrors - before.RequestErrors, IdeasAcked: c.IdeasAcked - before.IdeasAcked,
		JWKSFetches: c.JWKSFetches - before.JWKSFetches, ByKid: map[string]int64{},
		LastFailure: c.LastFailure, LastError: c.LastError}
	for k, n := range c.ByKid {
		if n-before.ByKid[k] > 0 {
			d.ByKid[k] = n - before.ByKid[k]
		}
	}
	return d
}

func (c counts) String() string {
	return fmt.Sprintf("tokens %d, verified %d, failures %d, unknown kid %d, 5xx %d, 4xx %d, request errors %d, ideas acked %d, keys seen %d, JWKS fetches %d",
		c.Tokens, c.Verified, c.Failures, c.UnknownKid, c.Status5xx, c.Status4xx, c.RequestErrors, c.IdeasAcked, len(c.ByKid), c.JWKSFetches)
}

// startVerifier runs verify-load as a Deployment (restricted security
// context, the image under test) in ns against target and waits until it
// has verified a token.
func (c *node) startVerifier(ns, name, target, image string) *loadVerifier {
	c.t.Helper()
	c.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[2]s}
  template:
    metadata:
      labels: {app: %[2]s}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: verify
        image: %[4]s
        imagePullPolicy: IfNotPresent
        args: [verify-load, --url=%[3]s, --workers=2, --interval=100ms, --log-every=15s]
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 128Mi}
`, ns, name, target, image))
	pods := c.waitReadyPods(ns, "app="+name, 1, 2*time.Minute)
	return &loadVerifier{c: c, ns: ns, name: name, target: target, podIP: pods[0].Status.PodIP}
}

func (v *loadVerifier) counts() counts {
	v.c.t.Helper()
	var got counts
	resp, err := httpClient.Get("http://" + net.JoinHostPort(v.podIP, "8080") + "/counts")
	if err != nil {
		v.c.t.Fatalf("verifier %s: %v", v.name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		v.c.t.Fatalf("verifier %s counts: %v", v.name, err)
	}
	return got
}

// audit asks the verifier for acknowledged ideas the API no longer has.
func (v *loadVerifier) audit() (int, []string) {
	v.c.t.Helper()
	resp, err := httpClient.Get("http://" + net.JoinHostPort(v.podIP, "8080") + "/audit")
	if err != nil {
		v.c.t.Fatalf("verifier %s audit: %v", v.name, err)
	}
	defer resp.Body.Close()
	var a struct {
		Acked   int      `json:"acked"`
		Missing []string `json:"missing"`
		Error   string   `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		v.c.t.Fatalf("verifier %s audit: %d %v %s", v.name, resp.StatusCode, err, a.Error)
	}
	return a.Acked, a.Missing
}

// portForward runs kubectl port-forward to target's port and returns the
// local base URL and a stop function.
func (c *node) portForward(ns, target, port string) (string, func()) {
	c.t.Helper()
	cmd := exec.Command(c.kubectl, "-n", ns, "port-forward", "--address", "127.0.0.1", target, ":"+port)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	var out bytes.Buffer
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 256)
		n, _ := stdout.Read(b)
		line <- string(b[:n])
		_, _ = io.Copy(io.Discard, stdout)
	}()
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	select {
	case l := <-line:
		m := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`).FindStringSubmatch(l)
		if m == nil {
			stop()
			c.t.Fatalf("kubectl port-forward said %q (%s)", l, out.String())
		}
		return "http://127.0.0.1:" + m[1], stop
	case <-time.After(30 * time.Second):
		stop()
		c.t.Fatalf("kubectl port-forward did not start: %s", out.String())
	}
	return "", nil
}
