package controllers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// testCRDs is the directory of cert-manager's and Gateway API's CRDs,
// fetched (pinned) by hack/test-crds.sh.
func testCRDs(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("IDEAPOOL_TEST_CRDS")
	if dir == "" {
		t.Fatal("IDEAPOOL_TEST_CRDS is not set: run `make test`, or IDEAPOOL_TEST_CRDS=$(hack/test-crds.sh) " +
			"with KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./controllers/ (it fetches the pinned cert-manager and Gateway API CRDs once)")
	}
	for _, sub := range []string{"cert-manager", "gateway-api"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
			t.Fatalf("IDEAPOOL_TEST_CRDS=%s: %v (run hack/test-crds.sh)", dir, err)
		}
	}
	return dir
}

func getUnstructured(t *testing.T, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, u)
}

// TestOptionalAPIs: spec.tls.certManager and spec.expose.gateway, first in
// a cluster without cert-manager and the Gateway API (conditions, Warning
// events, a recheck), then with their real CRDs installed (a Certificate
// and an HTTPRoute, owned, removed when no longer asked for, and never
// taken from someone else). The CRDs stay installed for the rest of the
// package, so the "without" half runs first, in this one test.
func TestOptionalAPIs(t *testing.T) {
	ctx := context.Background()
	crds := testCRDs(t)
	ns := newNamespace(t)
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	for _, gvk := range []schema.GroupVersionKind{certificateGVK, httpRouteGVK} {
		if ok, _ := r.apiExists(gvk); ok {
			t.Fatalf("the %s API is already installed: this test checks the operator without it first", gvk.Group)
		}
	}

	cm := newIdeasApp(ns, "cm", withIngress("cm.example.com"))
	cm.Spec.TLS = &v1alpha1.TLSSpec{CertManager: &v1alpha1.CertManagerTLS{IssuerRef: v1alpha1.IssuerReference{Name: "ca", Kind: "ClusterIssuer"}}}
	createApp(t, cm)
	gw := newIdeasApp(ns, "gw")
	gw.Spec.Expose = &v1alpha1.ExposeSpec{Gateway: &v1alpha1.GatewayExpose{Hostname: "gw.example.com",
		ParentRefs: []v1alpha1.ParentReference{{Name: "edge", Namespace: "infra", SectionName: "https"}}}}
	createApp(t, gw)

	t.Run("without the APIs", func(t *testing.T) {
		for _, tc := range []struct {
			app        *v1alpha1.IdeasApp
			conds      map[string][2]string
			event      string
			wantIssuer string
		}{
			{app: cm, event: v1alpha1.EventCertificateUnsupported, wantIssuer: "https://cm.example.com",
				conds: map[string][2]string{
					v1alpha1.ConditionTLSReady: {"False", v1alpha1.ReasonCertManagerNotInstalled},
					v1alpha1.ConditionReady:    {"False", v1alpha1.ReasonTLSNotReady},
				}},
			{app: gw, event: v1alpha1.EventHTTPRouteUnsupported, wantIssuer: "https://gw.example.com",
				conds: map[string][2]string{
					v1alpha1.ConditionExposed: {"False", v1alpha1.ReasonGatewayAPINotInstalled},
					v1alpha1.ConditionReady:   {"False", v1alpha1.ReasonNotExposed},
				}},
		} {
			r.drainEvents()
			res := r.reconcile(t, tc.app)
			app := getApp(t, tc.app)
			checkConditions(t, app, tc.conds)
			if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "Warning "+tc.event) {
				t.Errorf("%s: no %s warning:\n%s", app.Name, tc.event, ev)
			}
			if res.RequeueAfter <= 0 || res.RequeueAfter > apiRecheck {
				t.Errorf("%s: RequeueAfter %s while an API is missing, want at most %s", app.Name, res.RequeueAfter, apiRecheck)
			}
			if app.Status.Issuer != tc.wantIssuer {
				t.Errorf("%s: issuer %q, want %q", app.Name, app.Status.Issuer, tc.wantIssuer)
			}
			// The rest is in place: the Service and the keys do not wait.
			var svc corev1.Service
			get(t, ns, app.Name, &svc)
			if app.Status.ActiveKeyID == "" {
				t.Errorf("%s: no signing key while waiting for an API", app.Name)
			}
		}
	})

	if _, err := envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(crds, "cert-manager"), filepath.Join(crds, "gateway-api")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("install the cert-manager and Gateway API CRDs: %v", err)
	}

	t.Run("cert-manager installed", func(t *testing.T) {
		r.reconcile(t, cm)
		app := getApp(t, cm)
		cert, err := getUnstructured(t, certificateGVK, ns, "cm")
		if err != nil {
			t.Fatalf("no Certificate once the API exists: %v", err)
		}
		checkOwned(t, app, cert)
		secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
		dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
		wantNames := []string{"cm", "cm." + ns, "cm." + ns + ".svc", "cm." + ns + ".svc.cluster.local", "cm.example.com"}
		if secretName != "cm-tls" || !slices.Equal(dnsNames, wantNames) {
			t.Errorf("Certificate secretName %q dnsNames %q, want cm-tls and %q", secretName, dnsNames, wantNames)
		}
		if issuer["name"] != "ca" || issuer["kind"] != "ClusterIssuer" || issuer["group"] != "cert-manager.io" {
			t.Errorf("Certificate issuerRef %v, want ClusterIssuer ca of cert-manager.io", issuer)
		}
		checkConditions(t, app, map[string][2]string{v1alpha1.ConditionTLSReady: {"False", v1alpha1.ReasonSecretNotFound}})
		if c := condition(app, v1alpha1.ConditionTLSReady); !strings.Contains(c.Message, "cert-manager has not issued") {
			t.Errorf("TLSReady message %q does not say cert-manager is at work", c.Message)
		}
		var ing networkingv1.Ingress
		get(t, ns, "cm", &ing)
		if ing.Spec.TLS[0].SecretName != "cm-tls" {
			t.Errorf("the Ingress serves Secret %q, want cm-tls (the Certificate covers the host)", ing.Spec.TLS[0].SecretName)
		}

		// cert-manager issues the Secret.
		tlsSecret(t, ns, "cm-tls")
		r.reconcile(t, cm)
		checkConditions(t, getApp(t, cm), map[string][2]string{v1alpha1.ConditionTLSReady: {"True", v1alpha1.ReasonSecretFound}})

		// Idempotent: a second pass leaves the Certificate as it was.
		rv := cert.GetResourceVersion()
		r.reconcile(t, cm)
		if cert, _ = getUnstructured(t, certificateGVK, ns, "cm"); cert.GetResourceVersion() != rv {
			t.Errorf("a second reconcile rewrote the Certificate")
		}
	})

	t.Run("Gateway API installed", func(t *testing.T) {
		r.reconcile(t, gw)
		app := getApp(t, gw)
		route, err := getUnstructured(t, httpRouteGVK, ns, "gw")
		if err != nil {
			t.Fatalf("no HTTPRoute once the API exists: %v", err)
		}
		checkOwned(t, app, route)
		hostnames, _, _ := unstructured.NestedStringSlice(route.Object, "spec", "hostnames")
		parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
		rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
		if !slices.Equal(hostnames, []string{"gw.example.com"}) || len(parents) != 1 || len(rules) != 1 {
			t.Fatalf("HTTPRoute spec %v", route.Object["spec"])
		}
		parent := parents[0].(map[string]any)
		if parent["name"] != "edge" || parent["namespace"] != "infra" || parent["sectionName"] != "https" {
			t.Errorf("parentRef %v, want edge/https in infra", parent)
		}
		backends, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
		if len(backends) != 1 || backends[0].(map[string]any)["name"] != "gw" || backends[0].(map[string]any)["port"] != int64(80) {
			t.Errorf("backendRefs %v, want Service gw port 80", backends)
		}
		checkConditions(t, app, map[string][2]string{v1alpha1.ConditionExposed: {"True", v1alpha1.ReasonHTTPRouteReady}})
		rv := route.GetResourceVersion()
		r.reconcile(t, gw)
		if route, _ = getUnstructured(t, httpRouteGVK, ns, "gw"); route.GetResourceVersion() != rv {
			t.Errorf("a second reconcile rewrote the HTTPRoute")
		}
	})

	t.Run("someone else's Certificate and HTTPRoute are left alone", func(t *testing.T) {
		for _, tc := range []struct {
			gvk  schema.GroupVersionKind
			spec map[string]any
			opt  appOption
		}{
			{certificateGVK, map[string]any{"secretName": "theirs", "dnsNames": []any{"theirs.example.com"},
				"issuerRef": map[string]any{"name": "theirs"}},
				func(a *v1alpha1.IdeasApp) { a.Spec.TLS = cm.Spec.TLS }},
			{httpRouteGVK, map[string]any{"hostnames": []any{"theirs.example.com"}},
				func(a *v1alpha1.IdeasApp) { a.Spec.Expose = gw.Spec.Expose }},
		} {
			name := "taken-" + strings.ToLower(tc.gvk.Kind)
			theirs := &unstructured.Unstructured{Object: map[string]any{"spec": tc.spec}}
			theirs.SetGroupVersionKind(tc.gvk)
			theirs.SetNamespace(ns)
			theirs.SetName(name)
			if err := k8sClient.Create(ctx, theirs); err != nil {
				t.Fatal(err)
			}
			app := createApp(t, newIdeasApp(ns, name, tc.opt))
			r.drainEvents()
			r.reconcile(t, app)
			after, err := getUnstructured(t, tc.gvk, ns, name)
			if err != nil || after.GetResourceVersion() != theirs.GetResourceVersion() || len(after.GetOwnerReferences()) != 0 {
				t.Errorf("the foreign %s was changed or adopted (err %v): owners %v", tc.gvk.Kind, err, after.GetOwnerReferences())
			}
			want := tc.gvk.Kind + " " + name
			if c := condition(getApp(t, app), v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonChildConflict || !strings.Contains(c.Message, want) {
				t.Errorf("Ready %s %q, want %s naming %s", c.Reason, c.Message, v1alpha1.ReasonChildConflict, want)
			}
			if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "Warning "+v1alpha1.EventChildConflict) || !strings.Contains(ev, want) {
				t.Errorf("no %s warning naming %s:\n%s", v1alpha1.EventChildConflict, want, ev)
			}
		}
	})

	t.Run("no longer asked for: deleted", func(t *testing.T) {
		for _, tc := range []struct {
			app   *v1alpha1.IdeasApp
			gvk   schema.GroupVersionKind
			unset func(*v1alpha1.IdeasApp)
		}{
			{cm, certificateGVK, func(a *v1alpha1.IdeasApp) { a.Spec.TLS = nil }},
			{gw, httpRouteGVK, func(a *v1alpha1.IdeasApp) { a.Spec.Expose = nil }},
		} {
			app := getApp(t, tc.app)
			tc.unset(app)
			if err := k8sClient.Update(ctx, app); err != nil {
				t.Fatal(err)
			}
			r.reconcile(t, app)
			if _, err := getUnstructured(t, tc.gvk, ns, app.Name); !apierrors.IsNotFound(err) {
				t.Errorf("%s %s still there when no longer asked for (err %v)", tc.gvk.Kind, app.Name, err)
			}
		}
		if c := condition(getApp(t, gw), v1alpha1.ConditionExposed); c.Type != "" {
			t.Errorf("Exposed still set without spec.expose: %s", c.Reason)
		}
	})
}
