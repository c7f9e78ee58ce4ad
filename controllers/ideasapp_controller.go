// Package controllers holds the IdeasApp reconciler: it keeps the children
// of every IdeasApp in place (keyset Secret, ConfigMap, RBAC, Deployment,
// Service, storage, PodDisruptionBudget, ServiceMonitor) and its signing keys
// on schedule, deciding nothing about keys itself: internal/keyset does.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/keyset"
)

// Requeue bounds: the next due instant of the keyset may be a month away
// (look at least hourly, so a missed watch event heals) or a moment away
// (not sooner than a second).
const (
	maxRequeue = time.Hour
	minRequeue = time.Second
)

// IdeasAppReconciler reconciles IdeasApp objects.
type IdeasAppReconciler struct {
	// Client reads through the manager's cache and writes to the API.
	client.Client
	// APIReader reads the keyset Secret directly from the API server, so
	// every keyset computation starts from its latest content.
	APIReader client.Reader
	// Clock is the only source of now.
	Clock clock.Clock
	// Keys generates new signing keys.
	Keys keyset.Generator
	// Recorder emits events on the IdeasApp.
	Recorder events.EventRecorder
	// AppImage is the server image when spec.image is empty.
	AppImage string
	// MaxConcurrentReconciles is how many IdeasApps are reconciled at once
	// (never the same one twice at once); 0 means 1.
	MaxConcurrentReconciles int

	// writes are the keyset Secrets as this reconciler last wrote them.
	writes ownWrites
}

