package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

func withTLSSecret(name string) appOption {
	return func(a *v1alpha1.IdeasApp) { a.Spec.TLS = &v1alpha1.TLSSpec{SecretName: name} }
}

// tlsSecret creates a kubernetes.io/tls Secret (its content is not
// checked by the operator: the pods read it).
func tlsSecret(t *testing.T, ns, name string) {
	t.Helper()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")}}
	if err := k8sClient.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
}

// TestTLSFromSecret: the pods serve HTTPS from the named Secret, the probes
// and the Service follow, the issuer becomes https://NAME.NAMESPACE.svc,
// and TLSReady tells whether the Secret is there.
func TestTLSFromSecret(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "sec", withTLSSecret("sec-cert")))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	res := r.reconcile(t, app)
	app = getApp(t, app)

	checkConditions(t, app, map[string][2]string{
		v1alpha1.ConditionTLSReady: {"False", v1alpha1.ReasonSecretNotFound},
		v1alpha1.ConditionReady:    {"False", v1alpha1.ReasonTLSNotReady},
	})
	if res.RequeueAfter <= 0 || res.RequeueAfter > apiRecheck {
		t.Errorf("RequeueAfter %s while the TLS Secret is missing, want at most %s", res.RequeueAfter, apiRecheck)
	}
	issuer := "https://sec." + ns + ".svc"
	if app.Status.Issuer != issuer || app.Status.JWKSURI != issuer+"/.well-known/jwks.json" {
		t.Errorf("status issuer %q jwksURI %q, want %s", app.Status.Issuer, app.Status.JWKSURI, issuer)
	}

	var dep appsv1.Deployment
	get(t, ns, "sec", &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--issuer=" + issuer, "--tls-cert-file=/etc/ideapool/tls/tls.crt", "--tls-key-file=/etc/ideapool/tls/tls.key"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %s", c.Args, want)
		}
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Port.StrVal != "https" {
			t.Errorf("%s probe %+v, want HTTPS on the https port", name, p)
		}
	}
	if c.Ports[0].Name != "https" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("container port %+v, want https 8080", c.Ports[0])
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.Name == "tls" {
			mounted = m.MountPath == "/etc/ideapool/tls" && m.ReadOnly
		}
	}
	var volume *corev1.SecretVolumeSource
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "tls" {
			volume = v.Secret
		}
	}
	if !mounted || volume == nil || volume.SecretName != "sec-cert" || volume.DefaultMode == nil || *volume.DefaultMode != 0o440 {
		t.Errorf("TLS volume %+v mounted %v, want Secret sec-cert read-only at /etc/ideapool/tls, mode 0440", volume, mounted)
	}
	var svc corev1.Service
	get(t, ns, "sec", &svc)
	if p := svc.Spec.Ports[0]; p.Name != "https" || p.Port != 443 || p.TargetPort.StrVal != "https" {
		t.Errorf("service port %+v, want https 443 → https", p)
	}

	// The Secret appears: TLSReady.
	tlsSecret(t, ns, "sec-cert")
	r.reconcile(t, app)
	app = getApp(t, app)
	checkConditions(t, app, map[string][2]string{v1alpha1.ConditionTLSReady: {"True", v1alpha1.ReasonSecretFound}})

	// spec.tls removed: plain HTTP again, the condition goes, and the
	// issuer change is announced.
	app.Spec.TLS = nil
	if err := k8sClient.Update(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	r.drainEvents()
	r.reconcile(t, app)
	app = getApp(t, app)
	if c := condition(app, v1alpha1.ConditionTLSReady); c.Type != "" {
		t.Errorf("TLSReady %s/%s still there without spec.tls", c.Status, c.Reason)
	}
	get(t, ns, "sec", &svc)
	if p := svc.Spec.Ports[0]; p.Name != "http" || p.Port != 80 || len(svc.Spec.Ports) != 2 {
		t.Errorf("service ports %+v, want http 80 (and metrics) again", svc.Spec.Ports)
	}
	get(t, ns, "sec", &dep)
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--tls-") {
			t.Errorf("arg %s without spec.tls", a)
		}
	}
	events := strings.Join(r.drainEvents(), "\n")
	if !strings.Contains(events, "Warning "+v1alpha1.EventIssuerChanged) || !strings.Contains(events, issuer) ||
		!strings.Contains(events, "http://sec."+ns+".svc") {
		t.Errorf("no %s warning naming the old and new issuers:\n%s", v1alpha1.EventIssuerChanged, events)
	}
}

