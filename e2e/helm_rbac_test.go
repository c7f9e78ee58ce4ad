package e2e_test

// Least privilege with the chart: operator.watchNamespaces renders a Role in
// each watched namespace instead of a ClusterRole, and `ideapool operator`
// running with exactly those rights (impersonating the chart's
// ServiceAccount) reconciles an IdeasApp in a watched namespace and cannot
// read a Secret anywhere else.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestChartWatchNamespacesRendersRoles: with operator.watchNamespaces the
// chart grants the generated rules in each watched namespace and nothing
// cluster-wide, and passes the namespaces to the operator.
func TestChartWatchNamespacesRendersRoles(t *testing.T) {
	bins := helmBinaries(t)
	generated := ruleSet(readYAML(t, "config/rbac/role.yaml")["rules"])
	for _, helm := range []string{"helm3", "helm4"} {
		t.Run(helm, func(t *testing.T) {
			objs := helmTemplate(t, bins[helm], "", "--set", "operator.watchNamespaces={team-b,team-a},operator.watchNamespace=team-a")
			for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
				if n := len(find(objs, kind)); n != 0 {
					t.Errorf("with operator.watchNamespaces the chart still renders %d %s(s)", n, kind)
				}
			}
			roles := map[string]map[string]bool{}
			for _, r := range find(objs, "Role") {
				if !strings.HasSuffix(r.name(), "-leader-election") {
					ns, _ := r.get("metadata", "namespace").(string)
					roles[ns] = ruleSet(r["rules"])
				}
			}
			bound := map[string]bool{}
			for _, b := range find(objs, "RoleBinding") {
				if !strings.HasSuffix(b.name(), "-leader-election") && b.get("roleRef", "kind") == "Role" {
					ns, _ := b.get("metadata", "namespace").(string)
					bound[ns] = true
				}
			}
			if len(roles) != 2 || roles["team-a"] == nil || roles["team-b"] == nil || !bound["team-a"] || !bound["team-b"] {
				t.Fatalf("want a Role and a RoleBinding in team-a and team-b (once each), got Roles in %v, bindings in %v", keys(roles), bound)
			}
			for ns, got := range roles {
				for rule := range generated {
					if !strings.HasPrefix(rule, "coordination.k8s.io/") && !got[rule] {
						t.Errorf("the Role in %s lacks %s of config/rbac/role.yaml", ns, rule)
					}
				}
				for rule := range got {
					if !generated[rule] || strings.HasPrefix(rule, "coordination.k8s.io/") {
						t.Errorf("the Role in %s grants %s beyond the generated rules (leases belong to the leader-election Role)", ns, rule)
					}
				}
			}
			args := fmt.Sprint(find(objs, "Deployment")[0].get("spec", "template", "spec", "containers"))
			if !strings.Contains(args, "--watch-namespaces=team-a,team-b") {
				t.Errorf("the operator is not started with --watch-namespaces=team-a,team-b: %s", args)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestChartSchemaChecksExposure: the values of spec.tls, spec.expose,
// spec.trustedProxies and operator.watchNamespaces are checked by
// values.schema.json before anything reaches the cluster.
func TestChartSchemaChecksExposure(t *testing.T) {
	bins := helmBinaries(t)
	refused := map[string]struct{ set, want string }{
		"tls with a Secret and cert-manager": {"app.spec.tls.secretName=c,app.spec.tls.certManager.issuerRef.name=ca", "tls"},
		"tls with neither":                   {"app.spec.tls.secretname=c", "secretname"},
		"cert-manager without an issuer":     {"app.spec.tls.certManager.issuerRef.kind=ClusterIssuer", "name"},
		"an Ingress host that is a URL":      {"app.spec.expose.ingress.host=https://id.example.com", "host"},
		"an Ingress and a Gateway": {"app.spec.expose.ingress.host=id.example.com,app.spec.expose.gateway.hostname=id.example.com," +
			"app.spec.expose.gateway.parentRefs[0].name=edge", "expose"},
		"a Gateway without parents":                {"app.spec.expose.gateway.hostname=id.example.com", "parentRefs"},
		"a trusted proxy that is not a CIDR":       {"app.spec.trustedProxies={ingress-nginx}", "trustedProxies"},
		"an IPv4 prefix over 32":                   {"app.spec.trustedProxies={10.0.0.0/33}", "trustedProxies"},
		"an octet over 255":                        {"app.spec.trustedProxies={300.0.0.0/8}", "trustedProxies"},
		"an IPv6 prefix over 128":                  {"app.spec.trustedProxies={fd00::/129}", "trustedProxies"},
		"three colons":                             {"app.spec.trustedProxies={:::/64}", "trustedProxies"},
		"an address without a prefix":              {"app.spec.trustedProxies={10.1.2.3}", "trustedProxies"},
		"a TLS Secret name that is not a DNS name": {"app.spec.tls.secretName=Bad_Name", "secretName"},
		"a namespace that is not one":              {"operator.watchNamespaces={Team_A}", "watchNamespaces"},
	}
	accepted := []string{
		"app.spec.tls.secretName=pool-cert,app.spec.expose.ingress.host=id.example.com,app.spec.expose.ingress.className=nginx",
		"app.spec.tls.certManager.issuerRef.name=ca,app.spec.tls.certManager.issuerRef.kind=ClusterIssuer",
		"app.spec.expose.gateway.hostname=id.example.com,app.spec.expose.gateway.parentRefs[0].name=edge," +
			"app.spec.expose.gateway.parentRefs[0].namespace=infra,app.spec.expose.gateway.parentRefs[0].sectionName=https",
		"app.spec.trustedProxies={10.0.0.0/8,fd00::/8},operator.watchNamespaces={team-a}",
		"app.spec.trustedProxies={0.0.0.0/0,10.1.2.3/32,::/0,2001:db8::/32,fe80::1:2/64,::1/128}",
	}
	for _, helm := range []string{"helm3", "helm4"} {
		for name, tc := range refused {
			t.Run(helm+"/refuses "+name, func(t *testing.T) {
				out, err := runTool(nil, "", bins[helm], "template", "ideapool", chartDir, "--set", tc.set)
				if err == nil {
					t.Fatalf("--set %s was accepted; values.schema.json must refuse it\n%.300s", tc.set, out)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("--set %s: the error does not name %q: %v", tc.set, tc.want, err)
				}
			})
		}
		for _, set := range accepted {
			t.Run(helm+"/accepts "+set, func(t *testing.T) {
				if out, err := runTool(nil, "", bins[helm], "template", "ideapool", chartDir, "--set", set); err != nil {
					t.Fatalf("--set %s refused: %v\n%.300s", set, err, out)
				}
			})
		}
	}
}

// TestChartNamespacedOperatorOnAPIServer installs the chart with
// operator.watchNamespaces on a real API server and runs the operator as its
// Deployment would (its arguments, its ServiceAccount, only the chart's
// RBAC).
func TestChartNamespacedOperatorOnAPIServer(t *testing.T) {
	c := newChartCluster(t, helmBinaries(t))
	ctx := context.Background()
	const release, releaseNS, watched, other = "scoped", "ideapool-system", "team-a", "team-other"
	for _, ns := range []string{watched, other} {
		if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.helm(t, "helm4", "install", release, chartDir, "--namespace", releaseNS, "--create-namespace",
		"--set", "operator.watchNamespaces={"+watched+"}")
	op := c.runChartOperator(t, releaseNS, release)
	if !slices.Contains(op.args, "--watch-namespaces="+watched) {
		t.Fatalf("the chart's operator is not started with --watch-namespaces=%s: %q", watched, op.args)
	}
	logs := op.logs

	// The chart's own IdeasApp goes into the watched namespace (the release's
	// is not watched) and is reconciled there.
	c.waitApp(t, watched, release+"-ideapool", 10*time.Minute)

	create := func(ns, name string) {
		t.Helper()
		app := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "ideapool.dev/v1alpha1", "kind": "IdeasApp",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec":     map[string]any{"signingKeys": map[string]any{"algorithm": "ES256"}},
		}}
		if _, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns).Create(ctx, app, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(watched, "pool")
	create(other, "elsewhere")

	var active string
	var errS, errD, errR error
	waitUntil(t, func() bool {
		if u := c.app(t, watched, "pool"); u != nil {
			active, _, _ = unstructured.NestedString(u.Object, "status", "activeKeyID")
		}
		_, errS = c.client.CoreV1().Secrets(watched).Get(ctx, "pool-keyset", metav1.GetOptions{})
		_, errD = c.client.AppsV1().Deployments(watched).Get(ctx, "pool", metav1.GetOptions{})
		_, errR = c.client.RbacV1().RoleBindings(watched).Get(ctx, "pool", metav1.GetOptions{})
		return active != "" && errS == nil && errD == nil && errR == nil
	}, func() string {
		return fmt.Sprintf("with the chart's Role in %s the operator did not reconcile IdeasApp pool: status.activeKeyID %q, keyset %v, Deployment %v, RoleBinding %v\n%s",
			watched, active, errS, errD, errR, logs)
	})
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the operator met a permission it lacks:\n%s", logs)
	}

	// Outside the watched namespace: not reconciled, and no rights at all.
	if _, err := c.client.CoreV1().Secrets(other).Get(ctx, "elsewhere-keyset", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the IdeasApp in the unwatched namespace %s got a keyset (err %v)", other, err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-yours", Namespace: other}, StringData: map[string]string{"k": "v"}}
	if _, err := c.client.CoreV1().Secrets(other).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfigAs(t, releaseNS, release+"-ideapool-operator"))
	if err != nil {
		t.Fatal(err)
	}
	asOperator := kubernetes.NewForConfigOrDie(cfg)
	if _, err := asOperator.CoreV1().Secrets(other).Get(ctx, "not-yours", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the operator's ServiceAccount reads a Secret in %s: err %v, want Forbidden", other, err)
	}
	if _, err := asOperator.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the operator's ServiceAccount lists Secrets cluster-wide: err %v, want Forbidden", err)
	}
	for what, err := range map[string]error{
		"Deployments in " + other: func() error {
			_, err := asOperator.AppsV1().Deployments(other).List(ctx, metav1.ListOptions{})
			return err
		}(),
		"Services in " + other: func() error {
			_, err := asOperator.CoreV1().Services(other).List(ctx, metav1.ListOptions{})
			return err
		}(),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("the operator's ServiceAccount lists %s: err %v, want Forbidden", what, err)
		}
	}
	// The rights it has are where it works.
	if _, err := asOperator.CoreV1().Secrets(watched).Get(ctx, "pool-keyset", metav1.GetOptions{}); err != nil {
		t.Errorf("the operator's ServiceAccount cannot read the keyset it manages in %s: %v", watched, err)
	}
}
