// Package controllers holds the IdeasApp reconciler: it keeps the children
// of every IdeasApp in place (keyset Secret, ConfigMap, RBAC, Deployment,
// Service, storage, PodDisruptionBudget, ServiceMonitor) and its signing keys
// on schedule, deciding nothing about keys itself: internal/keyset does.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
	"github.com/ideapool/ideapool/internal/contract"
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
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;create;update;patch;delete
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
	if old := st.Issuer; old != "" && old != s.issuer {
		r.Recorder.Eventf(&app, nil, corev1.EventTypeWarning, v1alpha1.EventIssuerChanged, "Reconcile",
			"issuer changed from %s to %s: tokens issued by %s no longer verify (clients sign in again; verifiers such as kube-apiserver need the new issuer)",
			old, s.issuer, old)
		log.Info("issuer changed", "old_issuer", old, "issuer", s.issuer)
	}
	st.Issuer, st.JWKSURI = s.issuer, contract.JWKSURI(s.issuer)

	var failures []error
	p, err := r.plan(&app, s)
	if err != nil {
		failures = append(failures, err)
	}
	// Keys and children are checked apart: running pods need their keys
	// rotated on schedule even while a new child (an Ingress, say) waits
	// for a conflicting object to go.
	keysetConflict, errK := r.conflicts(ctx, &app, []child{p.keyset})
	conflicts, errC := r.conflicts(ctx, &app, p.children)
	conflicts = append(keysetConflict, conflicts...)
	checked := errK == nil && errC == nil
	if !checked {
		failures = append(failures, errK, errC)
	}
	keysetFree := errK == nil && len(keysetConflict) == 0

	var keys keysOutcome
	err = errK
	if keysetFree {
		keys, err = r.reconcileKeys(ctx, &app, s, now)
	}
	switch {
	case len(keysetConflict) > 0:
		conds.set(v1alpha1.ConditionKeysReady, metav1.ConditionFalse, v1alpha1.ReasonChildConflict,
			"the keyset Secret "+p.keyset.name+" exists and is not controlled by this IdeasApp; the operator does not touch it")
	case errK != nil:
		conds.set(v1alpha1.ConditionKeysReady, metav1.ConditionFalse, v1alpha1.ReasonKeysetWriteFailed, errK.Error())
	case err == nil:
		r.recordKeyChanges(ctx, &app, keys)
		recordKeyMetrics(app.Namespace, app.Name, keys.keys, keys.rotations, now)
		st.LastRotateRequest, st.LastRevokeRequest = keys.handledRotate, keys.handledRevoke
		previous := st.ActiveKeyID
		setKeyStatus(st, keys.keys, now)
		r.noteScheduledSwitch(ctx, &app, keys, previous, st.ActiveKeyID)
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

	var applyErrs map[string]error
	if checked && len(conflicts) == 0 {
		applyErrs = r.applyChildren(ctx, &app, p)
		for _, kind := range slices.Sorted(maps.Keys(applyErrs)) {
			failures = append(failures, applyErrs[kind]) // in a stable order: the message is in the status
		}
	} else if len(conflicts) > 0 {
		r.Recorder.Eventf(&app, nil, corev1.EventTypeWarning, v1alpha1.EventChildConflict, "Reconcile", "%s", conflictMessage(conflicts))
	}

	pending := p.monitorMissing
	tlsPending, err := r.tlsCondition(ctx, &app, s, p, conds)
	if err != nil {
		failures = append(failures, err)
	}
	pending = pending || tlsPending
	pending = r.exposeCondition(&app, s, p, conds, conflicts, applyErrs) || pending

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
	case len(conflicts) > 0:
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonChildConflict, conflictMessage(conflicts))
	case !conds.isTrue(v1alpha1.ConditionKeysReady):
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonKeysNotReady, "the signing keys are not ready")
	case s.tls != nil && !conds.isTrue(v1alpha1.ConditionTLSReady):
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTLSNotReady, "the TLS certificate is not ready: "+conds.message(v1alpha1.ConditionTLSReady))
	case s.exposed() && !conds.isTrue(v1alpha1.ConditionExposed):
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotExposed, "the issuer "+s.issuer+" is not exposed: "+conds.message(v1alpha1.ConditionExposed))
	case !conds.isTrue(v1alpha1.ConditionAvailable):
		conds.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotAvailable, "the server is not available: "+msg)
	default:
		conds.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "keys ready and server available")
	}
	failure := errors.Join(failures...)
	switch {
	case failure != nil:
		conds.set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonReconcileFailed, failure.Error())
		r.Recorder.Eventf(&app, nil, corev1.EventTypeWarning, v1alpha1.EventReconcileFailed, "Reconcile", "%v", failure)
	case len(conflicts) > 0:
		conds.set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonChildConflict, conflictMessage(conflicts))
	default:
		conds.set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected, "the last reconcile succeeded")
	}
	st.ObservedGeneration = app.Generation

	if err := r.patchStatus(ctx, &app, base); err != nil {
		return ctrl.Result{}, errors.Join(failure, err)
	}
	if failure != nil {
		return ctrl.Result{}, failure
	}
	after := maxRequeue
	if keysetFree {
		after = requeueAfter(keys.keys, now)
	}
	if pending {
		// Nothing watches for a missing API or a TLS Secret of someone
		// else's to appear: look again soon rather than at the next key
		// change.
		after = min(after, apiRecheck)
	}
	if len(conflicts) > 0 {
		// Nor for a conflicting object (not ours, so unwatched) to go.
		after = min(after, conflictRecheck)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// How soon an IdeasApp waiting for something nothing watches looks again:
// a third-party API (monitoring.coreos.com, cert-manager.io,
// gateway.networking.k8s.io) or its TLS Secret to appear, a conflicting
// object to be removed.
const (
	apiRecheck      = 5 * time.Minute
	conflictRecheck = time.Minute
)

// recordKeyChanges emits the event and the audit log line of every key
// change this reconcile wrote, and the events of handled requests.
func (r *IdeasAppReconciler) recordKeyChanges(ctx context.Context, app *v1alpha1.IdeasApp, keys keysOutcome) {
	for _, c := range keys.changes {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, string(c.Kind), "RotateKeys", "%s", changeMessage(c))
		auditKeyChange(ctx, c.Kind, c.KeyID, c.At)
	}
	for _, n := range keys.notes {
		r.Recorder.Eventf(app, nil, n.eventType, n.reason, n.action, "%s", n.message)
	}
}

