package controllers

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/keyset"
)

// setKeyStatus writes the key table and the times derived from ks at now.
func setKeyStatus(st *v1alpha1.IdeasAppStatus, ks keyset.Keyset, now time.Time) {
	st.Keys = make([]v1alpha1.KeyStatus, 0, len(ks.Keys))
	st.ActiveKeyID, st.LastRotationTime, st.NextRotationTime = "", nil, nil
	for _, k := range ks.Keys {
		st.Keys = append(st.Keys, v1alpha1.KeyStatus{
			KID:         k.ID,
			Algorithm:   string(k.Algorithm),
			State:       string(keyset.State(k, now)),
			PublishedAt: metav1.NewTime(k.PublishedAt),
			ActiveAt:    metav1.NewTime(k.ActiveAt),
			RetiredAt:   metaTime(k.RetiredAt),
			RemoveAfter: metaTime(k.RemoveAfter),
		})
	}
	if k, ok := keyset.Signing(ks, now); ok {
		st.ActiveKeyID = k.ID
		st.LastRotationTime = metaTime(&k.ActiveAt)
	}
	if k, ok := nextKey(ks, now); ok {
		st.NextRotationTime = metaTime(&k.ActiveAt)
	}
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	mt := metav1.NewTime(*t)
	return &mt
}

// conditions collects the conditions of one reconcile; set writes them with
// the generation they describe. LastTransitionTime moves only when a
// condition's status flips (meta.SetStatusCondition keeps it otherwise).
type conditions struct {
	generation int64
	now        time.Time
	list       *[]metav1.Condition
}

func (c conditions) set(typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(c.list, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: c.generation,
		LastTransitionTime: metav1.NewTime(c.now),
	})
}

func (c conditions) isTrue(typ string) bool { return meta.IsStatusConditionTrue(*c.list, typ) }

// remove drops a condition that no longer applies (spec.tls unset, say).
func (c conditions) remove(typ string) { meta.RemoveStatusCondition(c.list, typ) }

// message is the message of a condition, empty if it is not set.
func (c conditions) message(typ string) string {
	if cond := meta.FindStatusCondition(*c.list, typ); cond != nil {
		return cond.Message
	}
	return ""
}

// deploymentAvailability is the Available condition for dep (nil: not
// created or not seen yet).
func deploymentAvailability(dep *appsv1.Deployment, want int32) (metav1.ConditionStatus, string, string) {
	if dep == nil {
		return metav1.ConditionFalse, v1alpha1.ReasonDeploymentUnavailable, "the Deployment does not exist yet"
	}
	if want == 0 {
		return metav1.ConditionFalse, v1alpha1.ReasonDeploymentUnavailable, "scaled to 0 replicas"
	}
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && dep.Status.ObservedGeneration >= dep.Generation {
			return metav1.ConditionTrue, v1alpha1.ReasonDeploymentAvailable,
				fmt.Sprintf("%d of %d pods ready", dep.Status.ReadyReplicas, want)
		}
	}
	return metav1.ConditionFalse, v1alpha1.ReasonDeploymentUnavailable,
		fmt.Sprintf("%d of %d pods ready", dep.Status.ReadyReplicas, want)
}

// changeMessage describes one key change for its event.
func changeMessage(c keyset.Change) string {
	at := c.At.UTC().Format(time.RFC3339)
	switch c.Kind {
	case keyset.Generated:
		return fmt.Sprintf("key %s generated and published; signs from %s", c.KeyID, at)
	case keyset.Activated:
		return fmt.Sprintf("key %s signs from %s", c.KeyID, at)
	case keyset.Retired:
		return fmt.Sprintf("key %s stops signing at %s and stays published for verification", c.KeyID, at)
	case keyset.Removed:
		return fmt.Sprintf("key %s removed from the JWKS: every token it signed has expired", c.KeyID)
	case keyset.Revoked:
		return fmt.Sprintf("key %s revoked: removed from the keyset at once", c.KeyID)
	}
	return fmt.Sprintf("key %s: %s at %s", c.KeyID, c.Kind, at)
}
