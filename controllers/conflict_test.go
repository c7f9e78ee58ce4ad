package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// Objects a person made before the IdeasApp "web" existed, each under the
// name of one of its children.
var otherLabels = map[string]string{"app": "someone-else"}

func foreignMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: otherLabels}
}

func foreignPodTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: otherLabels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "theirs", Image: "example.com/theirs:1"}}},
	}
}

func withIngress(host string) appOption {
	return func(a *v1alpha1.IdeasApp) {
		a.Spec.Expose = &v1alpha1.ExposeSpec{Ingress: &v1alpha1.IngressExpose{Host: host}}
	}
}

// TestChildConflict: an object that exists under a child's name and is not
// controlled by the IdeasApp is left exactly as it was, the IdeasApp says
// so (Ready=False ChildConflict naming it, a Warning event), and nothing
// else is applied until it is gone; then the operator carries on.
func TestChildConflict(t *testing.T) {
	tests := map[string]struct {
		opts []appOption
		// foreign is the object someone else made.
		foreign func(ns string) client.Object
		// named is how the message names it.
		named string
	}{
		"ServiceAccount": {
			foreign: func(ns string) client.Object { return &corev1.ServiceAccount{ObjectMeta: foreignMeta(ns, "web")} },
			named:   "ServiceAccount web (no controller)",
		},
		"Role": {
			foreign: func(ns string) client.Object {
				return &rbacv1.Role{ObjectMeta: foreignMeta(ns, "web"), Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
			},
			named: "Role web",
		},
		"RoleBinding": {
			foreign: func(ns string) client.Object {
				return &rbacv1.RoleBinding{ObjectMeta: foreignMeta(ns, "web"),
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "theirs"},
					Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "theirs", Namespace: ns}}}
			},
			named: "RoleBinding web",
		},
		"ConfigMap": {
			foreign: func(ns string) client.Object {
				return &corev1.ConfigMap{ObjectMeta: foreignMeta(ns, "web-config"), Data: map[string]string{"theirs": "yes"}}
			},
			named: "ConfigMap web-config",
		},
		"ConfigMap controlled by an earlier IdeasApp of the same name": {
			foreign: func(ns string) client.Object {
				m := foreignMeta(ns, "web-config")
				m.OwnerReferences = ownerReferences(&v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Name: "web", UID: "an-earlier-uid"}}, true, true)
				return &corev1.ConfigMap{ObjectMeta: m, Data: map[string]string{"theirs": "yes"}}
			},
			named: "ConfigMap web-config (controlled by IdeasApp web)",
		},
		"Service": {
			foreign: func(ns string) client.Object {
				return &corev1.Service{ObjectMeta: foreignMeta(ns, "web"), Spec: corev1.ServiceSpec{Selector: otherLabels,
					Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromInt32(8000)}}}}
			},
			named: "Service web",
		},
		"PersistentVolumeClaim": {
			foreign: func(ns string) client.Object {
				return &corev1.PersistentVolumeClaim{ObjectMeta: foreignMeta(ns, "web-data"), Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}}}}
			},
			named: "PersistentVolumeClaim web-data",
		},
		"Deployment": {
			foreign: func(ns string) client.Object {
				return &appsv1.Deployment{ObjectMeta: foreignMeta(ns, "web"), Spec: appsv1.DeploymentSpec{
					Selector: &metav1.LabelSelector{MatchLabels: otherLabels}, Template: foreignPodTemplate()}}
			},
			named: "Deployment web",
		},
		"PodDisruptionBudget": {
			opts: []appOption{withPostgres("db", "url"), withReplicas(2)},
			foreign: func(ns string) client.Object {
				return &policyv1.PodDisruptionBudget{ObjectMeta: foreignMeta(ns, "web"), Spec: policyv1.PodDisruptionBudgetSpec{
					MinAvailable: ptrTo(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: otherLabels}}}
			},
			named: "PodDisruptionBudget web",
		},
		"Ingress": {
			opts: []appOption{withIngress("id.example.com")},
			foreign: func(ns string) client.Object {
				return &networkingv1.Ingress{ObjectMeta: foreignMeta(ns, "web"), Spec: networkingv1.IngressSpec{
					DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "theirs", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}
			},
			named: "Ingress web",
		},
		"keyset Secret": {
			foreign: func(ns string) client.Object {
				return &corev1.Secret{ObjectMeta: foreignMeta(ns, "web-keyset"), Data: map[string][]byte{"keyset.json": []byte("theirs")}}
			},
			named: "Secret web-keyset",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ns := newNamespace(t)
			foreign := tc.foreign(ns)
			if err := k8sClient.Create(ctx, foreign); err != nil {
				t.Fatalf("create the foreign %s: %v", name, err)
			}
			before := foreign.GetResourceVersion()
			app := createApp(t, newIdeasApp(ns, "web", tc.opts...))
			r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
			res := r.reconcile(t, app)

			// Untouched: not rewritten, not adopted.
			key := client.ObjectKeyFromObject(foreign)
			if err := k8sClient.Get(ctx, key, foreign); err != nil {
				t.Fatalf("the foreign object is gone: %v", err)
			}
			if foreign.GetResourceVersion() != before {
				t.Errorf("the operator wrote the foreign %s (resourceVersion %s → %s)", name, before, foreign.GetResourceVersion())
			}
			app = getApp(t, app)
			if metav1.IsControlledBy(foreign, app) {
				t.Errorf("the operator became the controller of the foreign %s", name)
			}

			// Said clearly, in the status and in an event.
			ready := condition(app, v1alpha1.ConditionReady)
			if ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.ReasonChildConflict || !strings.Contains(ready.Message, tc.named) {
				t.Errorf("Ready = %s/%s %q, want False/%s naming %q", ready.Status, ready.Reason, ready.Message, v1alpha1.ReasonChildConflict, tc.named)
			}
			if d := condition(app, v1alpha1.ConditionDegraded); d.Status != metav1.ConditionTrue || d.Reason != v1alpha1.ReasonChildConflict {
				t.Errorf("Degraded = %s/%s, want True/%s", d.Status, d.Reason, v1alpha1.ReasonChildConflict)
			}
			events := strings.Join(r.drainEvents(), "\n")
			if !strings.Contains(events, "Warning "+v1alpha1.EventChildConflict) || !strings.Contains(events, tc.named) {
				t.Errorf("no Warning %s event naming %q:\n%s", v1alpha1.EventChildConflict, tc.named, events)
			}
			// Nothing watches the foreign object: the operator looks again.
			if res.RequeueAfter <= 0 || res.RequeueAfter > conflictRecheck {
				t.Errorf("RequeueAfter %s with a conflict, want at most %s", res.RequeueAfter, conflictRecheck)
			}

			// Nothing else applied: the pods would otherwise run with a
			// foreign ServiceAccount, Role, ConfigMap, volume or keyset.
			if _, isDeployment := foreign.(*appsv1.Deployment); !isDeployment {
				err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &appsv1.Deployment{})
				if !apierrors.IsNotFound(err) {
					t.Errorf("the Deployment was applied despite the conflict (err %v)", err)
				}
			}
			_, isKeyset := foreign.(*corev1.Secret)
			if isKeyset {
				if app.Status.ActiveKeyID != "" {
					t.Errorf("status.activeKeyID %q from a keyset that is not ours", app.Status.ActiveKeyID)
				}
				if k := condition(app, v1alpha1.ConditionKeysReady); k.Reason != v1alpha1.ReasonChildConflict {
					t.Errorf("KeysReady reason %s, want %s", k.Reason, v1alpha1.ReasonChildConflict)
				}
			} else if app.Status.ActiveKeyID == "" {
				t.Errorf("no signing key: the keyset Secret is free and the keys must not wait for the conflict")
			}

			// Gone: the operator creates its own and carries on.
			if err := k8sClient.Delete(ctx, foreign); err != nil {
				t.Fatal(err)
			}
			// A PVC keeps kubernetes.io/pvc-protection until the controller
			// manager (not part of envtest) removes it.
			if err := k8sClient.Get(ctx, key, foreign); err == nil && len(foreign.GetFinalizers()) > 0 {
				foreign.SetFinalizers(nil)
				if err := k8sClient.Update(ctx, foreign); err != nil {
					t.Fatal(err)
				}
			}
			r.reconcile(t, app)
			app = getApp(t, app)
			if c := condition(app, v1alpha1.ConditionReady); c.Reason == v1alpha1.ReasonChildConflict {
				t.Errorf("Ready still %s after the foreign object was deleted: %s", c.Reason, c.Message)
			}
			mine := foreign.DeepCopyObject().(client.Object)
			if err := k8sClient.Get(ctx, key, mine); err != nil {
				t.Fatalf("the operator did not create its own %s: %v", name, err)
			}
			checkOwned(t, app, mine)
			var dep appsv1.Deployment
			get(t, ns, "web", &dep)
			checkOwned(t, app, &dep)
		})
	}
}

