package controllers

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// checkOwned fails unless obj is controlled by app (so it is garbage
// collected with it) and carries the common labels.
func checkOwned(t *testing.T, app *v1alpha1.IdeasApp, obj client.Object) {
	t.Helper()
	if !metav1.IsControlledBy(obj, app) {
		t.Errorf("%T %s: not controlled by the IdeasApp: %+v", obj, obj.GetName(), obj.GetOwnerReferences())
	}
	for k, v := range commonLabels(app) {
		if obj.GetLabels()[k] != v {
			t.Errorf("%T %s: label %s=%q, want %q", obj, obj.GetName(), k, obj.GetLabels()[k], v)
		}
	}
}

func TestChildrenSQLite(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "pool"))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	app = getApp(t, app)

	var sec corev1.Secret
	get(t, ns, "pool-keyset", &sec)
	checkOwned(t, app, &sec)
	if sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret type %q, want Opaque", sec.Type)
	}
	if ks := storedKeyset(t, app); len(ks.Keys) != 2 {
		t.Errorf("keyset has %d keys, want an active and a next one", len(ks.Keys))
	}

	var cm corev1.ConfigMap
	get(t, ns, "pool-config", &cm)
	checkOwned(t, app, &cm)
	wantData := map[string]string{
		"access-token-ttl": "10m0s", "refresh-token-ttl": "720h0m0s", "id-token-ttl": "1h0m0s",
		"refresh-reuse-grace": "5s", "jwks-max-age": "5m0s",
	}
	for k, v := range wantData {
		if cm.Data[k] != v {
			t.Errorf("configmap %s=%q, want %q", k, cm.Data[k], v)
		}
	}

	var sa corev1.ServiceAccount
	get(t, ns, "pool", &sa)
	checkOwned(t, app, &sa)

	var role rbacv1.Role
	get(t, ns, "pool", &role)
	checkOwned(t, app, &role)
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"pool-keyset"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"pool-config"}, Verbs: []string{"get", "list", "watch"}},
	}
	if !slices.EqualFunc(role.Rules, wantRules, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
			slices.Equal(a.ResourceNames, b.ResourceNames) && slices.Equal(a.Verbs, b.Verbs) && len(a.NonResourceURLs) == 0
	}) {
		t.Errorf("role rules = %+v, want exactly %+v", role.Rules, wantRules)
	}

	var rb rbacv1.RoleBinding
	get(t, ns, "pool", &rb)
	checkOwned(t, app, &rb)
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "pool" || len(rb.Subjects) != 1 ||
		rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != "pool" || rb.Subjects[0].Namespace != ns {
		t.Errorf("rolebinding = %+v %+v", rb.RoleRef, rb.Subjects)
	}

	var svc corev1.Service
	get(t, ns, "pool", &svc)
	checkOwned(t, app, &svc)
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["http"] != 80 || ports["metrics"] != 9090 || len(ports) != 2 {
		t.Errorf("service ports = %v, want http 80 and metrics 9090", ports)
	}
	if svc.Spec.Selector[labelInstance] != "pool" || svc.Spec.Selector[labelName] != "ideapool" {
		t.Errorf("service selector = %v", svc.Spec.Selector)
	}

	var pvc corev1.PersistentVolumeClaim
	get(t, ns, "pool-data", &pvc)
	checkOwned(t, app, &pvc)
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("pvc size %s, want 1Gi", got.String())
	}

	var dep appsv1.Deployment
	get(t, ns, "pool", &dep)
	checkOwned(t, app, &dep)
	if *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("deployment replicas %d strategy %s, want 1 Recreate", *dep.Spec.Replicas, dep.Spec.Strategy.Type)
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != "pool" {
		t.Errorf("pod service account %q", pod.ServiceAccountName)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context = %+v", psc)
	}
	c := pod.Containers[0]
	if c.Image != "ghcr.io/ideapool/ideapool:test" {
		t.Errorf("image %q, want the operator's --app-image", c.Image)
	}
	wantArgs := []string{"serve", "--listen=:8080", "--metrics-listen=:9090", "--issuer=http://pool." + ns + ".svc",
		"--keys=kubernetes:" + ns + "/pool-keyset", "--config=kubernetes:" + ns + "/pool-config",
		"--jwks-max-age=5m0s", "--key-publish-ahead=1h0m0s", "--clock-skew=1m0s", "--key-rotation-interval=720h0m0s",
		"--key-algorithm=ES256", "--shutdown-delay=5s", "--database=sqlite:/data/ideapool.db"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q\nwant %q", c.Args, wantArgs)
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context not restricted: %+v", sc)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != "http" {
		t.Errorf("liveness probe = %+v", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.StrVal != "http" {
		t.Errorf("readiness probe = %+v", p)
	}
	cports := map[string]int32{}
	for _, p := range c.Ports {
		cports[p.Name] = p.ContainerPort
	}
	if cports["http"] != 8080 || cports["metrics"] != 9090 {
		t.Errorf("container ports = %v", cports)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["tmp"] != "/tmp" || mounts["data"] != "/data" {
		t.Errorf("mounts = %v, want tmp at /tmp and data at /data", mounts)
	}
	for _, v := range pod.Volumes {
		if v.Name == "data" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "pool-data") {
			t.Errorf("data volume = %+v", v)
		}
		if v.Name == "tmp" && v.EmptyDir == nil {
			t.Errorf("tmp volume = %+v, want an emptyDir", v)
		}
	}

	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "pool"}, &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
		t.Errorf("a PodDisruptionBudget exists for one replica (err %v)", err)
	}
	if app.Status.Issuer != "http://pool."+ns+".svc" || app.Status.JWKSURI != "http://pool."+ns+".svc/.well-known/jwks.json" {
		t.Errorf("status issuer %q jwksURI %q", app.Status.Issuer, app.Status.JWKSURI)
	}

	// A second reconcile changes nothing: server-side apply is idempotent.
	rv := dep.ResourceVersion
	r.reconcile(t, app)
	get(t, ns, "pool", &dep)
	if dep.ResourceVersion != rv {
		t.Errorf("second reconcile rewrote the Deployment")
	}
}

