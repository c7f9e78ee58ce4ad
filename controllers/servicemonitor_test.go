package controllers

import (
	"context"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// serviceMonitorCRD is a stand-in for prometheus-operator's CRD: same group,
// version and kind, any spec.
func serviceMonitorCRD() *apiextv1.CustomResourceDefinition {
	preserve := true
	return &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: monitoringGroup,
			Names: apiextv1.CustomResourceDefinitionNames{
				Plural: "servicemonitors", Singular: "servicemonitor", Kind: serviceMonitorKind, ListKind: "ServiceMonitorList",
			},
			Scope: apiextv1.NamespaceScoped,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: monitoringVersion, Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve,
				}},
			}},
		},
	}
}

// TestServiceMonitor: asked for without the API, a warning; once the API
// exists, created; no longer asked for, deleted.
func TestServiceMonitor(t *testing.T) {
	ns := newNamespace(t)
	app := newIdeasApp(ns, "mon")
	app.Spec.Metrics.ServiceMonitor = true
	createApp(t, app)
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	res := r.reconcile(t, app)
	if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "Warning "+v1alpha1.EventServiceMonitorUnsupported) {
		t.Errorf("no %s warning without the API:\n%s", v1alpha1.EventServiceMonitorUnsupported, ev)
	}
	// Nothing announces the API's arrival: the reconciler looks again soon.
	if res.RequeueAfter <= 0 || res.RequeueAfter > apiRecheck {
		t.Errorf("RequeueAfter %s while the ServiceMonitor waits for its API, want at most %s", res.RequeueAfter, apiRecheck)
	}

	if _, err := envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{
		CRDs: []*apiextv1.CustomResourceDefinition{serviceMonitorCRD()},
	}); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	sm := &unstructured.Unstructured{}
	sm.SetAPIVersion(monitoringGroup + "/" + monitoringVersion)
	sm.SetKind(serviceMonitorKind)
	key := types.NamespacedName{Namespace: ns, Name: "mon"}
	if err := k8sClient.Get(context.Background(), key, sm); err != nil {
		t.Fatalf("no ServiceMonitor once the API exists: %v", err)
	}
	var port string
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) == 1 {
		port, _, _ = unstructured.NestedString(endpoints[0].(map[string]any), "port")
	}
	if port != "metrics" {
		t.Errorf("ServiceMonitor endpoint port %q, want metrics", port)
	}
	checkOwned(t, getApp(t, app), sm)

	app = getApp(t, app)
	app.Spec.Metrics.ServiceMonitor = false
	if err := k8sClient.Update(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	if err := k8sClient.Get(context.Background(), key, sm); !apierrors.IsNotFound(err) {
		t.Errorf("ServiceMonitor still there when not asked for (err %v)", err)
	}
}
