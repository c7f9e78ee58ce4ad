package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// TestScheduledRotation drives one IdeasApp through several rotation
// intervals on a fake clock, reconciling exactly when the reconciler asks
// to be called again, and checks at every step what verifiers rely on.
func TestScheduledRotation(t *testing.T) {
	ns := newNamespace(t)
	const (
		interval = 2 * time.Hour
		ahead    = time.Hour
		maxTTL   = 30 * time.Minute // the ID token; access tokens live 10m
		skew     = time.Minute      // the default
		prop     = 6 * time.Minute  // jwksMaxAge + clockSkew
	)
	app := createApp(t, newIdeasApp(ns, "sched", withRotation(interval, ahead), withTokenTTLs(10*time.Minute, maxTTL)))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))

	retiredAt := map[string]time.Time{} // kid → when it stopped signing
	var signers []string                // kids in the order they signed
	end := t0.Add(3*interval + time.Hour)
	for steps := 0; r.clock.Now().Before(end); steps++ {
		if steps > 50 {
			t.Fatalf("more than 50 reconciles for %s of schedule", end.Sub(t0))
		}
		now := r.clock.Now()
		res := r.reconcile(t, app)
		ks := storedKeyset(t, app)

		signing, ok := keyset.Signing(ks, now)
		if !ok {
			t.Fatalf("%s: no key signs", now.Sub(t0))
		}
		if len(signers) == 0 || signers[len(signers)-1] != signing.ID {
			signers = append(signers, signing.ID)
			// Every key but the very first was in the JWKS long enough for
			// every cache to hold it before it signs.
			if len(signers) > 1 && signing.ActiveAt.Sub(signing.PublishedAt) < ahead {
				t.Errorf("key %s signs %s after publication, want at least %s", signing.ID, signing.ActiveAt.Sub(signing.PublishedAt), ahead)
			}
		}
		for _, k := range ks.Keys {
			if k.RetiredAt != nil {
				retiredAt[k.ID] = *k.RetiredAt
			}
		}
		// A key that signed a token that may still be valid is published.
		published := kids(keyset.Keyset{Keys: keyset.Published(ks, now)})
		for kid, at := range retiredAt {
			if now.Before(at.Add(maxTTL+skew)) && !slices.Contains(published, kid) {
				t.Errorf("%s: key %s retired at %s is no longer published, but its tokens live until %s",
					now.Sub(t0), kid, at.Sub(t0), at.Add(maxTTL).Sub(t0))
			}
		}
		for _, kid := range signers[:len(signers)-1] {
			if _, ok := retiredAt[kid]; !ok {
				t.Errorf("key %s stopped signing but has no retirement", kid)
			}
		}

		st := getApp(t, app).Status
		if st.ActiveKeyID != signing.ID {
			t.Errorf("%s: status.activeKeyID %s, want %s", now.Sub(t0), st.ActiveKeyID, signing.ID)
		}
		next, hasNext := nextKey(ks, now)
		if !hasNext || st.NextRotationTime == nil || !st.NextRotationTime.Time.Equal(next.ActiveAt.Truncate(time.Second)) {
			t.Errorf("%s: status.nextRotationTime %v, want %v", now.Sub(t0), st.NextRotationTime, next.ActiveAt)
		}
		if len(st.Keys) != len(ks.Keys) {
			t.Errorf("status has %d keys, keyset %d", len(st.Keys), len(ks.Keys))
		}
		due := keyset.NextDue(ks, now)
		if res.RequeueAfter <= 0 || res.RequeueAfter > due.Sub(now) {
			t.Fatalf("%s: RequeueAfter %s, want (0, %s]", now.Sub(t0), res.RequeueAfter, due.Sub(now))
		}
		r.clock.Step(res.RequeueAfter)
	}

	if len(signers) != 4 {
		t.Errorf("%d keys signed over %s, want 4 (one per %s interval)", len(signers), end.Sub(t0), interval)
	}
	kinds := map[string]int{}
	events := r.drainEvents()
	for _, e := range events {
		kinds[strings.Fields(e)[1]]++
	}
	for _, k := range []string{"Generated", "Activated", "Retired", "Removed"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event; events by reason: %v", k, kinds)
		}
	}
	// Every key that signed was announced when it started, the scheduled
	// switches (made by the clock, not by a write) included.
	for _, kid := range signers {
		if !slices.ContainsFunc(events, func(e string) bool {
			return strings.Fields(e)[1] == "Activated" && strings.Contains(e, kid)
		}) {
			t.Errorf("no Activated event names key %s; events:\n%s", kid, strings.Join(events, "\n"))
		}
	}
	if got := testutil.ToFloat64(keyRotations.WithLabelValues(ns, "sched", "Schedule")); got != 3 {
		t.Errorf("ideapool_key_rotations_total{reason=Schedule} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(keyRotations.WithLabelValues(ns, "sched", "Bootstrap")); got != 1 {
		t.Errorf("ideapool_key_rotations_total{reason=Bootstrap} = %v, want 1", got)
	}
	ks := storedKeyset(t, app)
	next, _ := nextKey(ks, r.clock.Now())
	if got := testutil.ToFloat64(nextRotation.WithLabelValues(ns, "sched")); got != float64(next.ActiveAt.Unix()) {
		t.Errorf("ideapool_next_key_rotation_timestamp_seconds = %v, want %d", got, next.ActiveAt.Unix())
	}
	if got := testutil.ToFloat64(signingKeyInfo.WithLabelValues(ns, "sched", signers[len(signers)-1], "Active")); got != 1 {
		t.Errorf("ideapool_signing_key_info of the active key = %v", got)
	}
}