// TestExposeIngress: an Ingress for the host with TLS, routing to the
// Service's API port; the issuer is https://HOST; Exposed says so; gone
// again when spec.expose is.
func TestExposeIngress(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	app := newIdeasApp(ns, "pub", withTLSSecret("pub-cert"))
	app.Spec.Expose = &v1alpha1.ExposeSpec{Ingress: &v1alpha1.IngressExpose{ClassName: "nginx", Host: "id.example.com",
		Annotations: map[string]string{"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}}}
	createApp(t, app)
	tlsSecret(t, ns, "pub-cert")
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	app = getApp(t, app)

	if app.Status.Issuer != "https://id.example.com" || app.Status.JWKSURI != "https://id.example.com/.well-known/jwks.json" {
		t.Errorf("status issuer %q jwksURI %q, want https://id.example.com", app.Status.Issuer, app.Status.JWKSURI)
	}
	checkConditions(t, app, map[string][2]string{
		v1alpha1.ConditionExposed:  {"True", v1alpha1.ReasonIngressReady},
		v1alpha1.ConditionTLSReady: {"True", v1alpha1.ReasonSecretFound},
		v1alpha1.ConditionReady:    {"False", v1alpha1.ReasonNotAvailable},
	})
	var ing networkingv1.Ingress
	get(t, ns, "pub", &ing)
	checkOwned(t, app, &ing)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" ||
		ing.Annotations["nginx.ingress.kubernetes.io/backend-protocol"] != "HTTPS" {
		t.Errorf("ingress class %v annotations %v", ing.Spec.IngressClassName, ing.Annotations)
	}
	if len(ing.Spec.TLS) != 1 || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"id.example.com"}) || ing.Spec.TLS[0].SecretName != "pub-cert" {
		t.Errorf("ingress tls %+v, want id.example.com from pub-cert", ing.Spec.TLS)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "id.example.com" || ing.Spec.Rules[0].HTTP == nil || len(ing.Spec.Rules[0].HTTP.Paths) != 1 {
		t.Fatalf("ingress rules %+v", ing.Spec.Rules)
	}
	path := ing.Spec.Rules[0].HTTP.Paths[0]
	if path.Path != "/" || *path.PathType != networkingv1.PathTypePrefix || path.Backend.Service == nil ||
		path.Backend.Service.Name != "pub" || path.Backend.Service.Port.Name != "https" {
		t.Errorf("ingress path %+v, want / to Service pub port https", path)
	}
	var dep appsv1.Deployment
	get(t, ns, "pub", &dep)
	if !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--issuer=https://id.example.com") {
		t.Errorf("the pods' issuer is not the exposed host: %q", dep.Spec.Template.Spec.Containers[0].Args)
	}

	// Without spec.tls the Ingress still terminates TLS for the host (its
	// Secret is pub-tls) and speaks HTTP to the pods.
	app.Spec.TLS = nil
	if err := k8sClient.Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	get(t, ns, "pub", &ing)
	if ing.Spec.TLS[0].SecretName != "pub-tls" || ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name != "http" {
		t.Errorf("without spec.tls: ingress tls %+v backend %+v, want Secret pub-tls and port http",
			ing.Spec.TLS, ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port)
	}
	if got := getApp(t, app).Status.Issuer; got != "https://id.example.com" {
		t.Errorf("issuer %q without spec.tls, want the exposed https://id.example.com", got)
	}

	// Not exposed any more: the Ingress and the condition go.
	app = getApp(t, app)
	app.Spec.Expose = nil
	if err := k8sClient.Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "pub"}, &networkingv1.Ingress{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Ingress is still there without spec.expose (err %v)", err)
	}
	if c := condition(getApp(t, app), v1alpha1.ConditionExposed); c.Type != "" {
		t.Errorf("Exposed %s/%s still there without spec.expose", c.Status, c.Reason)
	}
}

// TestIssuerColumn: `kubectl get ideasapp` shows the issuer (the API
// server's table, as kubectl asks for it).
func TestIssuerColumn(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "col", withIngress("login.example.org")))
	newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0)).reconcile(t, app)

	cs, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cs.RESTClient().Get().AbsPath("/apis/ideapool.dev/v1alpha1/namespaces", ns, "ideasapps").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	col := slices.IndexFunc(table.ColumnDefinitions, func(c metav1.TableColumnDefinition) bool { return c.Name == "Issuer" })
	if col < 0 || len(table.Rows) != 1 {
		t.Fatalf("table columns %+v rows %d: want an Issuer column and one row", table.ColumnDefinitions, len(table.Rows))
	}
	if got := table.Rows[0].Cells[col]; got != "https://login.example.org" {
		t.Errorf("Issuer column %v, want https://login.example.org", got)
	}
}