// noteScheduledSwitch emits the Activated event of a key that started
// signing by the schedule alone: the switch happens on every replica's
// clock without a write, so no change of this reconcile names it. The
// reconcile that the schedule wakes at that instant sees it first.
func (r *IdeasAppReconciler) noteScheduledSwitch(ctx context.Context, app *v1alpha1.IdeasApp, keys keysOutcome, previous, active string) {
	if previous == "" || active == "" || previous == active {
		return
	}
	for _, c := range keys.changes {
		if c.Kind == keyset.Activated && c.KeyID == active {
			return // this reconcile made the switch and has said so
		}
	}
	var at time.Time
	for _, k := range keys.keys.Keys {
		if k.ID == active {
			at = k.ActiveAt
		}
	}
	r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, string(keyset.Activated), "RotateKeys",
		"key %s signs from %s as scheduled; key %s stopped signing and stays published for verification",
		active, at.UTC().Format(time.RFC3339), previous)
	auditKeyChange(ctx, keyset.Activated, active, at)
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

// childPlan is what the operator keeps for an IdeasApp this reconcile.
type childPlan struct {
	// keyset is the keyset Secret, checked for ownership with the others
	// but written by reconcileKeys.
	keyset child
	// children are applied in this order (server-side apply).
	children []child
	// unwanted are the optional children not asked for: deleted if ours.
	unwanted []client.Object
	// Asked-for children whose API is not installed.
	monitorMissing, certManagerMissing, gatewayMissing bool
}