// TestRequestedRotation rotates through the annotation, each value once.
func TestRequestedRotation(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "rot"))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	first := storedKeyset(t, app)
	a, b := first.Keys[0].ID, first.Keys[1].ID

	// The next key has been published for 10m > jwksMaxAge+clockSkew: it
	// signs at once.
	r.clock.Step(10 * time.Minute)
	annotate(t, app, contract.AnnotationRotateKeys, "r1")
	r.drainEvents()
	r.reconcile(t, app)
	ks := storedKeyset(t, app)
	now := r.clock.Now()
	if s, _ := keyset.Signing(ks, now); s.ID != b {
		t.Fatalf("after rotate-keys=r1 key %s signs, want the pre-published %s", s.ID, b)
	}
	if !slices.Contains(kids(keyset.Keyset{Keys: keyset.Published(ks, now)}), a) {
		t.Errorf("the old key %s left the JWKS at once", a)
	}
	c, ok := nextKey(ks, now)
	if !ok {
		t.Fatalf("no new next key after a requested rotation")
	}
	st := getApp(t, app).Status
	if st.LastRotateRequest != "r1" || st.ActiveKeyID != b {
		t.Errorf("status lastRotateRequest %q activeKeyID %s", st.LastRotateRequest, st.ActiveKeyID)
	}
	if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "RotationRequested") || !strings.Contains(ev, "Activated") {
		t.Errorf("events:\n%s", ev)
	}
	if got := testutil.ToFloat64(keyRotations.WithLabelValues(ns, "rot", "RotationRequested")); got != 1 {
		t.Errorf("ideapool_key_rotations_total{reason=RotationRequested} = %v, want 1", got)
	}

	// The same value again: nothing happens.
	r.clock.Step(time.Minute)
	r.reconcile(t, app)
	if got := kids(storedKeyset(t, app)); !slices.Equal(got, kids(ks)) {
		t.Errorf("rotate-keys=r1 handled twice: %v → %v", kids(ks), got)
	}
	// Even when status lost the record: the Secret has it too.
	lost := getApp(t, app)
	lost.Status.LastRotateRequest = ""
	if err := k8sClient.Status().Update(context.Background(), lost); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	if got := storedKeyset(t, app); !slices.Equal(kids(got), kids(ks)) || !got.Keys[len(got.Keys)-1].ActiveAt.Equal(c.ActiveAt) {
		t.Errorf("rotate-keys=r1 handled again after status lost it")
	}
	if st := getApp(t, app).Status; st.LastRotateRequest != "r1" {
		t.Errorf("status.lastRotateRequest %q, want it restored from the Secret", st.LastRotateRequest)
	}

	// A new value right away: the new next key (published 1m ago) signs
	// only once every cache can hold it.
	annotate(t, app, contract.AnnotationRotateKeys, "r2")
	res := r.reconcile(t, app)
	now = r.clock.Now()
	ks = storedKeyset(t, app)
	if s, _ := keyset.Signing(ks, now); s.ID != b {
		t.Errorf("key %s signs right after r2; %s must keep signing until %s is safely published", s.ID, b, c.ID)
	}
	n, _ := nextKey(ks, now)
	if n.ID != c.ID || !n.ActiveAt.Equal(c.PublishedAt.Add(6*time.Minute)) {
		t.Errorf("next key %s signs from %s, want %s from %s", n.ID, n.ActiveAt, c.ID, c.PublishedAt.Add(6*time.Minute))
	}
	if res.RequeueAfter != n.ActiveAt.Sub(now) {
		t.Errorf("RequeueAfter %s, want %s (when %s starts signing)", res.RequeueAfter, n.ActiveAt.Sub(now), c.ID)
	}
	r.clock.Step(res.RequeueAfter)
	r.reconcile(t, app)
	if st := getApp(t, app).Status; st.ActiveKeyID != c.ID || st.LastRotateRequest != "r2" {
		t.Errorf("status activeKeyID %s lastRotateRequest %q, want %s r2", st.ActiveKeyID, st.LastRotateRequest, c.ID)
	}
}

