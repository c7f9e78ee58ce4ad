package controllers

import (
	"context"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ideapool/ideapool/internal/keyset"
)

// auditMessage is the message of the operator's key audit lines, as the
// server's own (internal/keysource) says it; a log pipeline keeps the lines
// with audit=true, whatever their message.
const auditMessage = "signing key changed"

// auditActor is the actor_id of the operator's key audit lines (the key is
// the subject_id). Who set a rotate or revoke annotation is in the API
// server's own audit log.
const auditActor = "operator"

// auditKeyChange writes the audit line of one signing-key change of app:
// event key_generated, key_activated, key_retired, key_revoked or
// key_removed (keyset.ChangeKind.AuditEvent, the server's names), with the
// key's kid and when the change takes effect; the IdeasApp's namespace and
// name come with the reconcile's logger (controller-runtime adds them). A kid
// is public (it is in the JWKS); no key material is ever logged.
func auditKeyChange(ctx context.Context, kind keyset.ChangeKind, kid string, at time.Time) {
	logf.FromContext(ctx).Info(auditMessage,
		"audit", true,
		"event", kind.AuditEvent(),
		"actor_id", auditActor,
		"subject_id", kid,
		"kid", kid,
		"at", at.UTC().Format(time.RFC3339),
	)
}