func TestChildrenPostgres(t *testing.T) {
	ns := newNamespace(t)
	app := newIdeasApp(ns, "pg", withPostgres("db", "url"), withReplicas(3))
	app.Spec.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"}
	createApp(t, app)
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)

	var dep appsv1.Deployment
	get(t, ns, "pg", &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--trusted-proxies=10.0.0.0/8,fd00::/8") {
		t.Errorf("args %q lack the trusted proxies of the spec", c.Args)
	}
	if *dep.Spec.Replicas != 3 || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("replicas %d strategy %s", *dep.Spec.Replicas, dep.Spec.Strategy.Type)
	}
	for _, a := range c.Args {
		if len(a) >= 10 && a[:10] == "--database" {
			t.Errorf("arg %q: the URL must come from the environment", a)
		}
	}
	if len(c.Env) != 1 || c.Env[0].Name != "IDEAPOOL_DATABASE" || c.Env[0].ValueFrom == nil ||
		c.Env[0].ValueFrom.SecretKeyRef == nil || c.Env[0].ValueFrom.SecretKeyRef.Name != "db" || c.Env[0].ValueFrom.SecretKeyRef.Key != "url" {
		t.Errorf("env = %+v", c.Env)
	}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			t.Errorf("a data volume with PostgreSQL")
		}
	}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "pg-data"}, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Errorf("a PVC exists with PostgreSQL (err %v)", err)
	}
	var pdb policyv1.PodDisruptionBudget
	get(t, ns, "pg", &pdb)
	app = getApp(t, app)
	checkOwned(t, app, &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels[labelInstance] != "pg" {
		t.Errorf("pdb spec = %+v", pdb.Spec)
	}

	// Down to one replica: the PodDisruptionBudget goes away.
	app.Spec.Replicas = ptrTo(int32(1))
	if err := k8sClient.Update(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "pg"}, &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
		t.Errorf("PodDisruptionBudget still there with one replica (err %v)", err)
	}
}

func ptrTo[T any](v T) *T { return &v }
