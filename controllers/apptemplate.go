package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// The app template is how the Helm chart gets its default IdeasApp without
// making it a release object. Helm cannot create a CRD and an object of it
// in one release, and Helm 3 adopts an object created any other way without
// patching it, so an IdeasApp in the chart either needs a hook (and then
// upgrades silently change nothing) or a separate CRD step. Instead the
// chart renders an ordinary ConfigMap holding the desired IdeasApp, which
// every Helm patches on upgrade and restores on rollback, and the operator
// (--app-template) server-side applies that IdeasApp whenever the ConfigMap
// changes. The IdeasApp is never a Helm object, so no uninstall or rollback
// deletes it, with its keys and its database, by surprise.
const (
	// AppTemplateKey is the data key of the desired IdeasApp (YAML or
	// JSON: apiVersion, kind, metadata.name, labels, annotations, spec).
	AppTemplateKey = "ideasapp.yaml"
	// AppTemplateKeepKey is the data key saying whether the IdeasApp
	// outlives the ConfigMap: "true" (the default) or "false", which makes
	// the ConfigMap its owner, so that the garbage collector deletes it
	// (and its keys and data) with the ConfigMap.
	AppTemplateKeepKey = "keep"

	// AppTemplateFieldOwner is the field manager of the applied IdeasApp:
	// the fields it owns are exactly those the template sets, so a field
	// dropped from the template is removed, and fields set by anyone else
	// stay.
	AppTemplateFieldOwner = "ideapool-operator-app-template"

	// Event reasons, on the template ConfigMap.

	// EventAppApplied (Normal): the IdeasApp was created or changed as the
	// template says.
	EventAppApplied = "AppApplied"
	// EventAppAdopted (Normal): an IdeasApp made by Helm (an older chart)
	// was taken over; the fields Helm set are now the template's.
	EventAppAdopted = "AppAdopted"
	// EventAppTemplateInvalid (Warning): the template does not describe an
	// IdeasApp the operator may apply; nothing was changed.
	EventAppTemplateInvalid = "AppTemplateInvalid"
	// EventAppApplyFailed (Warning): the API server refused the IdeasApp.
	EventAppApplyFailed = "AppApplyFailed"
)

// Annotations Helm puts on its objects. helmReleaseAnnotation marks the
// field managers that are Helm (whatever its binary is called: Helm names
// its field manager after os.Args[0]); helmResourcePolicy is left on an
// adopted IdeasApp, see adoptFromHelm.
const (
	helmReleaseAnnotation = "meta.helm.sh/release-name"
	helmResourcePolicy    = "helm.sh/resource-policy"
)

// AppTemplateReconciler keeps one IdeasApp as a ConfigMap describes it.
type AppTemplateReconciler struct {
	// Client applies the IdeasApp.
	Client client.Client
	// APIReader reads the IdeasApp with its managed fields from the API
	// server, to find fields an older chart's Helm release still owns.
	APIReader client.Reader
	// Templates reads the template ConfigMap; SetupWithManager sets it to
	// a cache holding only that ConfigMap.
	Templates client.Reader
	// Template names the ConfigMap.
	Template types.NamespacedName
	// Recorder emits events on the ConfigMap.
	Recorder events.EventRecorder
}

// errInvalidTemplate wraps what is wrong with a template: reconciling it
// again cannot help, a change of the ConfigMap will.
var errInvalidTemplate = errors.New("invalid app template")

// +kubebuilder:rbac:groups=ideapool.dev,resources=ideasapps,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch

// Reconcile applies the IdeasApp of the template. A missing ConfigMap
// changes nothing: the IdeasApp stays, unless it is owned by the ConfigMap
// (keep "false") and the garbage collector deletes it.
func (r *AppTemplateReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("app_template", r.Template.String())
	var cm corev1.ConfigMap
	if err := r.Templates.Get(ctx, r.Template, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			log.Info("app template not found; any IdeasApp it made is left as it is")
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get app template: %w", err)
	}
	if !cm.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	desired, err := desiredApp(&cm)
	if err != nil {
		log.Error(err, "app template invalid; the IdeasApp is not changed")
		r.Recorder.Eventf(&cm, nil, corev1.EventTypeWarning, EventAppTemplateInvalid, "ApplyApp", "%v; the IdeasApp is not changed", err)
		return ctrl.Result{}, nil
	}
	log = log.WithValues("ideasapp", desired.GetName())

	before, adopted, err := r.adoptFromHelm(ctx, desired)
	if err != nil {
		return ctrl.Result{}, err
	}
	if adopted {
		log.Info("took over an IdeasApp made by a Helm release")
		r.Recorder.Eventf(&cm, nil, corev1.EventTypeNormal, EventAppAdopted, "ApplyApp",
			"IdeasApp %s was made by a Helm release; the fields Helm set now follow this template", desired.GetName())
	}

	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired),
		client.FieldOwner(AppTemplateFieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			// The values describe an IdeasApp the CRD refuses: trying
			// again cannot help until the ConfigMap changes.
			log.Error(err, "ideasapp refused by the API server")
			r.Recorder.Eventf(&cm, nil, corev1.EventTypeWarning, EventAppApplyFailed, "ApplyApp", "IdeasApp %s: %v", desired.GetName(), err)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("apply ideasapp %s: %w", desired.GetName(), err)
	}
	if desired.GetResourceVersion() != before {
		log.Info("applied ideasapp", "generation", desired.GetGeneration())
		r.Recorder.Eventf(&cm, nil, corev1.EventTypeNormal, EventAppApplied, "ApplyApp",
			"IdeasApp %s applied (generation %d)", desired.GetName(), desired.GetGeneration())
	}
	return ctrl.Result{}, nil
}

