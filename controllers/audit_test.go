package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// TestAuditLines: every key change of the operator's writes one structured
// audit line (audit=true, event, namespace, name, kid), the switches the
// schedule makes on its own included, and no line carries key material.
func TestAuditLines(t *testing.T) {
	ns := newNamespace(t)
	app := createApp(t, newIdeasApp(ns, "aud", withRotation(2*time.Hour, time.Hour), withTokenTTLs(10*time.Minute, 20*time.Minute)))
	r := newTestReconciler(k8sClient, clocktesting.NewFakeClock(t0))

	var (
		mu  sync.Mutex
		raw []string
	)
	ctx := logf.IntoContext(context.Background(), funcr.NewJSON(func(obj string) {
		mu.Lock()
		defer mu.Unlock()
		raw = append(raw, obj)
	}, funcr.Options{}).WithValues("namespace", ns, "name", app.Name)) // as controller-runtime's reconcile logger
	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Bootstrap, two scheduled rotations (through the removal of the
	// first key), then a revocation.
	for end := t0.Add(5 * time.Hour); r.clock.Now().Before(end); {
		r.clock.Step(reconcile().RequeueAfter)
	}
	revoke := storedKeyset(t, app)
	active, _ := keyset.Signing(revoke, r.clock.Now())
	annotate(t, app, contract.AnnotationRevokeKey, active.ID)
	reconcile()

	events := map[string][]string{} // event → kids
	for _, line := range raw {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if m["audit"] != true {
			continue
		}
		if n := strings.Count(line, `"namespace":`) + strings.Count(line, `"name":`); n != 2 {
			t.Errorf("audit line names its IdeasApp %d times, want once: %s", n/2, line)
		}
		ev, _ := m["event"].(string)
		kid, _ := m["kid"].(string)
		if m["msg"] != auditMessage || m["namespace"] != ns || m["name"] != "aud" || kid == "" || m["at"] == nil ||
			m["actor_id"] != auditActor || m["subject_id"] != kid {
			t.Errorf("audit line lacks a field: %s", line)
		}
		events[ev] = append(events[ev], kid)
	}
	for _, ev := range []string{"key_generated", "key_activated", "key_retired", "key_removed", "key_revoked"} {
		if len(events[ev]) == 0 {
			t.Errorf("no %s audit line; audit events: %v", ev, events)
		}
	}
	if len(events["key_revoked"]) != 1 || events["key_revoked"][0] != active.ID {
		t.Errorf("key_revoked lines %v, want one for %s", events["key_revoked"], active.ID)
	}

	// Never key material: no private scalar ("d" of the JWK) of any key
	// this test saw.
	all := strings.Join(raw, "\n")
	for _, k := range append(revoke.Keys, storedKeyset(t, app).Keys...) {
		var jwk struct {
			D string `json:"d"`
		}
		if err := json.Unmarshal(k.Private, &jwk); err != nil || jwk.D == "" {
			t.Fatalf("key %s: no private JWK to look for (%v)", k.ID, err)
		}
		if strings.Contains(all, jwk.D) {
			t.Fatalf("the logs hold the private key of %s", k.ID)
		}
	}
}