// plan lists the children of app with settings s. Optional third-party
// kinds are planned only when their API exists.
func (r *IdeasAppReconciler) plan(app *v1alpha1.IdeasApp, s settings) (childPlan, error) {
	typed := func(obj client.Object, name string, ac runtime.ApplyConfiguration) child {
		return child{obj: obj, name: name, ac: ac}
	}
	untyped := func(u *unstructured.Unstructured) child {
		empty := &unstructured.Unstructured{}
		empty.SetGroupVersionKind(u.GroupVersionKind())
		return child{obj: empty, name: u.GetName(), ac: client.ApplyConfigurationFromUnstructured(u)}
	}
	empty := func(gvk schema.GroupVersionKind) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		return u
	}
	p := childPlan{keyset: typed(&corev1.Secret{}, contract.KeysetSecretName(app.Name), nil)}
	add := func(c child) { p.children = append(p.children, c) }
	add(typed(&corev1.ServiceAccount{}, app.Name, serviceAccount(app)))
	add(typed(&rbacv1.Role{}, app.Name, role(app)))
	add(typed(&rbacv1.RoleBinding{}, app.Name, roleBinding(app)))
	add(typed(&corev1.ConfigMap{}, contract.ConfigMapName(app.Name), configMap(app, s)))
	add(typed(&corev1.Service{}, app.Name, service(app, s)))
	if s.sqlite != nil {
		add(typed(&corev1.PersistentVolumeClaim{}, dataClaimName(app.Name), dataClaim(app, s)))
	}
	add(typed(&appsv1.Deployment{}, app.Name, deployment(app, s)))
	if s.replicas > 1 {
		add(typed(&policyv1.PodDisruptionBudget{}, app.Name, podDisruptionBudget(app)))
	} else {
		p.unwanted = append(p.unwanted, &policyv1.PodDisruptionBudget{})
	}
	// The Ingress is read like the third-party kinds, uncached and
	// unwatched: an operator whose RBAC predates it (an image upgraded
	// before its Role) then keeps serving every IdeasApp that does not ask
	// for one, instead of waiting forever for an informer it may not start.
	if s.ingress != nil {
		add(child{obj: empty(ingressGVK), name: app.Name, ac: ingress(app, s)})
	} else {
		p.unwanted = append(p.unwanted, empty(ingressGVK))
	}

	var errs []error
	optional := func(gvk schema.GroupVersionKind, wanted bool, build func() *unstructured.Unstructured) (missing bool) {
		ok, err := r.apiExists(gvk)
		if err != nil {
			errs = append(errs, err)
		}
		switch {
		case !ok:
			return wanted
		case wanted:
			add(untyped(build()))
		default:
			p.unwanted = append(p.unwanted, empty(gvk))
		}
		return false
	}
	p.certManagerMissing = optional(certificateGVK, s.tls != nil && s.tls.CertManager != nil,
		func() *unstructured.Unstructured { return certificate(app, s) })
	p.gatewayMissing = optional(httpRouteGVK, s.gateway != nil,
		func() *unstructured.Unstructured { return httpRoute(app, s) })
	p.monitorMissing = optional(monitorGVK, s.serviceMonitor,
		func() *unstructured.Unstructured { return serviceMonitor(app) })
	return p, errors.Join(errs...)
}

// apiExists reports whether the API server serves gvk.
func (r *IdeasAppReconciler) apiExists(gvk schema.GroupVersionKind) (bool, error) {
	_, err := r.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("look up the %s API: %w", gvk.GroupVersion(), err)
	}
}

// applyChildren server-side applies every planned child and deletes the
// unwanted ones that are ours. It returns the failures by child kind.
func (r *IdeasAppReconciler) applyChildren(ctx context.Context, app *v1alpha1.IdeasApp, p childPlan) map[string]error {
	errs := map[string]error{}
	for _, c := range p.children {
		kind := kindOf(c.obj, r.Client)
		if err := r.Apply(ctx, c.ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			errs[kind] = fmt.Errorf("apply %s: %w", kind, err)
		}
	}
	for _, obj := range p.unwanted {
		if err := r.deleteOwned(ctx, app, obj); err != nil {
			errs[kindOf(obj, r.Client)] = err
		}
	}
	if p.monitorMissing {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, v1alpha1.EventServiceMonitorUnsupported, "Reconcile",
			"spec.metrics.serviceMonitor is set but the %s API is not installed; no ServiceMonitor created (looking again every %s)",
			monitoringGroup, apiRecheck)
	}
	return errs
}