// +kubebuilder:rbac:groups=ideapool.dev,resources=ideasapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=ideapool.dev,resources=ideasapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ideapool.dev,resources=ideasapps/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;configmaps;serviceaccounts;services;persistentvolumeclaims,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;create;update;patch;delete
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings one IdeasApp to its desired state: keys first (the pods
// need them to start), then the children, then the status, and asks to be
// called again when the keyset next changes on its own.
func (r *IdeasAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var app v1alpha1.IdeasApp
	if err := r.Get(ctx, req.NamespacedName, &app); err != nil {
		if apierrors.IsNotFound(err) {
			forgetKeyMetrics(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get ideasapp: %w", err)
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector removes the children
	}
	now := r.Clock.Now()
	base := app.DeepCopy()
	st := &app.Status
	conds := conditions{generation: app.Generation, now: now, list: &st.Conditions}

	s, err := resolve(&app, r.AppImage)
	if err != nil {
		// The CRD's rules refuse such specs; only an object stored before
		// they existed gets here. Nothing is changed until the spec is fixed.
		r.Recorder.Eventf(&app, nil, corev1.EventTypeWarning, v1alpha1.EventReconcileFailed, "Reconcile", "invalid spec: %v", err)
		conds.set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonReconcileFailed, "invalid spec: "+err.Error())
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonKeysNotReady, "invalid spec")
		st.ObservedGeneration = app.Generation
		return ctrl.Result{}, r.patchStatus(ctx, &app, base)
	}
	st.Issuer, st.JWKSURI = s.issuer, jwksURI(s.issuer)

	var failures []error
	keys, err := r.reconcileKeys(ctx, &app, s, now)
	switch {
	case err == nil:
		for _, c := range keys.changes {
			r.Recorder.Eventf(&app, nil, corev1.EventTypeNormal, string(c.Kind), "RotateKeys", "%s", changeMessage(c))
			log.Info("signing key changed", "change", string(c.Kind), "kid", c.KeyID, "at", c.At)
		}
		for _, n := range keys.notes {
			r.Recorder.Eventf(&app, nil, n.eventType, n.reason, n.action, "%s", n.message)
		}
		recordKeyMetrics(app.Namespace, app.Name, keys.keys, keys.rotations, now)
		st.LastRotateRequest, st.LastRevokeRequest = keys.handledRotate, keys.handledRevoke
		previous := st.ActiveKeyID
		setKeyStatus(st, keys.keys, now)
		r.noteScheduledSwitch(&app, keys, previous, st.ActiveKeyID)
		if _, ok := keyset.Signing(keys.keys, now); ok {
			msg := "a key signs; no next key scheduled"
			if st.NextRotationTime != nil {
				msg = "next key signs from " + st.NextRotationTime.UTC().Format(time.RFC3339)
			}
			conds.set(v1alpha1.ConditionKeysReady, metav1.ConditionTrue, v1alpha1.ReasonKeysUpToDate, msg)
		} else {
			conds.set(v1alpha1.ConditionKeysReady, metav1.ConditionFalse, v1alpha1.ReasonKeysetWriteFailed, "no key signs")
		}
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		// Expected with two operators or a person editing the Secret: nothing
		// was written; start again from the Secret's new content.
		log.Info("keyset secret changed while reconciling; retrying", "error", err.Error())
		return ctrl.Result{}, err
	case errors.Is(err, errKeysetInvalid):
		r.Recorder.Eventf(&app, nil, corev1.EventTypeWarning, v1alpha1.EventKeysetInvalid, "RotateKeys", "%v", err)
		conds.set(v1alpha1.ConditionKeysReady, metav1.ConditionFalse, v1alpha1.ReasonKeysetInvalid,
			err.Error()+"; fix or delete the Secret (deleting it generates new keys)")
		failures = append(failures, err)
	default:
		conds.set(v1alpha1.ConditionKeysReady, metav1.ConditionFalse, v1alpha1.ReasonKeysetWriteFailed, err.Error())
		failures = append(failures, err)
	}

	monitorPending, err := r.applyChildren(ctx, &app, s)
	if err != nil {
		failures = append(failures, err)
	}

	dep, err := r.deployment(ctx, &app)
	if err != nil {
		failures = append(failures, err)
	}
	if dep != nil {
		st.ReadyReplicas = dep.Status.ReadyReplicas
	}
	avail, reason, msg := deploymentAvailability(dep, s.replicas)
	conds.set(v1alpha1.ConditionAvailable, avail, reason, msg)

	switch {
	case !conds.isTrue(v1alpha1.ConditionKeysReady):
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonKeysNotReady, "the signing keys are not ready")
	case !conds.isTrue(v1alpha1.ConditionAvailable):
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotAvailable, "the server is not available: "+msg)
	default:
		conds.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "keys ready and server available")
	}
	failure := errors.Join(failures...)
	if failure != nil {
		conds.set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonReconcileFailed, failure.Error())
		r.Recorder.Eventf(&app, nil, corev1.EventTypeWarning, v1alpha1.EventReconcileFailed, "Reconcile", "%v", failure)
	} else {
		conds.set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected, "the last reconcile succeeded")
	}
	st.ObservedGeneration = app.Generation

	if err := r.patchStatus(ctx, &app, base); err != nil {
		return ctrl.Result{}, errors.Join(failure, err)
	}
	if failure != nil {
		return ctrl.Result{}, failure
	}
	after := requeueAfter(keys.keys, now)
	if monitorPending {
		// Nothing watches for the monitoring API to appear: look again
		// soon rather than at the next key change.
		after = min(after, monitorRecheck)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// monitorRecheck is how soon an IdeasApp that asks for a ServiceMonitor
// looks again for the monitoring.coreos.com API.
const monitorRecheck = 5 * time.Minute

// noteScheduledSwitch emits the Activated event of a key that started
// signing by the schedule alone: the switch happens on every replica's
// clock without a write, so no change of this reconcile names it. The
// reconcile that the schedule wakes at that instant sees it first.
func (r *IdeasAppReconciler) noteScheduledSwitch(app *v1alpha1.IdeasApp, keys keysOutcome, previous, active string) {
	if previous == "" || active == "" || previous == active {
		return
	}
	for _, c := range keys.changes {
		if c.Kind == keyset.Activated && c.KeyID == active {
			return // this reconcile made the switch and has said so
		}
	}
	at := ""
	for _, k := range keys.keys.Keys {
		if k.ID == active {
			at = k.ActiveAt.UTC().Format(time.RFC3339)
		}
	}
	r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, string(keyset.Activated), "RotateKeys",
		"key %s signs from %s as scheduled; key %s stopped signing and stays published for verification", active, at, previous)
}

// requeueAfter is the time until the keyset next changes on its own,
// bounded to [minRequeue, maxRequeue].
func requeueAfter(ks keyset.Keyset, now time.Time) time.Duration {
	due := keyset.NextDue(ks, now)
	if due.IsZero() {
		return maxRequeue
	}
	return min(max(due.Sub(now), minRequeue), maxRequeue)
}