// TestRevocation revokes the signing key, an unknown kid and the next key.
func TestRevocation(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "rev"))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	first := storedKeyset(t, app)
	a, b := first.Keys[0].ID, first.Keys[1].ID

	r.clock.Step(time.Minute)
	annotate(t, app, contract.AnnotationRevokeKey, a)
	r.drainEvents()
	r.reconcile(t, app)
	now := r.clock.Now()
	ks := storedKeyset(t, app)
	if slices.Contains(kids(ks), a) {
		t.Fatalf("revoked key %s still in the keyset", a)
	}
	fresh, _ := keyset.Signing(ks, now)
	if fresh.ID == b || fresh.ID == a || !fresh.ActiveAt.Equal(now) {
		t.Errorf("after revoking the signing key, %s signs from %s; want a fresh key (not the next one %s) from now", fresh.ID, fresh.ActiveAt, b)
	}
	if !slices.Contains(kids(ks), b) {
		t.Errorf("the pre-published next key %s was dropped", b)
	}
	st := getApp(t, app).Status
	if st.LastRevokeRequest != a || st.ActiveKeyID != fresh.ID {
		t.Errorf("status lastRevokeRequest %q activeKeyID %s", st.LastRevokeRequest, st.ActiveKeyID)
	}
	if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "Normal Revoked key "+a) {
		t.Errorf("no Revoked event for %s:\n%s", a, ev)
	}
	if got := testutil.ToFloat64(keyRotations.WithLabelValues(ns, "rev", "Revoked")); got != 1 {
		t.Errorf("ideapool_key_rotations_total{reason=Revoked} = %v, want 1", got)
	}

	// Handled once: reconciling again changes nothing.
	r.reconcile(t, app)
	if got := kids(storedKeyset(t, app)); !slices.Equal(got, kids(ks)) {
		t.Errorf("revoke-key handled twice: %v → %v", kids(ks), got)
	}

	// An unknown kid: a warning, recorded as handled, nothing removed.
	annotate(t, app, contract.AnnotationRevokeKey, "no-such-kid")
	r.reconcile(t, app)
	if got := kids(storedKeyset(t, app)); !slices.Equal(got, kids(ks)) {
		t.Errorf("revoking an unknown kid changed the keyset: %v → %v", kids(ks), got)
	}
	if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "Warning RevokeFailed") {
		t.Errorf("no RevokeFailed warning:\n%s", ev)
	}
	if st := getApp(t, app).Status; st.LastRevokeRequest != "no-such-kid" {
		t.Errorf("status.lastRevokeRequest %q", st.LastRevokeRequest)
	}

	// The next key: removed, and a new next key takes its place.
	annotate(t, app, contract.AnnotationRevokeKey, b)
	r.reconcile(t, app)
	ks = storedKeyset(t, app)
	n, ok := nextKey(ks, r.clock.Now())
	if slices.Contains(kids(ks), b) || !ok || n.ID == b {
		t.Errorf("after revoking the next key: keys %v, next %s", kids(ks), n.ID)
	}
	if s, _ := keyset.Signing(ks, r.clock.Now()); s.ID != fresh.ID {
		t.Errorf("revoking the next key changed the signing key to %s", s.ID)
	}
}

