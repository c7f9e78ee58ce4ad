package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/template"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ideapool/ideapool/internal/contract"
)

// setup-cluster: what kube-apiserver and kubectl need to sign people in
// with an IdeasApp's ID tokens, read from the IdeasApp (unstructured, so
// that it works with an operator of another release) and its TLS Secret.

var (
	secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

const (
	// idTokenAudience is the aud of the ID tokens an IdeasApp's pods
	// issue: serve's --id-token-audience default, which the operator
	// leaves alone (TestIDTokenAudienceIsServesDefault keeps them equal).
	idTokenAudience = "ideapool"
	// claimPrefix goes before the username and every group, so that an
	// ideapool user can never pass for a cluster's own (system:...) names.
	claimPrefix = "ideapool:"
	// caKey is the Secret key of the CA certificate (cert-manager's, and
	// the kubernetes.io/tls convention).
	caKey = "ca.crt"
	// usernamePlaceholder stands for the username when none is given.
	usernamePlaceholder = "YOUR-USERNAME"
)

// clusterSetup is what setup-cluster prints.
type clusterSetup struct {
	Namespace, App string
	Issuer         string
	Audience       string
	Prefix         string
	CA             string // PEM; "" leaves certificateAuthority out
	User           string // the kubeconfig user's name
	Username       string
}

func pluginSetupCluster(ctx context.Context, client dynamic.Interface, ns, name, username string, stdout, stderr io.Writer) error {
	app, err := client.Resource(ideasApps).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no IdeasApp %q in namespace %q", name, ns)
	}
	if err != nil {
		return fmt.Errorf("get ideasapp %s: %w", name, err)
	}
	if err := refuseEdDSA(app); err != nil {
		return err
	}
	issuer, err := appIssuer(app)
	if err != nil {
		return err
	}
	ca, note, err := appCA(ctx, client, app)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(stderr, "note: %s\n", note)
	}
	if username == "" {
		username = usernamePlaceholder
	}
	return setupTemplate.Execute(stdout, clusterSetup{Namespace: ns, App: name, Issuer: issuer, Audience: idTokenAudience,
		Prefix: claimPrefix, CA: ca, User: "ideapool-" + name, Username: username})
}

// refuseEdDSA: kube-apiserver verifies RSA and ECDSA signatures only.
func refuseEdDSA(app *unstructured.Unstructured) error {
	ref := app.GetNamespace() + "/" + app.GetName()
	alg, _, _ := unstructured.NestedString(app.Object, "spec", "signingKeys", "algorithm")
	if alg == "EdDSA" {
		return fmt.Errorf("ideasapp %s signs with EdDSA (spec.signingKeys.algorithm), which kube-apiserver does not verify: "+
			"set spec.signingKeys.algorithm to RS256 or ES256, wait until a key of that algorithm signs "+
			"(`kubectl ideapool keys %s -n %s`; `kubectl ideapool rotate` hurries it), then run setup-cluster again",
			ref, app.GetName(), app.GetNamespace())
	}
	keys, err := statusKeys(app)
	if err != nil {
		return err
	}
	active, _, _ := unstructured.NestedString(app.Object, "status", "activeKeyID")
	for _, k := range keys {
		if k.KID == active && k.Algorithm == "EdDSA" {
			return fmt.Errorf("ideasapp %s: its active key %s still signs with EdDSA, which kube-apiserver does not verify: "+
				"wait until a key of spec.signingKeys.algorithm (%s) signs (`kubectl ideapool rotate %s -n %s` hurries it), then run setup-cluster again",
				ref, k.KID, alg, app.GetName(), app.GetNamespace())
		}
	}
	return nil
}

