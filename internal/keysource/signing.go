package keysource

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ideapool/ideapool/internal/keyset"
)

// AuditActor is the actor_id of the server's key audit lines: the server
// acting on its keyset's schedule (the key is the subject_id).
const AuditActor = "serve"

// SigningWatch writes an audit line (event key_activated) when the key that
// signs in this process changes, from either source: at a key's scheduled
// ActiveAt, which happens on the clock alone without any write, or when a
// new keyset makes another key sign (a revocation). The key signing when
// the watch starts is not reported: the server's start line names it.
type SigningWatch struct {
	active func() string
	log    *slog.Logger

	mu  sync.Mutex
	kid string
}

// NewSigningWatch notes the key active() names now; active returns the kid
// of the key that signs now, or "" when none does. log may be nil.
func NewSigningWatch(active func() string, log *slog.Logger) *SigningWatch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SigningWatch{active: active, log: log, kid: active()}
}

// Check looks at the signing key once and reports a change. Call it after
// every keyset change; Run calls it on a schedule.
func (w *SigningWatch) Check() {
	w.mu.Lock() // around active() too: two Checks must not report in reverse order
	kid := w.active()
	prev := w.kid
	if kid != "" {
		w.kid = kid
	}
	w.mu.Unlock()
	if kid == "" || kid == prev {
		return
	}
	w.log.Info("signing key changed", "audit", true, "event", keyset.Activated.AuditEvent(),
		"actor_id", AuditActor, "subject_id", kid, "kid", kid, "previous_kid", prev)
}

// Run calls Check every interval until ctx ends.
func (w *SigningWatch) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}