func (r *IdeasAppReconciler) patchStatus(ctx context.Context, app, base *v1alpha1.IdeasApp) error {
	if err := r.Status().Patch(ctx, app, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	return nil
}

// applyChildren server-side applies every child but the keyset Secret. It
// reports whether a ServiceMonitor is wanted but its API is not installed.
func (r *IdeasAppReconciler) applyChildren(ctx context.Context, app *v1alpha1.IdeasApp, s settings) (monitorPending bool, err error) {
	apply := func(kind string, ac runtime.ApplyConfiguration) error {
		if err := r.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s: %w", kind, err)
		}
		return nil
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(apply("ServiceAccount", serviceAccount(app)))
	add(apply("Role", role(app)))
	add(apply("RoleBinding", roleBinding(app)))
	add(apply("ConfigMap", configMap(app, s)))
	add(apply("Service", service(app, s)))
	if s.sqlite != nil {
		add(apply("PersistentVolumeClaim", dataClaim(app, s)))
	}
	add(apply("Deployment", deployment(app, s)))
	if s.replicas > 1 {
		add(apply("PodDisruptionBudget", podDisruptionBudget(app)))
	} else {
		add(r.deleteOwned(ctx, app, &policyv1.PodDisruptionBudget{}))
	}
	monitorPending, err = r.reconcileServiceMonitor(ctx, app, s)
	add(err)
	return monitorPending, errors.Join(errs...)
}

// reconcileServiceMonitor creates the ServiceMonitor when asked for and
// the monitoring.coreos.com API exists, and deletes ours when not asked.
func (r *IdeasAppReconciler) reconcileServiceMonitor(ctx context.Context, app *v1alpha1.IdeasApp, s settings) (pending bool, err error) {
	gk := schema.GroupKind{Group: monitoringGroup, Kind: serviceMonitorKind}
	if _, err := r.RESTMapper().RESTMapping(gk, monitoringVersion); err != nil {
		if s.serviceMonitor {
			r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, v1alpha1.EventServiceMonitorUnsupported, "Reconcile",
				"spec.metrics.serviceMonitor is set but the %s API is not installed; no ServiceMonitor created (looking again every %s)",
				monitoringGroup, monitorRecheck)
		}
		return s.serviceMonitor, nil
	}
	if s.serviceMonitor {
		if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(serviceMonitor(app)),
			client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return false, fmt.Errorf("apply ServiceMonitor: %w", err)
		}
		return false, nil
	}
	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(gk.WithVersion(monitoringVersion))
	return false, r.deleteOwned(ctx, app, sm)
}

// deleteOwned deletes obj (named like app) if app controls it.
func (r *IdeasAppReconciler) deleteOwned(ctx context.Context, app *v1alpha1.IdeasApp, obj client.Object) error {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if err := r.Get(ctx, key, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, app) {
		return nil
	}
	uid := obj.GetUID()
	if err := r.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %T %s: %w", obj, key.Name, err)
	}
	return nil
}

// deployment returns the app's Deployment, nil if not there yet.
func (r *IdeasAppReconciler) deployment(ctx context.Context, app *v1alpha1.IdeasApp) (*appsv1.Deployment, error) {
	var dep appsv1.Deployment
	if err := r.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, &dep); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get deployment: %w", err)
	}
	return &dep, nil
}

// CacheOptions is how the operator's manager caches objects: only the
// Secrets and ConfigMaps the operator manages (it has no business holding
// every Secret in memory), and only watchNamespace if not empty.
func CacheOptions(watchNamespace string) cache.Options {
	ours := labels.SelectorFromSet(labels.Set{labelManagedBy: managedBy})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: ours},
		&corev1.ConfigMap{}: {Label: ours},
	}}
	if watchNamespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}
	return opts
}

// SetupWithManager registers the reconciler: IdeasApps (spec or annotation
// changes, not our own status writes) and every kind of child.
func (r *IdeasAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.IdeasApp{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}, builder.WithPredicates(r.writes.predicate())).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&appsv1.Deployment{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Named("ideasapp").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Complete(r)
}
