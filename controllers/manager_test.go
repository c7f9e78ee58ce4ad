package controllers

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// eventually polls cond every 50ms for up to 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestManager runs the reconciler in a manager wired as `ideapool operator`
// wires it (cache, watches, real event recorder) against one namespace.
func TestManager(t *testing.T) {
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
	r := &IdeasAppReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Clock:     clock.RealClock{},
		Keys:      keyset.NewGenerator(rand.Reader),
		Recorder:  mgr.GetEventRecorder("ideapool-operator"),
		AppImage:  "ghcr.io/ideapool/ideapool:test",
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

	app := createApp(t, newIdeasApp(ns, "live"))
	eventually(t, "status.activeKeyID", func() bool { return getApp(t, app).Status.ActiveKeyID != "" })

	eventually(t, "a Generated event in the API", func() bool {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Name == "live" && e.Regarding.Kind == "IdeasApp" && e.Reason == "Generated" {
				return true
			}
		}
		return false
	})

	// An annotation change alone (no new generation) is seen.
	annotate(t, app, contract.AnnotationRotateKeys, "now")
	eventually(t, "status.lastRotateRequest", func() bool { return getApp(t, app).Status.LastRotateRequest == "now" })

	// A deleted child comes back through the watch on owned objects.
	if err := k8sClient.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "live"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Deployment recreated", func() bool {
		var dep appsv1.Deployment
		return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "live"}, &dep) == nil && dep.DeletionTimestamp == nil
	})
	// Editing the ConfigMap by hand is undone.
	var cm corev1.ConfigMap
	get(t, ns, "live-config", &cm)
	cm.Data["access-token-ttl"] = "99h"
	if err := k8sClient.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ConfigMap restored", func() bool {
		get(t, ns, "live-config", &cm)
		return cm.Data["access-token-ttl"] == "10m0s"
	})
}
