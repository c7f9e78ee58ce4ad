package e2e_test

// Signing in to a cluster with kubectl, end to end (issue 11): a real
// kube-apiserver given the AuthenticationConfiguration that `kubectl
// ideapool setup-cluster` prints, `ideapool serve` over TLS with a CA the
// test makes (run with the arguments of the operator's Deployment), and a
// person who runs `kubectl ideapool login` and then `kubectl auth whoami`
// through the exec credential plugin, across a key rotation, an expired ID
// token and a disabled account.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// signinIDTokenTTL is short so that the test sees the plugin refresh.
const signinIDTokenTTL = 15 * time.Second

// person runs kubectl as someone signing in with ideapool: their own home
// (the session cache), their kubeconfig, kubectl and the plugin on PATH.
type person struct {
	home, kubeconfig string
	bin              string // kubectl and kubectl-ideapool
}

func (p person) kubectl(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(p.bin, "kubectl"), args...)
	cmd.Env = append(cleanEnv(), "HOME="+p.home, "KUBECONFIG="+p.kubeconfig,
		"PATH="+p.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// whoami is `kubectl auth whoami` as the person: the username and groups
// the API server authenticated, or the exit code and stderr.
func (p person) whoami(t *testing.T) (user string, groups []string, code int, stderr string) {
	t.Helper()
	out, errOut, code := p.kubectl(t, "", "auth", "whoami", "-o", "json")
	if code != 0 {
		return "", nil, code, errOut
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil {
		t.Fatalf("kubectl auth whoami -o json printed %q: %v", out, err)
	}
	return review.Status.UserInfo.Username, review.Status.UserInfo.Groups, 0, errOut
}

// cachedIDToken is the ID token of the person's one session file, with its
// kid and expiry.
func (p person) cachedIDToken(t *testing.T) (tok, kid string, exp time.Time) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.home, ".kube", "cache", "ideapool", "*.json"))
	if len(files) != 1 {
		t.Fatalf("session files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		IDToken string `json:"idToken"`
	}
	if err := json.Unmarshal(b, &sess); err != nil || sess.IDToken == "" {
		t.Fatalf("session file %s: %v (no ID token)", files[0], err)
	}
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(sess.IDToken, claims)
	if err != nil {
		t.Fatalf("the cached ID token is not a JWT: %v", err)
	}
	e, err := claims.GetExpirationTime()
	if err != nil || e == nil {
		t.Fatalf("the cached ID token has no exp: %v", err)
	}
	kid, _ = parsed.Header["kid"].(string)
	return sess.IDToken, kid, e.Time
}

