package controllers

import (
	"context"
	"strings"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/keyset"
)

// auditMessage is the message of every audit line: a log pipeline keeps
// the lines with audit=true, whatever their event.
const auditMessage = "audit"

// auditKeyChange writes the audit line of one signing-key change of app:
// event key_generated, key_activated, key_retired, key_revoked or
// key_removed, with the key's kid and when the change takes effect. A kid
// is public (it is in the JWKS); no key material is ever logged.
func auditKeyChange(ctx context.Context, app *v1alpha1.IdeasApp, kind keyset.ChangeKind, kid string, at time.Time) {
	logf.FromContext(ctx).Info(auditMessage,
		"audit", true,
		"event", "key_"+strings.ToLower(string(kind)),
		"namespace", app.Namespace,
		"name", app.Name,
		"kid", kid,
		"at", at.UTC().Format(time.RFC3339),
	)
}
