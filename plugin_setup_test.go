package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/ideapool/ideapool/internal/clocktest"
)

// setup-cluster reads objects and prints text: its tests give it objects
// through client-go's in-memory dynamic client. The e2e test feeds what it
// prints to a real kube-apiserver.

// app builds an IdeasApp pool in namespace ns from a spec and a status.
func app(spec, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ideapool.dev/v1alpha1", "kind": "IdeasApp",
		"metadata": map[string]any{"name": "pool", "namespace": "ns", "uid": "app-uid"},
		"spec":     spec,
	}}
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func tlsSecret(name string, data map[string]string) *unstructured.Unstructured {
	enc := map[string]any{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"data":     enc,
	}}
}

func fakeCluster(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		ideasApps:       "IdeasAppList",
		secretsResource: "SecretList",
	}, objs...)
}

// authConfig mirrors the fields of apiserver.config.k8s.io/v1
// AuthenticationConfiguration that setup-cluster writes; strict decoding
// refuses any other.
type authConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	JWT        []struct {
		Issuer struct {
			URL                  string   `json:"url"`
			Audiences            []string `json:"audiences"`
			CertificateAuthority string   `json:"certificateAuthority"`
		} `json:"issuer"`
		ClaimMappings struct {
			Username struct{ Claim, Prefix string } `json:"username"`
			Groups   struct{ Claim, Prefix string } `json:"groups"`
		} `json:"claimMappings"`
		ClaimValidationRules []struct{ Expression, Message string } `json:"claimValidationRules"`
	} `json:"jwt"`
}

// splitSetup parses setup-cluster's two documents.
func splitSetup(t *testing.T, out string) (authConfig, string) {
	t.Helper()
	docs := strings.Split(out, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("setup-cluster printed %d YAML documents, want 2:\n%s", len(docs), out)
	}
	var ac authConfig
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &ac); err != nil {
		t.Fatalf("the AuthenticationConfiguration does not parse: %v\n%s", err, docs[0])
	}
	return ac, docs[1]
}