// TestStatusConditions checks conditions, their generations and
// transition times.
func TestStatusConditions(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "st"))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r.reconcile(t, app)
	app = getApp(t, app)
	want := map[string][2]string{
		v1alpha1.ConditionKeysReady: {"True", v1alpha1.ReasonKeysUpToDate},
		v1alpha1.ConditionAvailable: {"False", v1alpha1.ReasonDeploymentUnavailable},
		v1alpha1.ConditionReady:     {"False", v1alpha1.ReasonNotAvailable},
		v1alpha1.ConditionDegraded:  {"False", v1alpha1.ReasonAsExpected},
	}
	checkConditions(t, app, want)
	keysSince := condition(app, v1alpha1.ConditionKeysReady).LastTransitionTime

	// The Deployment becomes available (no controllers run in envtest).
	r.clock.Step(5 * time.Minute)
	var dep appsv1.Deployment
	get(t, ns, "st", &dep)
	dep.Status.ObservedGeneration = dep.Generation
	dep.Status.Replicas, dep.Status.ReadyReplicas, dep.Status.AvailableReplicas = 1, 1, 1
	dep.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}}
	if err := k8sClient.Status().Update(context.Background(), &dep); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	app = getApp(t, app)
	want[v1alpha1.ConditionAvailable] = [2]string{"True", v1alpha1.ReasonDeploymentAvailable}
	want[v1alpha1.ConditionReady] = [2]string{"True", v1alpha1.ReasonReady}
	checkConditions(t, app, want)
	if got := condition(app, v1alpha1.ConditionKeysReady).LastTransitionTime; !got.Equal(&keysSince) {
		t.Errorf("KeysReady lastTransitionTime moved from %s to %s without a flip", keysSince, got)
	}
	if got := condition(app, v1alpha1.ConditionReady).LastTransitionTime; !got.Time.Equal(r.clock.Now()) {
		t.Errorf("Ready lastTransitionTime %s, want the flip at %s", got, r.clock.Now())
	}
	if app.Status.ReadyReplicas != 1 {
		t.Errorf("status.readyReplicas %d", app.Status.ReadyReplicas)
	}

	// A spec change: the conditions follow the new generation.
	app.Spec.Tokens.AccessTokenTTL = &metav1.Duration{Duration: 5 * time.Minute}
	if err := k8sClient.Update(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	r.reconcile(t, app)
	app = getApp(t, app)
	checkConditions(t, app, want)
	if app.Status.ObservedGeneration != app.Generation {
		t.Errorf("observedGeneration %d, generation %d", app.Status.ObservedGeneration, app.Generation)
	}
	var cm corev1.ConfigMap
	get(t, ns, "st-config", &cm)
	if cm.Data["access-token-ttl"] != "5m0s" {
		t.Errorf("configmap access-token-ttl %q after the spec change", cm.Data["access-token-ttl"])
	}

	// A keyset someone broke: left alone, reported, and an error to retry.
	var sec corev1.Secret
	get(t, ns, "st-keyset", &sec)
	sec.Data[contract.KeysetDataKey] = []byte(`{"keys": "nope"}`)
	if err := k8sClient.Update(context.Background(), &sec); err != nil {
		t.Fatal(err)
	}
	r.drainEvents()
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)}); !errors.Is(err, errKeysetInvalid) {
		t.Errorf("reconcile of a broken keyset: err %v, want errKeysetInvalid", err)
	}
	app = getApp(t, app)
	want[v1alpha1.ConditionKeysReady] = [2]string{"False", v1alpha1.ReasonKeysetInvalid}
	want[v1alpha1.ConditionReady] = [2]string{"False", v1alpha1.ReasonKeysNotReady}
	want[v1alpha1.ConditionDegraded] = [2]string{"True", v1alpha1.ReasonReconcileFailed}
	checkConditions(t, app, want)
	get(t, ns, "st-keyset", &sec)
	if string(sec.Data[contract.KeysetDataKey]) != `{"keys": "nope"}` {
		t.Errorf("the operator overwrote a keyset it could not read")
	}
	if ev := strings.Join(r.drainEvents(), "\n"); !strings.Contains(ev, "Warning KeysetInvalid") {
		t.Errorf("no KeysetInvalid warning:\n%s", ev)
	}
}