func TestKubectlSignIn(t *testing.T) {
	start := time.Now()
	// kube-apiserver starts with an AuthenticationConfiguration without
	// authenticators and reloads the file when setup-cluster's output is
	// written to it, as an administrator would do on a running cluster.
	authConfig := filepath.Join(t.TempDir(), "authentication-config.yaml")
	if err := os.WriteFile(authConfig, []byte("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiserverLog := &syncBuffer{}
	c := startClusterWith(t, func(env *envtest.Environment) {
		api := env.ControlPlane.GetAPIServer()
		api.Configure().Set("authentication-config", authConfig)
		api.Out, api.Err = apiserverLog, apiserverLog
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver's log, its authentication lines:\n%s", grepLines(apiserverLog.String(), "authenticat", "jwt", "oidc"))
		}
	})
	ctx := context.Background()
	ns := "e2e-signin"
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(c.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"kubectl-ideapool": binary, "kubectl": filepath.Join(c.assets, "kubectl")} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}

	// The IdeasApp's TLS Secret, from a CA the test makes; the server
	// reads the pair as the kubelet mounts it.
	ca := newTestCA(t)
	pair := ca.issue(t, 2, 24*time.Hour)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	caFile := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: opAppName + "-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: pair.cert, corev1.TLSPrivateKeyKey: pair.key, "ca.crt": caPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mount := newSecretMount(t, pair)

	c.startOperator(t)
	port := freePort(t)
	issuer := fmt.Sprintf("https://127.0.0.1:%d", port)
	c.kubectl(t, fmt.Sprintf(`apiVersion: ideapool.dev/v1alpha1
kind: IdeasApp
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 1
  issuer: %s
  tls:
    secretName: %s-tls
  tokens:
    idTokenTTL: %s
  signingKeys:
    algorithm: ES256
    rotationInterval: 1h
    publishAhead: 3s
    jwksMaxAge: 2s
    clockSkew: 1s
`, opAppName, ns, issuer, opAppName, signinIDTokenTTL), "apply", "-f", "-")

	// The server with the arguments of the operator's Deployment, but the
	// harness's addresses and database, and the test's mount of the pair;
	// once the operator has written the keyset.
	deadline := time.Now().Add(30 * time.Second)
	for c.status(t, ns).ActiveKeyID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the operator wrote no keyset within 30 s: status %+v", c.status(t, ns))
		}
		time.Sleep(100 * time.Millisecond)
	}
	args := c.serveArgs(t, ns, "listen", "metrics-listen", "database", "tls-cert-file", "tls-key-file")
	args = append(args, "--tls-cert-file", mount.certFile(), "--tls-key-file", mount.keyFile())
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	s := startServerOpts(t, serverOptions{port: port, args: args, https: https,
		env: []string{"KUBECONFIG=" + c.kubeconfigAs(t, ns, opAppName)}})
	s.Alg = "ES256"
	if s.Base != issuer {
		t.Fatalf("the server runs at %s, want the issuer %s", s.Base, issuer)
	}
	users := exec.Command(binary, "users", "create", "--database", "sqlite:"+filepath.Join(s.Dir, "db"),
		"--email", "alice@example.com", "--name", "Alice", "--username", "alice", "--role", "2")
	users.Env, users.Stdin = cleanEnv(), strings.NewReader(goodPassword+"\n")
	if out, err := users.CombinedOutput(); err != nil {
		t.Fatalf("ideapool users create: %v\n%s", err, out)
	}
	s.remember(goodPassword)

	// What setup-cluster prints: the AuthenticationConfiguration goes to
	// kube-apiserver, the user to the person's kubeconfig.
	out := c.kubectl(t, "", "ideapool", "setup-cluster", opAppName, "-n", ns, "--username", "alice")
	docs := strings.Split(out, "\n---\n")
	if len(docs) != 2 || !strings.Contains(docs[0], "kind: AuthenticationConfiguration") || !strings.Contains(docs[1], "users:") {
		t.Fatalf("setup-cluster printed:\n%s\nwant the AuthenticationConfiguration, ---, the kubeconfig user", out)
	}
	if err := os.WriteFile(authConfig, []byte(docs[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	p := person{home: t.TempDir(), kubeconfig: filepath.Join(c.dir, "kubeconfig-alice"), bin: bin}
	writePersonKubeconfig(t, c, docs[1], p.kubeconfig)

	// Sign in: the password on standard input (not a terminal).
	out, errOut, code := p.kubectl(t, goodPassword+"\n", "ideapool", "login", "--issuer", issuer, "--username", "alice", "--certificate-authority", caFile)
	if code != 0 || !strings.Contains(out, "Signed in to "+issuer+" as alice") {
		t.Fatalf("kubectl ideapool login: exit %d\n%s%s", code, out, errOut)
	}
	firstToken, firstKid, _ := p.cachedIDToken(t)
	s.remember(firstToken)

	// kube-apiserver picks the new file up (it watches it); then alice is
	// ideapool:alice in ideapool:admin.
	wantWho := func(when string) {
		t.Helper()
		user, groups, code, stderr := p.whoami(t)
		if code != 0 || user != "ideapool:alice" || !slices.Contains(groups, "ideapool:admin") || !slices.Contains(groups, "system:authenticated") {
			t.Fatalf("%s: kubectl auth whoami: exit %d, user %q, groups %q\n%s", when, code, user, groups, stderr)
		}
	}
	deadline = time.Now().Add(90 * time.Second) // the file watch, or at worst its one-minute poll
	for {
		user, _, code, stderr := p.whoami(t)
		if code == 0 && user != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90 s after the AuthenticationConfiguration was written, kubectl auth whoami still fails (exit %d):\n%s\nfile:\n%s", code, stderr, docs[0])
		}
		time.Sleep(time.Second)
	}
	wantWho("after login")
	t.Logf("signed in through kube-apiserver %s after start", time.Since(start).Round(100*time.Millisecond))
	machineIDTokenRefused(t, c, s, firstToken)

	// A key rotation: the token in hand (old key) still works, and so does
	// the next one, signed by the new key, which kube-apiserver fetches
	// from the JWKS when it first sees its kid.
	next := c.status(t, ns).kid("Next")
	if next == "" || next == firstKid {
		t.Fatalf("status %+v: want a Next key other than the ID token's %s", c.status(t, ns), firstKid)
	}
	c.kubectl(t, "", "ideapool", "rotate", opAppName, "-n", ns)
	deadline = time.Now().Add(15 * time.Second)
	for c.status(t, ns).ActiveKeyID != next {
		if time.Now().After(deadline) {
			t.Fatalf("15 s after kubectl ideapool rotate, the active key is %s, want %s", c.status(t, ns).ActiveKeyID, next)
		}
		time.Sleep(200 * time.Millisecond)
	}
	held, heldKid, heldExp := p.cachedIDToken(t)
	if heldKid != next && time.Now().Before(heldExp) {
		wantWho("after the rotation, with an ID token of the old key")
	}

	// The cached ID token expires: the plugin refreshes the session
	// (rotating its refresh token) and gets a token of the new key.
	time.Sleep(time.Until(heldExp) + time.Second)
	wantWho("after the cached ID token expired")
	refreshed, kid, exp := p.cachedIDToken(t)
	s.remember(refreshed)
	if refreshed == held || kid != next || !exp.After(heldExp) {
		t.Fatalf("after the ID token expired: new token %v, kid %s (want %s), exp %s (held %s): the plugin did not refresh through the session",
			refreshed != held, kid, next, exp, heldExp)
	}
	st, err := os.Stat(filepath.Join(p.home, ".kube", "cache", "ideapool"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the session directory: %v, %v; want mode 0700", st, err)
	}

	// Disabled: once the ID token in hand has expired, the plugin's
	// refresh is refused and kubectl fails with its message.
	disable := exec.Command(binary, "users", "disable", "--database", "sqlite:"+filepath.Join(s.Dir, "db"), "alice")
	disable.Env = cleanEnv()
	if out, err := disable.CombinedOutput(); err != nil {
		t.Fatalf("ideapool users disable: %v\n%s", err, out)
	}
	_, _, exp = p.cachedIDToken(t)
	time.Sleep(time.Until(exp) + time.Second)
	user, _, code, stderr := p.whoami(t)
	wantMsg := fmt.Sprintf("kubectl ideapool login --issuer %s --username alice --certificate-authority %s", issuer, caFile)
	if code == 0 || !strings.Contains(stderr, "the session of alice at "+issuer+" has ended") || !strings.Contains(stderr, wantMsg) {
		t.Fatalf("a disabled user whose ID token expired: kubectl auth whoami exit %d as %q; stderr:\n%s\nwant the plugin's message naming %q", code, user, stderr, wantMsg)
	}
	t.Logf("kubectl sign-in end to end took %s", time.Since(start).Round(100*time.Millisecond))
}

// writePersonKubeconfig is the admin's kubeconfig with its cluster, and the
// user setup-cluster printed in place of the admin's credentials.
func writePersonKubeconfig(t *testing.T, c *cluster, userDoc, path string) {
	t.Helper()
	cfg, err := clientcmd.Load(c.rawConfig)
	if err != nil {
		t.Fatal(err)
	}
	printed, err := clientcmd.Load([]byte(userDoc))
	if err != nil {
		t.Fatalf("the kubeconfig user setup-cluster printed does not load: %v\n%s", err, userDoc)
	}
	user := printed.AuthInfos["ideapool-"+opAppName]
	if user == nil || user.Exec == nil {
		t.Fatalf("setup-cluster printed users %v, want ideapool-%s with exec", printed.AuthInfos, opAppName)
	}
	cluster := cfg.Contexts[cfg.CurrentContext].Cluster
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{"ideapool-" + opAppName: user}
	cfg.Contexts = map[string]*clientcmdapi.Context{"alice": {Cluster: cluster, AuthInfo: "ideapool-" + opAppName}}
	cfg.CurrentContext = "alice"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}

// grepLines keeps the lines holding any of words (case-insensitive).
func grepLines(text string, words ...string) string {
	var keep []string
	for _, line := range strings.Split(text, "\n") {
		l := strings.ToLower(line)
		for _, w := range words {
			if strings.Contains(l, w) {
				keep = append(keep, line)
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

// machineIDTokenRefused: an API client of alice's (a machine acting for
// her) gets ID tokens too, at /v1/auth/refreshtoken; they name the client
// (client_id), and kube-apiserver refuses them by the claim validation rule
// setup-cluster printed, while alice's own ID token is accepted.
func machineIDTokenRefused(t *testing.T, c *cluster, s *server, own string) {
	t.Helper()
	login := s.do(t, "POST", "/access-tokens", map[string]any{"email": "alice@example.com", "password": goodPassword})
	must(t, login, http.StatusCreated)
	access, _ := s.tokenPair(t, login)
	client := dlNewHSClient(t, s, &dlAccount{JWT: access})
	r, _ := dlAuthenticate(t, s, client.ID, client.assertion(t, s, nil))
	var rpc struct {
		Result struct {
			Refresh string `json:"refresh_token"`
		} `json:"result"`
	}
	r.decode(t, &rpc)
	if rpc.Result.Refresh == "" {
		t.Fatalf("user.Authenticate of alice's API client: %s", r)
	}
	refreshed := dlV1Refresh(t, s, rpc.Result.Refresh)
	var v1 struct {
		Tokens struct {
			ID string `json:"idToken"`
		} `json:"tokens"`
	}
	refreshed.decode(t, &v1)
	if v1.Tokens.ID == "" {
		t.Fatalf("/v1/auth/refreshtoken of the API client's session: %s", refreshed)
	}
	s.remember(v1.Tokens.ID)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(v1.Tokens.ID, claims); err != nil || claims["client_id"] != client.ID {
		t.Fatalf("the API client's ID token: claims %v (%v), want client_id %s", claims, err, client.ID)
	}
	whoAs := func(tok string) error {
		cfg, err := clientcmd.RESTConfigFromKubeConfig(c.rawConfig)
		if err != nil {
			t.Fatal(err)
		}
		cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile, cfg.BearerToken = nil, nil, "", "", tok
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cs.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err
	}
	if err := whoAs(own); err != nil {
		t.Fatalf("alice's own ID token, as a bearer token: %v", err)
	}
	if err := whoAs(v1.Tokens.ID); !apierrors.IsUnauthorized(err) {
		t.Fatalf("the ID token of alice's API client: %v, want 401 Unauthorized (claim validation rule !has(claims.client_id))", err)
	}
}