func TestSetupCluster(t *testing.T) {
	caPEM, _ := newTestCA(t)
	ca := string(caPEM)
	tests := map[string]struct {
		objs     []runtime.Object
		username string
		issuer   string // want; "" means setup-cluster refuses
		ca       string // want certificateAuthority
		want     string // in stderr (a note, or the refusal)
	}{
		"status.issuer and spec.tls.secretName": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}}, map[string]any{"issuer": "https://idp.example.com"}),
				tlsSecret("pool-tls", map[string]string{"tls.crt": "x", "tls.key": "y", "ca.crt": ca})},
			username: "alice", issuer: "https://idp.example.com", ca: ca},
		"before status: spec.issuer": {
			objs: []runtime.Object{app(map[string]any{"issuer": "https://127.0.0.1:8443", "tls": map[string]any{"secretName": "pool-tls"}}, nil),
				tlsSecret("pool-tls", map[string]string{"ca.crt": ca})},
			issuer: "https://127.0.0.1:8443", ca: ca},
		"before status: the Ingress host": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}, "expose": map[string]any{"ingress": map[string]any{"host": "ideas.example.com"}}}, nil),
				tlsSecret("pool-tls", map[string]string{"ca.crt": ca})},
			issuer: "https://ideas.example.com", ca: ca},
		"before status: the Gateway hostname": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}, "expose": map[string]any{"gateway": map[string]any{"hostname": "gw.example.com"}}}, nil),
				tlsSecret("pool-tls", map[string]string{"ca.crt": ca})},
			issuer: "https://gw.example.com", ca: ca},
		"before status: spec.tls alone": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}}, nil),
				tlsSecret("pool-tls", map[string]string{"ca.crt": ca})},
			issuer: "https://pool.ns.svc", ca: ca},
		"cert-manager: the Secret it writes": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"name": "ca"}}}}, map[string]any{"issuer": "https://pool.ns.svc"}),
				tlsSecret("pool-tls", map[string]string{"ca.crt": ca})},
			issuer: "https://pool.ns.svc", ca: ca},
		"Ingress without spec.tls: its TLS Secret": {
			objs: []runtime.Object{app(map[string]any{"expose": map[string]any{"ingress": map[string]any{"host": "ideas.example.com"}}}, map[string]any{"issuer": "https://ideas.example.com"}),
				tlsSecret("pool-tls", map[string]string{"ca.crt": ca})},
			issuer: "https://ideas.example.com", ca: ca},
		"Ingress without spec.tls or its Secret: said, left out": {
			objs:   []runtime.Object{app(map[string]any{"expose": map[string]any{"ingress": map[string]any{"host": "ideas.example.com"}}}, map[string]any{"issuer": "https://ideas.example.com"})},
			issuer: "https://ideas.example.com", want: "note: the TLS Secret ns/pool-tls (the Ingress's TLS Secret) does not exist, so certificateAuthority is left out"},
		"no ca.crt in the Secret: said, left out": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}}, map[string]any{"issuer": "https://idp.example.com"}),
				tlsSecret("pool-tls", map[string]string{"tls.crt": "x", "tls.key": "y"})},
			issuer: "https://idp.example.com", want: "note: the TLS Secret ns/pool-tls (spec.tls.secretName) has no ca.crt, so certificateAuthority is left out"},
		"no spec.tls but an https issuer (TLS ends in front)": {
			objs:   []runtime.Object{app(map[string]any{"issuer": "https://idp.example.com"}, map[string]any{"issuer": "https://idp.example.com"})},
			issuer: "https://idp.example.com", want: "has no spec.tls, so certificateAuthority is left out"},
		"EdDSA refused": {
			objs: []runtime.Object{app(map[string]any{"signingKeys": map[string]any{"algorithm": "EdDSA"}, "tls": map[string]any{"secretName": "pool-tls"}}, map[string]any{"issuer": "https://idp.example.com"})},
			want: "ideasapp ns/pool signs with EdDSA (spec.signingKeys.algorithm), which kube-apiserver does not verify: set spec.signingKeys.algorithm to RS256 or ES256"},
		"EdDSA key still active refused": {
			objs: []runtime.Object{app(map[string]any{"signingKeys": map[string]any{"algorithm": "ES256"}, "tls": map[string]any{"secretName": "pool-tls"}},
				map[string]any{"issuer": "https://idp.example.com", "activeKeyID": "k1", "keys": []any{map[string]any{"kid": "k1", "algorithm": "EdDSA", "state": "Active"}}})},
			want: "its active key k1 still signs with EdDSA"},
		"http issuer refused": {
			objs: []runtime.Object{app(map[string]any{}, map[string]any{"issuer": "http://pool.ns.svc"})},
			want: `the issuer of ideasapp ns/pool is "http://pool.ns.svc" (status.issuer), and kube-apiserver accepts only https issuers: set spec.tls`},
		"http issuer from the spec refused": {
			objs: []runtime.Object{app(map[string]any{}, nil)},
			want: `"http://pool.ns.svc" (from the spec; the operator has not written status.issuer yet)`},
		"no such IdeasApp": {want: `no IdeasApp "pool" in namespace "ns"`},
		"TLS Secret missing": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}}, map[string]any{"issuer": "https://idp.example.com"})},
			want: "the TLS Secret ns/pool-tls (spec.tls.secretName) does not exist yet"},
		"ca.crt that is not a certificate": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"secretName": "pool-tls"}}, map[string]any{"issuer": "https://idp.example.com"}),
				tlsSecret("pool-tls", map[string]string{"ca.crt": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"})},
			want: "ca.crt: holds a PEM PRIVATE KEY, want CERTIFICATE"},
		"cert-manager has not issued yet": {
			objs: []runtime.Object{app(map[string]any{"tls": map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"name": "ca"}}}}, map[string]any{"issuer": "https://pool.ns.svc"})},
			want: "the TLS Secret ns/pool-tls (written by cert-manager for spec.tls.certManager) does not exist yet"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := pluginSetupCluster(context.Background(), fakeCluster(tc.objs...), "ns", "pool", tc.username, &out, &errOut)
			if tc.issuer == "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || out.Len() != 0 {
					t.Fatalf("error %v, stdout %q; want a refusal with %q and nothing printed", err, out.String(), tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(errOut.String(), tc.want) || (tc.want == "" && errOut.Len() != 0) {
				t.Errorf("stderr %q, want %q", errOut.String(), tc.want)
			}
			ac, users := splitSetup(t, out.String())
			if ac.APIVersion != "apiserver.config.k8s.io/v1" || ac.Kind != "AuthenticationConfiguration" || len(ac.JWT) != 1 {
				t.Fatalf("document 1: %+v", ac)
			}
			j := ac.JWT[0]
			if j.Issuer.URL != tc.issuer || strings.Join(j.Issuer.Audiences, ",") != "ideapool" || j.Issuer.CertificateAuthority != tc.ca {
				t.Errorf("issuer %+v; want url %s, audiences [ideapool], the CA %v", j.Issuer, tc.issuer, tc.ca != "")
			}
			m := j.ClaimMappings
			if m.Username.Claim != "preferred_username" || m.Username.Prefix != "ideapool:" || m.Groups.Claim != "groups" || m.Groups.Prefix != "ideapool:" {
				t.Errorf("claim mappings %+v", m)
			}
			if r := j.ClaimValidationRules; len(r) != 1 || r[0].Expression != "!has(claims.client_id)" {
				t.Errorf("claim validation rules %+v: want API-client sessions (client_id) refused", r)
			}
			cfg, err := clientcmd.Load([]byte(users))
			if err != nil {
				t.Fatalf("document 2 is not a kubeconfig: %v\n%s", err, users)
			}
			user := cfg.AuthInfos["ideapool-pool"]
			if user == nil || user.Exec == nil {
				t.Fatalf("kubeconfig users %v, want ideapool-pool with exec", cfg.AuthInfos)
			}
			wantUser := tc.username
			if wantUser == "" {
				wantUser = usernamePlaceholder
			}
			x := user.Exec
			if x.APIVersion != "client.authentication.k8s.io/v1" || x.Command != "kubectl" || x.InteractiveMode != "IfAvailable" || x.ProvideClusterInfo ||
				strings.Join(x.Args, " ") != "ideapool credential --issuer="+tc.issuer+" --username="+wantUser {
				t.Errorf("exec %+v", x)
			}
		})
	}
}