// TestIssuerResolution: which issuer an IdeasApp gets, by spec.
func TestIssuerResolution(t *testing.T) {
	gw := &v1alpha1.GatewayExpose{Hostname: "gw.example.com", ParentRefs: []v1alpha1.ParentReference{{Name: "edge"}}}
	tests := map[string]struct {
		spec v1alpha1.IdeasAppSpec
		want string
	}{
		"nothing: the Service over HTTP": {want: "http://pool.ns.svc"},
		"tls alone: the Service over HTTPS": {
			spec: v1alpha1.IdeasAppSpec{TLS: &v1alpha1.TLSSpec{SecretName: "c"}}, want: "https://pool.ns.svc"},
		"an Ingress: its host": {
			spec: v1alpha1.IdeasAppSpec{Expose: &v1alpha1.ExposeSpec{Ingress: &v1alpha1.IngressExpose{Host: "in.example.com"}}},
			want: "https://in.example.com"},
		"a Gateway with tls: its hostname": {
			spec: v1alpha1.IdeasAppSpec{TLS: &v1alpha1.TLSSpec{SecretName: "c"}, Expose: &v1alpha1.ExposeSpec{Gateway: gw}},
			want: "https://gw.example.com"},
		"spec.issuer wins": {
			spec: v1alpha1.IdeasAppSpec{Issuer: "https://sso.example.net/pool", Expose: &v1alpha1.ExposeSpec{Gateway: gw}},
			want: "https://sso.example.net/pool"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := resolve(&v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Name: "pool", Namespace: "ns"}, Spec: tc.spec}, "img")
			if err != nil {
				t.Fatal(err)
			}
			if s.issuer != tc.want {
				t.Errorf("issuer %q, want %q", s.issuer, tc.want)
			}
		})
	}
}

// TestResolveRefuses: what the CRD's rules refuse, resolve refuses too, for
// objects stored before the rules existed.
func TestResolveRefuses(t *testing.T) {
	tests := map[string]struct {
		spec v1alpha1.IdeasAppSpec
		want string
	}{
		"tls with both":    {spec: v1alpha1.IdeasAppSpec{TLS: &v1alpha1.TLSSpec{SecretName: "c", CertManager: &v1alpha1.CertManagerTLS{IssuerRef: v1alpha1.IssuerReference{Name: "ca"}}}}, want: "spec.tls"},
		"tls with neither": {spec: v1alpha1.IdeasAppSpec{TLS: &v1alpha1.TLSSpec{}}, want: "spec.tls"},
		"expose with neither": {
			spec: v1alpha1.IdeasAppSpec{Expose: &v1alpha1.ExposeSpec{}}, want: "spec.expose"},
		"a gateway without parents": {
			spec: v1alpha1.IdeasAppSpec{Expose: &v1alpha1.ExposeSpec{Gateway: &v1alpha1.GatewayExpose{Hostname: "h.example.com"}}}, want: "parentRef"},
		"a trusted proxy that is no CIDR": {
			spec: v1alpha1.IdeasAppSpec{TrustedProxies: []string{"10.0.0.0/8", "the ingress"}}, want: "spec.trustedProxies[1]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := resolve(&v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Name: "pool", Namespace: "ns"}, Spec: tc.spec}, "img")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("resolve: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestWithoutIngressRights: an operator whose Role predates Ingresses (its
// image upgraded first) still serves the IdeasApps that ask for none.
func TestWithoutIngressRights(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "old-rbac"))
	forbidden := func(obj client.Object) error {
		if obj.GetObjectKind().GroupVersionKind().Kind == "Ingress" {
			return apierrors.NewForbidden(networkingv1.Resource("ingresses"), obj.GetName(), errors.New("no RBAC for Ingresses"))
		}
		return nil
	}
	c := interceptor.NewClient(k8sClient, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := forbidden(obj); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	r := newTestReconciler(c, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	checkConditions(t, getApp(t, app), map[string][2]string{v1alpha1.ConditionDegraded: {"False", v1alpha1.ReasonAsExpected}})
}