// TestChildConflictKeepsKeys: a running IdeasApp asked for a child whose
// name is taken (an Ingress) keeps its running children as they are and its
// keys on schedule.
func TestChildConflictKeepsKeys(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "web", withRotation(2*time.Hour, time.Hour)))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	first := getApp(t, app).Status.ActiveKeyID

	theirs := &networkingv1.Ingress{ObjectMeta: foreignMeta(ns, "web"), Spec: networkingv1.IngressSpec{
		DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: "theirs", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}
	if err := k8sClient.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	app = getApp(t, app)
	withIngress("id.example.com")(app)
	if err := k8sClient.Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	r.clock.Step(2*time.Hour + time.Minute)
	r.reconcile(t, app)
	app = getApp(t, app)
	if c := condition(app, v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonChildConflict || !strings.Contains(c.Message, "Ingress web") {
		t.Errorf("Ready = %s %q, want %s naming Ingress web", c.Reason, c.Message, v1alpha1.ReasonChildConflict)
	}
	if c := condition(app, v1alpha1.ConditionExposed); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonExposeFailed {
		t.Errorf("Exposed = %s/%s, want False/%s", c.Status, c.Reason, v1alpha1.ReasonExposeFailed)
	}
	if app.Status.ActiveKeyID == first || app.Status.ActiveKeyID == "" {
		t.Errorf("the keys stopped rotating during the conflict: active key %q, was %q", app.Status.ActiveKeyID, first)
	}
	// The Deployment keeps the issuer it had: the pods are not told about
	// an Ingress that does not route to them.
	var dep appsv1.Deployment
	get(t, ns, "web", &dep)
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--issuer=") && a != "--issuer=http://web."+ns+".svc" {
			t.Errorf("the Deployment changed during the conflict: %s", a)
		}
	}
}