func TestIDTokenAudienceIsServesDefault(t *testing.T) {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.register(fs)
	if got := fs.Lookup("id-token-audience").DefValue; got != idTokenAudience {
		t.Fatalf("serve's --id-token-audience defaults to %q, setup-cluster writes %q", got, idTokenAudience)
	}
}

func TestPluginUsage(t *testing.T) {
	tests := map[string]struct {
		args []string
		code int
		want string
	}{
		"help":                       {[]string{"--help"}, 0, "kubectl ideapool setup-cluster NAME"},
		"no command":                 {nil, 2, "kubectl ideapool login --issuer URL --username NAME"},
		"unknown command":            {[]string{"logout"}, 2, `unknown command "logout"`},
		"setup-cluster without NAME": {[]string{"setup-cluster"}, 2, "setup-cluster takes 1 argument(s), got 0"},
		"setup-cluster, sign-in CA":  {[]string{"setup-cluster", "pool", "--certificate-authority", "x"}, 2, "setup-cluster does not take --certificate-authority"},
		"keys with --issuer":         {[]string{"keys", "pool", "--issuer", "https://x"}, 2, "keys does not take --issuer"},
		"credential without user":    {[]string{"credential", "--issuer", "https://x"}, 2, "credential needs --issuer and --username"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := &pluginRun{home: t.TempDir(), clock: clocktest.New(time.Time{})}
			r := p.run(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("exit %d (want %d), output %q%q, want %q", r.code, tc.code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}
