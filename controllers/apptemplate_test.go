package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
)

// templateName is the template ConfigMap of every test, as the chart names
// it for the release "ideapool".
const templateName = "ideapool-app-template"

// appYAML is a template's IdeasApp "pool": the given spec lines (YAML,
// indented as under spec:) and the chart's labels.
func appYAML(specLines ...string) string {
	s := `apiVersion: ideapool.dev/v1alpha1
kind: IdeasApp
metadata:
  name: pool
  labels:
    app.kubernetes.io/managed-by: ideapool-operator
    app.kubernetes.io/instance: ideapool
spec:
`
	for _, l := range specLines {
		s += "  " + l + "\n"
	}
	return s
}

// putTemplate creates or updates the template ConfigMap of namespace ns
// (keep "" leaves the key out) and returns it as stored.
func putTemplate(t *testing.T, ns, app, keep string) *corev1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	data := map[string]string{AppTemplateKey: app}
	if keep != "" {
		data[AppTemplateKeepKey] = keep
	}
	var cm corev1.ConfigMap
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: templateName}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: templateName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}}, Data: data}
		err = k8sClient.Create(ctx, &cm)
	case err == nil:
		cm.Data = data
		err = k8sClient.Update(ctx, &cm)
	}
	if err != nil {
		t.Fatalf("put template: %v", err)
	}
	return &cm
}

// templateReconciler reconciles the template of namespace ns straight from
// the API server, with a recorder the test reads.
func templateReconciler(ns string) (*AppTemplateReconciler, *events.FakeRecorder) {
	rec := events.NewFakeRecorder(100)
	return &AppTemplateReconciler{
		Client: k8sClient, APIReader: k8sClient, Templates: k8sClient,
		Template: types.NamespacedName{Namespace: ns, Name: templateName},
		Recorder: rec,
	}, rec
}

func reconcileTemplate(t *testing.T, r *AppTemplateReconciler) {
	t.Helper()
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: r.Template}); err != nil {
		t.Fatalf("reconcile app template: %v", err)
	}
}

// drain returns the events recorded so far.
func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// poolApp reads the IdeasApp "pool" of ns, nil if there is none.
func poolApp(t *testing.T, ns string) *v1alpha1.IdeasApp {
	t.Helper()
	var app v1alpha1.IdeasApp
	err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "pool"}, &app)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get ideasapp: %v", err)
	}
	return &app
}

func accessTTL(app *v1alpha1.IdeasApp) string {
	if app.Spec.Tokens.AccessTokenTTL == nil {
		return ""
	}
	return app.Spec.Tokens.AccessTokenTTL.Duration.String()
}

func managers(app metav1.Object) []string {
	var out []string
	for _, e := range app.GetManagedFields() {
		out = append(out, fmt.Sprintf("%s/%s/%s", e.Manager, e.Operation, e.Subresource))
	}
	return out
}

