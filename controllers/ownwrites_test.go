package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/ideapool/ideapool/internal/contract"
)

func TestOwnWritesPredicate(t *testing.T) {
	secret := func(name, keys, rotate string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: map[string]string{contract.AnnotationHandledRotate: rotate}},
			Data:       map[string][]byte{contract.KeysetDataKey: []byte(keys)},
		}
	}
	type step struct {
		expect *corev1.Secret // about to be written by the reconciler, if set
		create bool           // a create event of seen, else an update event
		seen   *corev1.Secret
		want   bool // the event starts a reconcile
	}
	tests := map[string][]step{
		"the event of our own update is dropped, and its resyncs": {
			{expect: secret("a", "k1", ""), seen: secret("a", "k1", ""), want: false},
			{seen: secret("a", "k1", ""), want: false},
		},
		"the event of our own create is dropped": {
			{expect: secret("a", "k1", ""), create: true, seen: secret("a", "k1", ""), want: false},
		},
		"other keys reconcile": {
			{expect: secret("a", "k1", ""), seen: secret("a", "k2", ""), want: true},
		},
		"another handled request reconciles": {
			{expect: secret("a", "k1", ""), seen: secret("a", "k1", "now"), want: true},
		},
		"an older write of ours reconciles": {
			{expect: secret("a", "k1", ""), seen: secret("a", "k1", ""), want: false},
			{expect: secret("a", "k2", ""), seen: secret("a", "k1", ""), want: true},
			{seen: secret("a", "k2", ""), want: false},
		},
		"another Secret is not ours": {
			{expect: secret("a", "k1", ""), seen: secret("b", "k1", ""), want: true},
		},
		"nothing expected": {
			{seen: secret("a", "k1", ""), want: true},
			{create: true, seen: secret("a", "k1", ""), want: true},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			var w ownWrites
			p := w.predicate()
			for i, s := range steps {
				if s.expect != nil {
					w.expect(s.expect)
				}
				var got bool
				if s.create {
					got = p.Create(event.CreateEvent{Object: s.seen})
				} else {
					got = p.Update(event.UpdateEvent{ObjectOld: s.seen, ObjectNew: s.seen})
				}
				if got != s.want {
					t.Errorf("step %d: reconcile %v, want %v", i, got, s.want)
				}
			}
			// Deletions always reconcile: the keys must be regenerated.
			if !p.Delete(event.DeleteEvent{Object: secret("a", "k1", "")}) {
				t.Error("a deleted Secret does not reconcile")
			}
		})
	}
}