// appTemplate is what a template may say: nothing that would let the
// ConfigMap's author place the IdeasApp elsewhere or take over another
// object's fields (namespace, owners, finalizers, status).
type appTemplate struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec,omitempty"`
}

// desiredApp is the IdeasApp cm describes, as an apply configuration: in
// cm's namespace, owned by cm unless kept.
func desiredApp(cm *corev1.ConfigMap) (*unstructured.Unstructured, error) {
	raw, ok := cm.Data[AppTemplateKey]
	if !ok {
		return nil, fmt.Errorf("%w: no data key %q", errInvalidTemplate, AppTemplateKey)
	}
	keep := true
	if v, ok := cm.Data[AppTemplateKeepKey]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q is not true or false", errInvalidTemplate, AppTemplateKeepKey, v)
		}
		keep = b
	}
	js, err := utilyaml.ToJSON([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errInvalidTemplate, AppTemplateKey, err)
	}
	var t appTemplate
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errInvalidTemplate, AppTemplateKey, err)
	}
	gvk := v1alpha1.GroupVersion.WithKind("IdeasApp")
	switch {
	case t.APIVersion != gvk.GroupVersion().String() || t.Kind != gvk.Kind:
		return nil, fmt.Errorf("%w: %s is %s %s, want %s %s", errInvalidTemplate, AppTemplateKey,
			t.APIVersion, t.Kind, gvk.GroupVersion(), gvk.Kind)
	case t.Metadata.Name == "":
		return nil, fmt.Errorf("%w: %s has no metadata.name", errInvalidTemplate, AppTemplateKey)
	case t.Metadata.Namespace != "" && t.Metadata.Namespace != cm.Namespace:
		return nil, fmt.Errorf("%w: %s names namespace %q; the IdeasApp is made in the ConfigMap's namespace %q",
			errInvalidTemplate, AppTemplateKey, t.Metadata.Namespace, cm.Namespace)
	}

	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(cm.Namespace)
	u.SetName(t.Metadata.Name)
	u.SetLabels(t.Metadata.Labels)
	u.SetAnnotations(t.Metadata.Annotations)
	// An empty spec still names the object, so that the API server fills in
	// the CRD's defaults as for any IdeasApp.
	u.Object["spec"] = map[string]any{}
	if len(t.Spec) > 0 && string(t.Spec) != "null" {
		// The API server answers an apply naming a field the CRD does not
		// have with a bare 500, which looks worth retrying; the Go type
		// says the same at once and names the field.
		var typed v1alpha1.IdeasAppSpec
		strict := json.NewDecoder(bytes.NewReader(t.Spec))
		strict.DisallowUnknownFields()
		if err := strict.Decode(&typed); err != nil {
			return nil, fmt.Errorf("%w: %s: spec: %w", errInvalidTemplate, AppTemplateKey, err)
		}
		var spec map[string]any
		if err := utiljson.Unmarshal(t.Spec, &spec); err != nil {
			return nil, fmt.Errorf("%w: %s: spec: %w", errInvalidTemplate, AppTemplateKey, err)
		}
		u.Object["spec"] = spec
	}
	if !keep {
		// Not a controller reference: the IdeasApp reconciler's children
		// are controlled by the IdeasApp, and nothing controls the
		// IdeasApp. No blockOwnerDeletion either: that would need update
		// on configmaps/finalizers, and Helm deletes in the background.
		u.SetOwnerReferences([]metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID,
		}})
	}
	return u, nil
}

