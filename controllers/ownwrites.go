package controllers

import (
	"crypto/sha256"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/ideapool/ideapool/internal/contract"
)

// ownWrites remembers what the reconciler last wrote into each keyset
// Secret, so that the watch event of that write does not start another
// reconcile: the pass that wrote it has already acted on it. Without it
// every rotation costs two passes (one to rotate, one to see its own write),
// which across hundreds of IdeasApps doubles the API traffic of a rotation.
//
// It compares content, not resourceVersions: the content is known before the
// write, so the event cannot overtake the bookkeeping, and an event whose
// content is what the reconciler wrote cannot ask it for anything new. Any
// other change (a person's edit, another writer, a deletion) reconciles.
// The zero value is ready to use.
type ownWrites struct {
	mu     sync.Mutex
	digest map[types.NamespacedName][sha256.Size]byte
}

// expect records sec's content as about to be written by us.
func (w *ownWrites) expect(sec *corev1.Secret) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.digest == nil {
		w.digest = map[types.NamespacedName][sha256.Size]byte{}
	}
	w.digest[client.ObjectKeyFromObject(sec)] = keysetDigest(sec)
}

// own reports whether obj holds what we last wrote.
func (w *ownWrites) own(obj client.Object) bool {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.digest[client.ObjectKeyFromObject(sec)]
	return ok && d == keysetDigest(sec)
}

// predicate drops the create and update events of our own writes.
func (w *ownWrites) predicate() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !w.own(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return !w.own(e.ObjectNew) },
	}
}

// keysetDigest covers what the reconciler reads back from a keyset Secret:
// the keyset and the handled requests.
func keysetDigest(sec *corev1.Secret) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{sec.Data[contract.KeysetDataKey], []byte(sec.Annotations[contract.AnnotationHandledRotate]),
		[]byte(sec.Annotations[contract.AnnotationHandledRevoke])} {
		h.Write(part)
		h.Write([]byte{0})
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}