func condition(app *v1alpha1.IdeasApp, typ string) metav1.Condition {
	for _, c := range app.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func checkConditions(t *testing.T, app *v1alpha1.IdeasApp, want map[string][2]string) {
	t.Helper()
	for typ, w := range want {
		c := condition(app, typ)
		if string(c.Status) != w[0] || c.Reason != w[1] {
			t.Errorf("condition %s = %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, w[0], w[1])
		}
		if c.ObservedGeneration != app.Generation {
			t.Errorf("condition %s observedGeneration %d, want %d", typ, c.ObservedGeneration, app.Generation)
		}
	}
}

// TestKeysetSurvivesRestart: a new operator instance (new generator, no
// memory) continues the same keyset.
func TestKeysetSurvivesRestart(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "restart", withRotation(2*time.Hour, time.Hour)))
	r1 := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))
	r1.reconcile(t, app)
	before := storedKeyset(t, app)

	r2 := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0.Add(30*time.Minute)))
	r2.reconcile(t, app)
	if after := storedKeyset(t, app); !slices.Equal(kids(after), kids(before)) {
		t.Errorf("a restarted operator changed the keys: %v → %v", kids(before), kids(after))
	}
	if ev := r2.drainEvents(); slices.ContainsFunc(ev, func(e string) bool { return strings.Contains(e, "Generated") }) {
		t.Errorf("a restarted operator generated keys: %v", ev)
	}
	// And carries on with the schedule: at 2h the next key signs.
	r2.clock.SetTime(t0.Add(2 * time.Hour))
	r2.reconcile(t, app)
	after := storedKeyset(t, app)
	if s, _ := keyset.Signing(after, r2.clock.Now()); s.ID != before.Keys[1].ID {
		t.Errorf("after restart, at 2h key %s signs, want %s", s.ID, before.Keys[1].ID)
	}
	for _, kid := range kids(before) {
		if !slices.Contains(kids(after), kid) {
			t.Errorf("key %s lost", kid)
		}
	}
}

// TestKeysetWriteConflict: another writer changes the Secret between this
// reconciler's read and its write. The write fails with a conflict, nothing
// the other wrote is lost, and the request is handled once.
func TestKeysetWriteConflict(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "conflict"))
	other := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0.Add(10*time.Minute)))
	other.reconcile(t, app)
	annotate(t, app, contract.AnnotationRotateKeys, "once")

	var once sync.Once
	racing := interceptor.NewClient(k8sClient, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if sec, ok := obj.(*corev1.Secret); ok && sec.Name == contract.KeysetSecretName(app.Name) {
				// The other operator wins the race: it handles the same
				// request and writes first.
				once.Do(func() { other.reconcile(t, app) })
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	r := newTestReconciler(racing, clocktesting.NewFakeClock(t0.Add(10*time.Minute)))
	_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)})
	if !apierrors.IsConflict(err) {
		t.Fatalf("reconcile during a concurrent write: err %v, want a conflict", err)
	}
	written := storedKeyset(t, app)
	if len(written.Keys) != 3 {
		t.Fatalf("the other writer's keyset has %d keys, want 3 (old, current, new next)", len(written.Keys))
	}

	// The retry starts from what the other wrote: same keys, no second
	// rotation for the same request.
	r.reconcile(t, app)
	after := storedKeyset(t, app)
	if !slices.Equal(kids(after), kids(written)) {
		t.Errorf("retry after conflict: keys %v, want the other writer's %v", kids(after), kids(written))
	}
	if st := getApp(t, app).Status; st.LastRotateRequest != "once" {
		t.Errorf("status.lastRotateRequest %q", st.LastRotateRequest)
	}
	var sec corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: contract.KeysetSecretName(app.Name)}, &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Annotations[contract.AnnotationHandledRotate] != "once" {
		t.Errorf("secret records handled rotate %q", sec.Annotations[contract.AnnotationHandledRotate])
	}
}