// tlsCondition sets TLSReady (or removes it without spec.tls) and reports
// whether the app waits for something nothing watches.
func (r *IdeasAppReconciler) tlsCondition(ctx context.Context, app *v1alpha1.IdeasApp, s settings, p childPlan, conds conditions) (pending bool, err error) {
	if s.tls == nil {
		conds.remove(v1alpha1.ConditionTLSReady)
		return false, nil
	}
	if p.certManagerMissing {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, v1alpha1.EventCertificateUnsupported, "Reconcile",
			"spec.tls.certManager is set but the %s API is not installed; no Certificate created (looking again every %s)",
			certificateGVK.Group, apiRecheck)
		conds.set(v1alpha1.ConditionTLSReady, metav1.ConditionFalse, v1alpha1.ReasonCertManagerNotInstalled,
			"spec.tls.certManager needs cert-manager: the "+certificateGVK.Group+" API is not installed")
		return true, nil
	}
	// Metadata only: the operator has no use for the private key.
	sec := &metav1.PartialObjectMetadata{}
	sec.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: s.tlsSecret}, sec)
	switch {
	case apierrors.IsNotFound(err):
		msg := "the Secret " + s.tlsSecret + " does not exist; the pods start once it does"
		if s.tls.CertManager != nil {
			msg = "cert-manager has not issued the Secret " + s.tlsSecret + " yet (kubectl describe certificate " + app.Name + ")"
		}
		conds.set(v1alpha1.ConditionTLSReady, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound, msg)
		return true, nil
	case err != nil:
		return false, fmt.Errorf("get TLS secret %s: %w", s.tlsSecret, err)
	}
	conds.set(v1alpha1.ConditionTLSReady, metav1.ConditionTrue, v1alpha1.ReasonSecretFound,
		"the pods serve HTTPS with the certificate of Secret "+s.tlsSecret)
	return false, nil
}

// exposeCondition sets Exposed (or removes it without spec.expose) and
// reports whether the app waits for the Gateway API.
func (r *IdeasAppReconciler) exposeCondition(app *v1alpha1.IdeasApp, s settings, p childPlan, conds conditions,
	conflicts []string, applyErrs map[string]error) (pending bool) {
	if !s.exposed() {
		conds.remove(v1alpha1.ConditionExposed)
		return false
	}
	kind, reason := "Ingress", v1alpha1.ReasonIngressReady
	if s.gateway != nil {
		kind, reason = httpRouteGVK.Kind, v1alpha1.ReasonHTTPRouteReady
	}
	switch {
	case p.gatewayMissing:
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, v1alpha1.EventHTTPRouteUnsupported, "Reconcile",
			"spec.expose.gateway is set but the %s API is not installed; no HTTPRoute created (looking again every %s)",
			httpRouteGVK.Group, apiRecheck)
		conds.set(v1alpha1.ConditionExposed, metav1.ConditionFalse, v1alpha1.ReasonGatewayAPINotInstalled,
			"spec.expose.gateway needs the Gateway API: the "+httpRouteGVK.Group+" API is not installed")
		return true
	case len(conflicts) > 0:
		conds.set(v1alpha1.ConditionExposed, metav1.ConditionFalse, v1alpha1.ReasonExposeFailed, "not applied: "+conflictMessage(conflicts))
	case applyErrs[kind] != nil:
		conds.set(v1alpha1.ConditionExposed, metav1.ConditionFalse, v1alpha1.ReasonExposeFailed, applyErrs[kind].Error())
	case applyErrs == nil:
		// The children were not applied (the ownership check failed):
		// leave the condition as it was.
	default:
		conds.set(v1alpha1.ConditionExposed, metav1.ConditionTrue, reason,
			fmt.Sprintf("%s %s routes https://%s to the Service", kind, app.Name, s.host))
	}
	return false
}

// deleteOwned deletes obj (named like app) if app controls it. An object
// the operator may not read is not one it made: it was never asked for,
// or the operator's Role predates its kind.
func (r *IdeasAppReconciler) deleteOwned(ctx context.Context, app *v1alpha1.IdeasApp, obj client.Object) error {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if err := r.Get(ctx, key, obj); err != nil {
		if apierrors.IsForbidden(err) {
			return nil
		}
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
// every Secret in memory), and only the watchNamespaces if any (none: every
// namespace).
func CacheOptions(watchNamespaces []string) cache.Options {
	ours := labels.SelectorFromSet(labels.Set{labelManagedBy: managedBy})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: ours},
		&corev1.ConfigMap{}: {Label: ours},
	}}
	if len(watchNamespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
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