// appIssuer is status.issuer, or, before the operator has written it, the
// issuer the spec gives: spec.issuer, else https://HOST when exposed, else
// https://NAME.NAMESPACE.svc with spec.tls. It must be https.
func appIssuer(app *unstructured.Unstructured) (string, error) {
	issuer, _, _ := unstructured.NestedString(app.Object, "status", "issuer")
	from := "status.issuer"
	if issuer == "" {
		issuer, from = specIssuer(app), "from the spec; the operator has not written status.issuer yet"
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("the issuer of ideasapp %s/%s is %q (%s), and kube-apiserver accepts only https issuers: "+
			"set spec.tls (a kubernetes.io/tls Secret, or cert-manager) and, to reach it from outside the cluster, spec.expose",
			app.GetNamespace(), app.GetName(), issuer, from)
	}
	return issuer, nil
}

func specIssuer(app *unstructured.Unstructured) string {
	if s, _, _ := unstructured.NestedString(app.Object, "spec", "issuer"); s != "" {
		return s
	}
	if h, _, _ := unstructured.NestedString(app.Object, "spec", "expose", "ingress", "host"); h != "" {
		return "https://" + h
	}
	if h, _, _ := unstructured.NestedString(app.Object, "spec", "expose", "gateway", "hostname"); h != "" {
		return "https://" + h
	}
	if _, ok, _ := unstructured.NestedMap(app.Object, "spec", "tls"); ok {
		return "https://" + app.GetName() + "." + app.GetNamespace() + ".svc"
	}
	return "http://" + app.GetName() + "." + app.GetNamespace() + ".svc"
}

// appCA is the CA certificate (PEM) of the app's TLS Secret; without one,
// note says what kube-apiserver then trusts and what to do.
func appCA(ctx context.Context, client dynamic.Interface, app *unstructured.Unstructured) (ca, note string, err error) {
	ns := app.GetNamespace()
	secret, from, optional := tlsSecretName(app)
	if secret == "" {
		return "", fmt.Sprintf("ideasapp %s/%s has no spec.tls, so certificateAuthority is left out: kube-apiserver trusts the issuer's "+
			"certificate only if its system roots do; if a private CA signs it, add certificateAuthority with that CA's PEM", ns, app.GetName()), nil
	}
	obj, err := client.Resource(secretsResource).Namespace(ns).Get(ctx, secret, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && optional:
		return "", fmt.Sprintf("the TLS Secret %s/%s (%s) does not exist, so certificateAuthority is left out: kube-apiserver trusts the "+
			"issuer's certificate only if its system roots do; if a private CA signs it, add certificateAuthority with that CA's PEM",
			ns, secret, from), nil
	case apierrors.IsNotFound(err):
		return "", "", fmt.Errorf("the TLS Secret %s/%s (%s) does not exist yet: create it, or, with cert-manager, see why it is not issued "+
			"(`kubectl describe ideasapp %s -n %s`, condition TLSReady)", ns, secret, from, app.GetName(), ns)
	case err != nil:
		return "", "", fmt.Errorf("get the TLS Secret %s/%s (%s): %w", ns, secret, from, err)
	}
	encoded, _, _ := unstructured.NestedString(obj.Object, "data", caKey)
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "", "", fmt.Errorf("the TLS Secret %s/%s: %s is not base64: %w", ns, secret, caKey, err)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return "", fmt.Sprintf("the TLS Secret %s/%s (%s) has no %s, so certificateAuthority is left out: kube-apiserver trusts the issuer's "+
			"certificate only if its system roots do (right for a publicly trusted certificate, such as ACME's). For a private CA, put its "+
			"certificate in the Secret's %s (cert-manager does for CA and self-signed issuers) and run setup-cluster again, or add "+
			"certificateAuthority by hand", ns, secret, from, caKey, caKey), nil
	}
	if err := checkPEMCertificates(raw); err != nil {
		return "", "", fmt.Errorf("the TLS Secret %s/%s: %s: %w", ns, secret, caKey, err)
	}
	return string(raw), "", nil
}