func TestAppTemplateApplies(t *testing.T) {
	cases := map[string]struct {
		app, keep string
		wantApp   bool   // an IdeasApp "pool" exists afterwards
		wantEvent string // in the recorded events
		wantOwner bool   // owned by the ConfigMap
	}{
		"kept by default": {app: appYAML("tokens: {accessTokenTTL: 10m}"), wantApp: true,
			wantEvent: "Normal AppApplied IdeasApp pool applied (generation 1)"},
		"keep true": {app: appYAML("tokens: {accessTokenTTL: 10m}"), keep: "true", wantApp: true},
		"keep false makes the ConfigMap its owner": {app: appYAML("tokens: {accessTokenTTL: 10m}"), keep: "false",
			wantApp: true, wantOwner: true},
		"JSON is YAML too": {app: `{"apiVersion":"ideapool.dev/v1alpha1","kind":"IdeasApp","metadata":{"name":"pool"},"spec":{"tokens":{"accessTokenTTL":"10m"}}}`,
			wantApp: true},
		"no spec takes the defaults": {app: "apiVersion: ideapool.dev/v1alpha1\nkind: IdeasApp\nmetadata: {name: pool, labels: {a: b}}\n", wantApp: true},

		"keep is no boolean": {app: appYAML(), keep: "maybe",
			wantEvent: `Warning AppTemplateInvalid invalid app template: keep "maybe" is not true or false`},
		"another kind": {app: strings.Replace(appYAML(), "kind: IdeasApp", "kind: Deployment", 1),
			wantEvent: "is ideapool.dev/v1alpha1 Deployment, want ideapool.dev/v1alpha1 IdeasApp"},
		"another namespace": {app: strings.Replace(appYAML(), "name: pool", "name: pool\n  namespace: kube-system", 1),
			wantEvent: `names namespace "kube-system"; the IdeasApp is made in the ConfigMap's namespace`},
		"owners are not for the template to set": {
			app:       strings.Replace(appYAML(), "name: pool", "name: pool\n  ownerReferences: [{apiVersion: v1, kind: Secret, name: x, uid: u}]", 1),
			wantEvent: `unknown field "ownerReferences"`},
		"status is not for the template to set": {app: appYAML() + "status: {activeKeyID: forged}\n",
			wantEvent: `unknown field "status"`},
		"no name":  {app: "apiVersion: ideapool.dev/v1alpha1\nkind: IdeasApp\nmetadata: {}\n", wantEvent: "has no metadata.name"},
		"not YAML": {app: "apiVersion: [", wantEvent: "Warning AppTemplateInvalid invalid app template: ideasapp.yaml:"},
		"refused by the CRD": {app: appYAML("replicas: 2", "database: {sqlite: {size: 1Gi}}"),
			wantEvent: "Warning AppApplyFailed IdeasApp pool:"},
		"unknown spec field": {app: appYAML("tokens: {accessTTL: 10m}"),
			wantEvent: `spec: json: unknown field "accessTTL"`},
		"wrong type in the spec": {app: appYAML("replicas: two"),
			wantEvent: "Warning AppTemplateInvalid invalid app template: ideasapp.yaml: spec: json: cannot unmarshal"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			cm := putTemplate(t, ns, tc.app, tc.keep)
			r, rec := templateReconciler(ns)
			reconcileTemplate(t, r)
			evs := strings.Join(drain(rec), "\n")
			if !strings.Contains(evs, tc.wantEvent) {
				t.Errorf("events %q lack %q", evs, tc.wantEvent)
			}
			app := poolApp(t, ns)
			if (app != nil) != tc.wantApp {
				t.Fatalf("IdeasApp pool exists: %v, want %v (events %q)", app != nil, tc.wantApp, evs)
			}
			if app == nil {
				return
			}
			var owned bool
			for _, o := range app.OwnerReferences {
				if o.Kind == "ConfigMap" && o.APIVersion == "v1" && o.Name == templateName && o.UID == cm.UID {
					owned = true
					if o.Controller != nil && *o.Controller {
						t.Errorf("the ConfigMap is the IdeasApp's controller: %+v", o)
					}
				}
			}
			if owned != tc.wantOwner || len(app.OwnerReferences) > 1 {
				t.Errorf("owner references %+v; want the ConfigMap %s (uid %s) as owner: %v", app.OwnerReferences, templateName, cm.UID, tc.wantOwner)
			}
			if got := accessTTL(app); got != "10m0s" {
				t.Errorf("spec.tokens.accessTokenTTL %q, want 10m0s (the template's, or the CRD's default)", got)
			}
			if !strings.Contains(strings.Join(managers(app), " "), AppTemplateFieldOwner+"/Apply/") {
				t.Errorf("managed fields %v lack %s's apply", managers(app), AppTemplateFieldOwner)
			}
		})
	}
}

