package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// errKeysetInvalid means the keyset Secret holds something Parse refuses.
// The operator never overwrites it: that could throw away keys verifiers
// still need. A person fixes or deletes the Secret.
var errKeysetInvalid = errors.New("keyset secret is invalid")

// keysOutcome is what reconcileKeys found and did.
type keysOutcome struct {
	// keys is the keyset as stored after this reconcile.
	keys keyset.Keyset
	// changes were written in this reconcile (for events).
	changes []keyset.Change
	// rotations lists, once per operation that generated a key, why
	// (Bootstrap, Schedule, RotationRequested, Revoked): the
	// ideapool_key_rotations_total reasons.
	rotations []keyset.Reason
	// handledRotate and handledRevoke are the request values handled so
	// far, stored with the keys.
	handledRotate, handledRevoke string
	// notes are events about requests (handled or refused).
	notes []note
}

// note is an event to emit once the keyset is safely written.
type note struct {
	eventType, reason, action, message string
}

// reconcileKeys brings the keyset Secret up to date at now: it starts from
// the Secret's current content (read from the API server, not the cache),
// handles new revoke and rotate requests, applies the schedule and writes
// the result with the Secret's resourceVersion, so a concurrent writer
// makes this one fail with a conflict instead of losing its keys.
func (r *IdeasAppReconciler) reconcileKeys(ctx context.Context, app *v1alpha1.IdeasApp, s settings, now time.Time) (keysOutcome, error) {
	var sec corev1.Secret
	key := types.NamespacedName{Namespace: app.Namespace, Name: contract.KeysetSecretName(app.Name)}
	exists := true
	if err := r.APIReader.Get(ctx, key, &sec); apierrors.IsNotFound(err) {
		exists = false
	} else if err != nil {
		return keysOutcome{}, fmt.Errorf("get keyset secret: %w", err)
	}
	if exists && !metav1.IsControlledBy(&sec, app) {
		// Reconcile checked this before; the Secret appeared since.
		return keysOutcome{}, fmt.Errorf("keyset secret %s exists and is not controlled by this IdeasApp; left untouched", key.Name)
	}

	out := keysOutcome{
		handledRotate: app.Status.LastRotateRequest,
		handledRevoke: app.Status.LastRevokeRequest,
	}
	var ks keyset.Keyset
	if exists {
		// The Secret's record wins: it was written with the keys.
		if v, ok := sec.Annotations[contract.AnnotationHandledRotate]; ok {
			out.handledRotate = v
		}
		if v, ok := sec.Annotations[contract.AnnotationHandledRevoke]; ok {
			out.handledRevoke = v
		}
		var err error
		if ks, err = keyset.Parse(sec.Data[contract.KeysetDataKey]); err != nil {
			return out, fmt.Errorf("%w: %s: %w", errKeysetInvalid, key.Name, err)
		}
	}
	before := out

	// The schedule first, so requests see a keyset with a signing key.
	ks, err := r.advance(ks, s.policy, now, &out)
	if err != nil {
		return out, err
	}
	if v := app.Annotations[contract.AnnotationRevokeKey]; v != "" && v != out.handledRevoke {
		next, changes, err := keyset.Revoke(ks, v, s.policy, now, r.Keys)
		switch {
		case errors.Is(err, keyset.ErrUnknownKey):
			out.notes = append(out.notes, note{corev1.EventTypeWarning, v1alpha1.EventRevokeFailed, "RevokeKey",
				fmt.Sprintf("revoke-key %s: no such key in the keyset; nothing revoked", v)})
		case err != nil:
			return out, fmt.Errorf("revoke key %s: %w", v, err)
		default:
			ks = next
			out.changes = append(out.changes, changes...)
			out.rotations = append(out.rotations, keyset.ReasonRevoked)
		}
		out.handledRevoke = v
	}
	if v := app.Annotations[contract.AnnotationRotateKeys]; v != "" && v != out.handledRotate {
		next, changes, err := keyset.RequestRotation(ks, s.policy, now, r.Keys)
		if err != nil {
			return out, fmt.Errorf("request rotation: %w", err)
		}
		msg := fmt.Sprintf("rotate-keys %q: nothing to change, the next key already signs as soon as it is safe", v)
		if len(changes) > 0 {
			ks = next
			out.changes = append(out.changes, changes...)
			out.rotations = append(out.rotations, keyset.ReasonRotationRequested)
			if k, ok := nextKey(ks, now); ok {
				msg = fmt.Sprintf("rotate-keys %q: key %s signs from %s", v, k.ID, k.ActiveAt.UTC().Format(time.RFC3339))
			} else if k, ok := keyset.Signing(ks, now); ok {
				msg = fmt.Sprintf("rotate-keys %q: key %s signs now", v, k.ID)
			}
		}
		out.notes = append(out.notes, note{corev1.EventTypeNormal, v1alpha1.EventRotationRequested, "RotateKeys", msg})
		out.handledRotate = v
	}
	if ks, err = r.advance(ks, s.policy, now, &out); err != nil {
		return out, err
	}
	out.keys = ks

	fresh := len(out.changes) > 0 || out.handledRotate != before.handledRotate || out.handledRevoke != before.handledRevoke
	if exists && !fresh && hasLabels(sec.Labels, commonLabels(app)) {
		return out, nil
	}
	data, err := keyset.Marshal(ks)
	if err != nil {
		return out, fmt.Errorf("encode keyset: %w", err)
	}
	if !exists {
		sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace,
			OwnerReferences: ownerReferences(app, true, true)}, Type: corev1.SecretTypeOpaque}
	}
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	maps.Copy(sec.Labels, commonLabels(app))
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Annotations[contract.AnnotationHandledRotate] = out.handledRotate
	sec.Annotations[contract.AnnotationHandledRevoke] = out.handledRevoke
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[contract.KeysetDataKey] = data
	r.writes.expect(&sec)
	if exists {
		err = r.Update(ctx, &sec, client.FieldOwner(FieldOwner))
	} else {
		err = r.Create(ctx, &sec, client.FieldOwner(FieldOwner))
	}
	if err != nil {
		// A conflict (or AlreadyExists) means someone wrote the Secret since
		// we read it: nothing of ours was stored, and the next attempt
		// starts again from what they wrote.
		return keysOutcome{}, fmt.Errorf("write keyset secret %s: %w", key.Name, err)
	}
	return out, nil
}

// advance applies the schedule, recording changes and the rotation reason
// into out.
func (r *IdeasAppReconciler) advance(ks keyset.Keyset, p keyset.Policy, now time.Time, out *keysOutcome) (keyset.Keyset, error) {
	reason := keyset.Plan(ks, p, now).Reason
	next, changes, err := keyset.Advance(ks, p, now, r.Keys)
	if err != nil {
		return ks, fmt.Errorf("advance keyset: %w", err)
	}
	out.changes = append(out.changes, changes...)
	for _, c := range changes {
		if c.Kind == keyset.Generated {
			out.rotations = append(out.rotations, reason)
			break
		}
	}
	return next, nil
}

// nextKey is the key that signs after the current one, if scheduled.
func nextKey(ks keyset.Keyset, now time.Time) (keyset.Key, bool) {
	for _, k := range ks.Keys {
		if keyset.State(k, now) == keyset.StateNext {
			return k, true
		}
	}
	return keyset.Key{}, false
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