// adoptFromHelm hands the fields a Helm release owns in the live IdeasApp
// to AppTemplateFieldOwner, as kubectl does when moving from client-side to
// server-side apply. Older charts made the IdeasApp a release object; once a
// chart upgrade drops it from the release, nobody else would ever change or
// remove those fields, and a value taken out of the chart would stay set. The
// next apply then sets them as the template says and removes the rest,
// Helm's ownership labels and annotations with them.
//
// helm.sh/resource-policy stays, and stays Helm's: the Helm upgrade that
// drops the IdeasApp from the release reads it to decide whether to delete
// the object, just after it created the template, so an operator quick
// enough to remove it first would have the IdeasApp deleted with its keys
// and data. (Owned by nobody, the next apply would prune it with the
// annotations map once no other manager owned anything in that map.)
//
// It returns the live IdeasApp's resourceVersion afterwards ("" if there
// is none) and whether it took anything over.
func (r *AppTemplateReconciler) adoptFromHelm(ctx context.Context, desired *unstructured.Unstructured) (string, bool, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(desired.GroupVersionKind())
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil {
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("get ideasapp: %w", err)
	}
	entries, changed, err := takeOverHelmFields(live.GetManagedFields())
	if err != nil || !changed {
		return live.GetResourceVersion(), false, err
	}
	patch, err := json.Marshal([]map[string]any{
		{"op": "replace", "path": "/metadata/managedFields", "value": entries},
		// Written back unchanged: the update fails with a conflict if the
		// object changed since it was read, instead of losing that change.
		{"op": "replace", "path": "/metadata/resourceVersion", "value": live.GetResourceVersion()},
	})
	if err != nil {
		return "", false, err
	}
	if err := r.Client.Patch(ctx, live, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return "", false, fmt.Errorf("take over the fields of helm: %w", err)
	}
	return live.GetResourceVersion(), true, nil
}

// takeOverHelmFields merges the field sets of Helm's managers (those that
// set the release annotation) into one Apply entry of AppTemplateFieldOwner,
// but helm.sh/resource-policy, which Helm keeps (see adoptFromHelm). It
// reports whether anything changed.
func takeOverHelmFields(entries []metav1.ManagedFieldsEntry) ([]metav1.ManagedFieldsEntry, bool, error) {
	releasePath := fieldpath.MakePathOrDie("metadata", "annotations", helmReleaseAnnotation)
	policyPath := fieldpath.MakePathOrDie("metadata", "annotations", helmResourcePolicy)
	policy := fieldpath.NewSet(policyPath)

	var taken *fieldpath.Set
	apiVersion := v1alpha1.GroupVersion.String()
	out := make([]metav1.ManagedFieldsEntry, 0, len(entries))
	ours := -1
	for _, e := range entries {
		if e.Subresource != "" || e.FieldsV1 == nil {
			out = append(out, e)
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(e.FieldsV1.GetRawReader()); err != nil {
			return nil, false, fmt.Errorf("managed fields of %s: %w", e.Manager, err)
		}
		switch {
		case e.Manager == AppTemplateFieldOwner && e.Operation == metav1.ManagedFieldsOperationApply:
			ours = len(out)
			out = append(out, e)
		case set.Has(releasePath):
			if taken == nil {
				taken = &fieldpath.Set{}
			}
			taken = taken.Union(set.Difference(policy))
			apiVersion = e.APIVersion
			if set.Has(policyPath) {
				raw, err := policy.ToJSON()
				if err != nil {
					return nil, false, err
				}
				e.FieldsV1 = metav1.NewFieldsV1(string(raw))
				out = append(out, e)
			}
		default:
			out = append(out, e)
		}
	}
	if taken == nil {
		return entries, false, nil
	}
	if ours < 0 {
		out = append(out, metav1.ManagedFieldsEntry{
			Manager: AppTemplateFieldOwner, Operation: metav1.ManagedFieldsOperationApply,
			APIVersion: apiVersion, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1("{}"),
		})
		ours = len(out) - 1
	}
	mine := &fieldpath.Set{}
	if err := mine.FromJSON(out[ours].FieldsV1.GetRawReader()); err != nil {
		return nil, false, fmt.Errorf("managed fields of %s: %w", AppTemplateFieldOwner, err)
	}
	raw, err := mine.Union(taken).ToJSON()
	if err != nil {
		return nil, false, err
	}
	out[ours].FieldsV1 = metav1.NewFieldsV1(string(raw))
	return out, true, nil
}

// SetupWithManager registers the reconciler with a cache of its own that
// holds the one template ConfigMap: the manager's cache holds only the
// ConfigMaps the operator makes (CacheOptions), and the template is Helm's.
func (r *AppTemplateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	templates, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:        mgr.GetHTTPClient(),
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{r.Template.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Field: fields.OneTermEqualSelector("metadata.name", r.Template.Name)},
		},
	})
	if err != nil {
		return fmt.Errorf("app template cache: %w", err)
	}
	if err := mgr.Add(templates); err != nil {
		return err
	}
	r.Templates = templates
	return ctrl.NewControllerManagedBy(mgr).
		Named("apptemplate").
		WatchesRawSource(source.Kind(templates, &corev1.ConfigMap{}, &handler.TypedEnqueueRequestForObject[*corev1.ConfigMap]{})).
		Complete(r)
}