// TestAppTemplateFollowsChanges walks the template through the changes a
// chart's upgrades, rollbacks and uninstall make, with a person editing the
// IdeasApp by hand in between.
func TestAppTemplateFollowsChanges(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	r, rec := templateReconciler(ns)
	// byHand changes the IdeasApp as kubectl would, with its own manager.
	byHand := func(t *testing.T, manager, patch string) {
		t.Helper()
		app := &v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pool"}}
		if err := k8sClient.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(patch)), client.FieldOwner(manager)); err != nil {
			t.Fatalf("%s: %v", manager, err)
		}
	}

	steps := []struct {
		name   string
		app    string // the template; "" deletes the ConfigMap
		keep   string
		before func(t *testing.T)

		ttl, issuer, image string // spec as it must be afterwards
		ownedByTemplate    bool
	}{
		{name: "install", app: appYAML("tokens: {accessTokenTTL: 10m}", "issuer: https://a.example.com"),
			ttl: "10m0s", issuer: "https://a.example.com"},
		{name: "upgrade changes a field and removes another; what a person set stays",
			before: func(t *testing.T) {
				byHand(t, "kubectl-edit", `{"spec":{"image":"example.com/ideapool:hand"}}`)
				byHand(t, "kubectl-annotate", `{"metadata":{"annotations":{"ideapool.dev/rotate-keys":"1"}}}`)
			},
			app: appYAML("tokens: {accessTokenTTL: 7m}"), ttl: "7m0s", image: "example.com/ideapool:hand"},
		{name: "a field the template sets wins over a hand edit at the next change",
			before: func(t *testing.T) { byHand(t, "kubectl-edit", `{"spec":{"tokens":{"accessTokenTTL":"1m"}}}`) },
			app:    appYAML("tokens: {accessTokenTTL: 7m}", "replicas: 1"), ttl: "7m0s", image: "example.com/ideapool:hand"},
		{name: "keep false makes the ConfigMap the owner", app: appYAML("tokens: {accessTokenTTL: 7m}"), keep: "false",
			ttl: "7m0s", image: "example.com/ideapool:hand", ownedByTemplate: true},
		{name: "keep true again drops that owner", app: appYAML("tokens: {accessTokenTTL: 7m}"), keep: "true",
			ttl: "7m0s", image: "example.com/ideapool:hand"},
		{name: "rollback to the first revision", app: appYAML("tokens: {accessTokenTTL: 10m}", "issuer: https://a.example.com"),
			ttl: "10m0s", issuer: "https://a.example.com", image: "example.com/ideapool:hand"},
		{name: "uninstall: the ConfigMap goes, the IdeasApp stays as it is", app: "",
			ttl: "10m0s", issuer: "https://a.example.com", image: "example.com/ideapool:hand"},
	}
	var uid types.UID
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t)
			}
			var cm *corev1.ConfigMap
			if s.app == "" {
				gone := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: templateName}}
				if err := k8sClient.Delete(ctx, gone); err != nil {
					t.Fatal(err)
				}
			} else {
				cm = putTemplate(t, ns, s.app, s.keep)
			}
			reconcileTemplate(t, r)
			app := poolApp(t, ns)
			if app == nil {
				t.Fatalf("no IdeasApp pool; events %q", drain(rec))
			}
			if uid == "" {
				uid = app.UID
			} else if app.UID != uid {
				t.Fatalf("the IdeasApp was replaced (uid %s, was %s): its keys and data would be gone", app.UID, uid)
			}
			if got := accessTTL(app); got != s.ttl {
				t.Errorf("accessTokenTTL %q, want %q", got, s.ttl)
			}
			if app.Spec.Issuer != s.issuer {
				t.Errorf("issuer %q, want %q", app.Spec.Issuer, s.issuer)
			}
			if app.Spec.Image != s.image {
				t.Errorf("image %q, want %q (set by hand, never by the template)", app.Spec.Image, s.image)
			}
			if s.image != "" && app.Annotations[contract.AnnotationRotateKeys] != "1" {
				t.Errorf("the rotate-keys annotation set by hand is gone: %v", app.Annotations)
			}
			owned := len(app.OwnerReferences) == 1 && cm != nil && app.OwnerReferences[0].UID == cm.UID
			if owned != s.ownedByTemplate || (!s.ownedByTemplate && len(app.OwnerReferences) > 0) {
				t.Errorf("owner references %+v, want owned by the template: %v", app.OwnerReferences, s.ownedByTemplate)
			}
		})
	}
	if evs := drain(rec); len(evs) == 0 || !strings.Contains(evs[0], "AppApplied") {
		t.Errorf("events %q: want AppApplied for the changes", evs)
	}
}