// tlsSecretName is the Secret holding the certificate verifiers see:
// spec.tls.secretName; the Secret cert-manager writes for
// spec.tls.certManager; or, for an Ingress without spec.tls, the Ingress's
// TLS Secret (made by cert-manager's ingress-shim or by hand). optional: a
// missing Secret is a note, not an error.
func tlsSecretName(app *unstructured.Unstructured) (name, from string, optional bool) {
	if s, _, _ := unstructured.NestedString(app.Object, "spec", "tls", "secretName"); s != "" {
		return s, "spec.tls.secretName", false
	}
	if _, ok, _ := unstructured.NestedMap(app.Object, "spec", "tls", "certManager"); ok {
		return contract.TLSSecretName(app.GetName()), "written by cert-manager for spec.tls.certManager", false
	}
	if _, ok, _ := unstructured.NestedMap(app.Object, "spec", "expose", "ingress"); ok {
		return contract.TLSSecretName(app.GetName()), "the Ingress's TLS Secret", true
	}
	return "", "", false
}

// checkPEMCertificates: b holds PEM certificates and nothing else.
func checkPEMCertificates(b []byte) error {
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if strings.TrimSpace(string(rest)) != "" {
				return errors.New("holds text that is not a PEM certificate")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a PEM %s, want CERTIFICATE", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("holds an unreadable certificate: %w", err)
		}
		n++
	}
	if n == 0 {
		return errors.New("holds no PEM certificate")
	}
	return nil
}

// yamlString quotes s as a YAML double-quoted scalar (JSON strings are).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// indent puts n spaces before every line of s, for a YAML block scalar.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + strings.TrimRight(l, "\r")
	}
	return strings.Join(lines, "\n")
}

var setupTemplate = template.Must(template.New("setup").Funcs(template.FuncMap{"q": yamlString, "sh": shellQuote, "indent": indent}).Parse(
	`# (1) kube-apiserver: trust the ID tokens of IdeasApp {{.Namespace}}/{{.App}}.
# Save this document on every control-plane node, for example as
# /etc/kubernetes/authentication-config.yaml, and start kube-apiserver with
#   --authentication-config=/etc/kubernetes/authentication-config.yaml
# (not together with any --oidc-* flag). kube-apiserver reloads the file when it
# changes. If you have an AuthenticationConfiguration already, add this entry to
# its jwt list. Users become {{.Prefix}}USERNAME, in the groups {{.Prefix}}member or
# {{.Prefix}}admin: bind those in RBAC.
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: {{q .Issuer}}
    audiences:
    - {{q .Audience}}
{{- if .CA}}
    certificateAuthority: |
{{indent 6 .CA}}
{{- end}}
  claimMappings:
    username:
      claim: preferred_username
      prefix: {{q .Prefix}}
    groups:
      claim: groups
      prefix: {{q .Prefix}}
  # An API client's session is a machine acting for its owner, not the person:
  # its tokens carry client_id, and it does not sign in to the cluster.
  claimValidationRules:
  - expression: "!has(claims.client_id)"
    message: "ID tokens of sessions started by an ideapool API client are not accepted"
---
# (2) kubectl: the user that signs in with ideapool. Add it to your kubeconfig:
#   kubectl config set-credentials {{.User}} \
#     --exec-api-version=client.authentication.k8s.io/v1 --exec-command=kubectl \
#     --exec-arg=ideapool --exec-arg=credential \
#     --exec-arg={{sh (print "--issuer=" .Issuer)}} --exec-arg={{sh (print "--username=" .Username)}} \
#     --exec-interactive-mode=IfAvailable
# (or keep this document as a file and add it to KUBECONFIG), pair it with your cluster:
#   kubectl config set-context {{.User}} --cluster=YOUR-CLUSTER --user={{.User}}
# and sign in once; kubectl then refreshes the session by itself:
#   kubectl ideapool login --issuer {{sh .Issuer}} --username {{sh .Username}}{{if .CA}} --certificate-authority ca.crt{{end}}
{{- if .CA}}
# (ca.crt: the certificateAuthority above, saved as a file)
{{- end}}
apiVersion: v1
kind: Config
users:
- name: {{q .User}}
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubectl
      args:
      - ideapool
      - credential
      - {{q (print "--issuer=" .Issuer)}}
      - {{q (print "--username=" .Username)}}
      interactiveMode: IfAvailable
      provideClusterInfo: false
`))
