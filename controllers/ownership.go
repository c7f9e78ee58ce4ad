package controllers

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// The operator creates its children under names a person may already use
// (an IdeasApp "web" wants a Service "web", a ConfigMap "web-config"). Server-
// side apply with ForceOwnership would silently take such an object over:
// rewrite it, add the IdeasApp as its controller, and have the garbage
// collector delete it with the IdeasApp. So before applying anything the
// operator looks at every child that exists: one not controlled by this
// IdeasApp (by UID, so not by an earlier IdeasApp of the same name either)
// is a conflict, and nothing is applied until it is gone.

// child is one object the operator keeps for an IdeasApp.
type child struct {
	// obj is an empty object of the child's kind (typed, or unstructured
	// with its kind set), filled by the ownership check.
	obj client.Object
	// name is the child's name in the app's namespace.
	name string
	// ac is what the operator applies; nil for the keyset Secret, which is
	// written with optimistic concurrency instead (keys.go).
	ac runtime.ApplyConfiguration
}

// kindOf is the Kind of obj, as a person reads it in a message.
func kindOf(obj client.Object, r client.Client) string {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.GetKind()
	}
	if gvk, err := apiutil.GVKForObject(obj, r.Scheme()); err == nil {
		return gvk.Kind
	}
	return fmt.Sprintf("%T", obj)
}

// conflicts returns the children that exist and are not controlled by app,
// as "Kind name" with who controls them. A child missing from the cache is
// looked up in the API server too (metadata only): the operator caches only
// the Secrets and ConfigMaps it labelled, and a cache may lag behind a
// create, so "not in the cache" is not "free to take".
func (r *IdeasAppReconciler) conflicts(ctx context.Context, app *v1alpha1.IdeasApp, children []child) ([]string, error) {
	var found []string
	for _, c := range children {
		key := types.NamespacedName{Namespace: app.Namespace, Name: c.name}
		meta, exists, err := r.existing(ctx, key, c.obj)
		if err != nil {
			return nil, fmt.Errorf("check %s %s: %w", kindOf(c.obj, r.Client), c.name, err)
		}
		if !exists || metav1.IsControlledBy(meta, app) {
			continue
		}
		who := "no controller"
		if owner := metav1.GetControllerOf(meta); owner != nil {
			who = fmt.Sprintf("controlled by %s %s", owner.Kind, owner.Name)
		}
		found = append(found, fmt.Sprintf("%s %s (%s)", kindOf(c.obj, r.Client), c.name, who))
	}
	return found, nil
}

// existing reads the metadata of the object key of obj's kind.
func (r *IdeasAppReconciler) existing(ctx context.Context, key types.NamespacedName, obj client.Object) (metav1.Object, bool, error) {
	err := r.Get(ctx, key, obj)
	if err == nil {
		return obj, true, nil
	}
	if client.IgnoreNotFound(err) != nil {
		return nil, false, err
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if _, ok := obj.(*unstructured.Unstructured); !ok {
		if gvk, err = apiutil.GVKForObject(obj, r.Scheme()); err != nil {
			return nil, false, err
		}
	}
	pom := &metav1.PartialObjectMetadata{}
	pom.SetGroupVersionKind(gvk)
	if err := r.APIReader.Get(ctx, key, pom); err != nil {
		return nil, false, client.IgnoreNotFound(err)
	}
	return pom, true, nil
}

// conflictMessage names the conflicting children for a condition or event.
func conflictMessage(found []string) string {
	return "existing objects not controlled by this IdeasApp, left untouched: " + strings.Join(found, ", ") +
		"; nothing is applied until they are deleted or renamed, or the IdeasApp is renamed"
}
