package accounts

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// revocations is this replica's copy of the revocation list: the ids of
// sessions revoked recently enough that access tokens they issued may still
// be unexpired. It is filled at once by this replica's own revocations and,
// every poll, from the database all replicas share, so a logout or a
// disabled account stops access tokens everywhere within seconds, not only
// when they expire.
type revocations struct {
	mu     sync.RWMutex
	sids   map[string]time.Time // sid → revoked at
	synced time.Time            // revocations up to here (less overlap) are known
}

// revokedOverlap re-reads a margin before the last poll: revoked_at comes
// from the revoking replica's clock, which may lag ours a little.
const revokedOverlap = time.Minute

// RevocationStore is what the revocation list reads.
type RevocationStore interface {
	RevokedSessions(ctx context.Context, since time.Time) ([]store.RevokedSession, error)
}

// SessionRevoked reports whether the session sid has been revoked, as far
// as this replica knows (within one poll interval of any replica's write).
func (s *Service) SessionRevoked(sid string) bool {
	s.revoked.mu.RLock()
	defer s.revoked.mu.RUnlock()
	_, ok := s.revoked.sids[sid]
	return ok
}

func (s *Service) noteRevoked(sid string, at time.Time) {
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	s.revoked.sids[sid] = at
}

// SyncRevocations reads revocations since the last sync and forgets those
// older than any access token can live. Call it once at start (before
// serving) and then through RunRevocationSync.
func (s *Service) SyncRevocations(ctx context.Context) error {
	now := s.now()
	horizon := now.Add(-s.Lifetimes().Access - revokedOverlap)
	s.revoked.mu.RLock()
	since := s.revoked.synced.Add(-revokedOverlap)
	s.revoked.mu.RUnlock()
	if since.Before(horizon) {
		since = horizon
	}
	list, err := s.revStore.RevokedSessions(ctx, since.UTC())
	if err != nil {
		return fmt.Errorf("sync revocation list: %w", err)
	}
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	for _, r := range list {
		s.revoked.sids[r.ID] = r.RevokedAt
	}
	for sid, at := range s.revoked.sids {
		if at.Before(horizon) {
			delete(s.revoked.sids, sid)
		}
	}
	s.revoked.synced = now
	return nil
}

// RunRevocationSync polls the revocation list every interval until ctx
// ends. A failed poll is logged and retried; the last list stays in force.
func (s *Service) RunRevocationSync(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "revocation list sync failed; keeping the last one", "error", err)
			}
		}
	}
}