// TestAppTemplateKeepFalseDeletedWithTheConfigMap: envtest runs no garbage
// collector, so the test checks what the collector acts on: a ConfigMap
// deleted in the background leaves an IdeasApp whose only owner is gone.
func TestAppTemplateKeepFalseDeletedWithTheConfigMap(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	r, _ := templateReconciler(ns)
	cm := putTemplate(t, ns, appYAML("tokens: {accessTokenTTL: 10m}"), "false")
	reconcileTemplate(t, r)
	if err := k8sClient.Delete(ctx, cm, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	reconcileTemplate(t, r)
	app := poolApp(t, ns)
	if app == nil {
		t.Fatal("the operator deleted the IdeasApp itself; the garbage collector does, through the owner reference")
	}
	if len(app.OwnerReferences) != 1 || app.OwnerReferences[0].UID != cm.UID {
		t.Fatalf("owner references %+v, want only the deleted ConfigMap (uid %s)", app.OwnerReferences, cm.UID)
	}
}

// TestAppTemplateAdoptsHelmsIdeasApp: older charts made the IdeasApp a
// release object. After the upgrade that drops it from the release, the
// operator owns what Helm set, so the values rule it again.
func TestAppTemplateAdoptsHelmsIdeasApp(t *testing.T) {
	helmObject := func(ns string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "ideapool.dev/v1alpha1", "kind": "IdeasApp",
			"metadata": map[string]any{
				"name": "pool", "namespace": ns,
				"labels": map[string]any{"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "ideapool-0.1.0",
					"app.kubernetes.io/instance": "ideapool"},
				"annotations": map[string]any{"meta.helm.sh/release-name": "ideapool", "meta.helm.sh/release-namespace": ns,
					"helm.sh/resource-policy": "keep"},
			},
			"spec": map[string]any{"issuer": "https://old.example.com", "tokens": map[string]any{"accessTokenTTL": "3m"}},
		}}
		return u
	}
	helm3 := func(ctx context.Context, u *unstructured.Unstructured) error {
		return k8sClient.Create(ctx, u, client.FieldOwner("helm3"))
	}
	helm4 := func(ctx context.Context, u *unstructured.Unstructured) error {
		return k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("helm"), client.ForceOwnership)
	}
	cases := map[string]struct {
		// create makes the IdeasApp as that Helm did.
		create func(ctx context.Context, u *unstructured.Unstructured) error
		// byHand adds an annotation with kubectl before the upgrade.
		byHand bool
	}{
		"helm3 client-side":               {create: helm3},
		"helm4 server-side":               {create: helm4},
		"helm3 and an annotation by hand": {create: helm3, byHand: true},
		"helm4 and an annotation by hand": {create: helm4, byHand: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ns := newNamespace(t)
			if err := tc.create(ctx, helmObject(ns)); err != nil {
				t.Fatal(err)
			}
			if tc.byHand {
				hand := &v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pool"}}
				if err := k8sClient.Patch(ctx, hand, client.RawPatch(types.MergePatchType,
					[]byte(`{"metadata":{"annotations":{"ideapool.dev/rotate-keys":"1"}}}`)), client.FieldOwner("kubectl-annotate")); err != nil {
					t.Fatal(err)
				}
			}
			before := poolApp(t, ns)

			putTemplate(t, ns, appYAML("tokens: {accessTokenTTL: 7m}"), "")
			r, rec := templateReconciler(ns)
			reconcileTemplate(t, r)
			app := poolApp(t, ns)
			if app.UID != before.UID {
				t.Fatal("the IdeasApp was replaced")
			}
			if got := accessTTL(app); got != "7m0s" {
				t.Errorf("accessTokenTTL %q, want the template's 7m0s", got)
			}
			if app.Spec.Issuer != "" {
				t.Errorf("issuer %q: Helm set it, the template does not, so it must be gone", app.Spec.Issuer)
			}
			wantLabels := map[string]string{"app.kubernetes.io/managed-by": "ideapool-operator", "app.kubernetes.io/instance": "ideapool"}
			if fmt.Sprint(app.Labels) != fmt.Sprint(wantLabels) {
				t.Errorf("labels %v, want the template's %v", app.Labels, wantLabels)
			}
			wantAnn := map[string]string{"helm.sh/resource-policy": "keep"}
			if tc.byHand {
				wantAnn["ideapool.dev/rotate-keys"] = "1"
			}
			if fmt.Sprint(app.Annotations) != fmt.Sprint(wantAnn) {
				t.Errorf("annotations %v, want %v: Helm's release annotations gone, its keep policy and the hand-set one left", app.Annotations, wantAnn)
			}
			for _, e := range app.ManagedFields {
				if strings.HasPrefix(e.Manager, "helm") && e.FieldsV1.String() != `{"f:metadata":{"f:annotations":{"f:helm.sh/resource-policy":{}}}}` {
					t.Errorf("%s still owns %s; want only its resource policy", e.Manager, e.FieldsV1)
				}
			}
			evs := strings.Join(drain(rec), "\n")
			if !strings.Contains(evs, "Normal AppAdopted IdeasApp pool was made by a Helm release") {
				t.Errorf("events %q lack AppAdopted", evs)
			}
			reconcileTemplate(t, r)
			if evs := drain(rec); len(evs) > 0 {
				t.Errorf("a reconcile with nothing to do recorded %q", evs)
			}
		})
	}
}

// TestAppTemplateManager runs the reconciler as `ideapool operator
// --app-template` does: the template carries Helm's labels, not the
// operator's, so only the reconciler's own cache sees it.
func TestAppTemplateManager(t *testing.T) {
	ns := newNamespace(t)
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 testScheme,
		Cache:                  CacheOptions([]string{ns}),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptrTo(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &AppTemplateReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Template: types.NamespacedName{Namespace: ns, Name: templateName},
		Recorder: events.NewFakeRecorder(100),
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	putTemplate(t, ns, appYAML("tokens: {accessTokenTTL: 10m}"), "")
	eventually(t, "the IdeasApp made from the template", func() bool {
		app := poolApp(t, ns)
		return app != nil && accessTTL(app) == "10m0s"
	})
	putTemplate(t, ns, appYAML("tokens: {accessTokenTTL: 7m}"), "")
	eventually(t, "the template's change applied", func() bool { return accessTTL(poolApp(t, ns)) == "7m0s" })
}
