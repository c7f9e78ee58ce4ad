package accounts

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// revocations is this replica's copy of the revocation list: the ids of
// revoked sessions whose access tokens may still be unexpired, each with
// the time it may be forgotten. It is filled at once by this replica's own
// revocations and, every poll, from the database all replicas share, so a
// logout or a disabled account stops access tokens everywhere within
// seconds, not only when they expire.
type revocations struct {
	mu     sync.RWMutex
	sids   map[string]time.Time // sid → keep until
	synced time.Time            // revocations up to here (less overlap) are known
}

// revokedOverlap re-reads a margin before the last poll: revoked_at comes
// from the revoking replica's clock, which may lag ours a little. Entries
// are also kept this much past the last access token's expiry, more than
// the verification leeway.
const revokedOverlap = time.Minute

// RevocationStore is what the revocation list reads.
type RevocationStore interface {
	RevokedSessions(ctx context.Context, since, liveAfter time.Time) ([]store.RevokedSession, error)
}

// SessionRevoked reports whether the session sid has been revoked, as far
// as this replica knows (within one poll interval of any replica's write).
func (s *Service) SessionRevoked(sid string) bool {
	s.revoked.mu.RLock()
	defer s.revoked.mu.RUnlock()
	_, ok := s.revoked.sids[sid]
	return ok
}

// keepRevoked is until when a revocation must be remembered: until every
// access token of the session has expired. The session records the latest
// expiry it handed out, whatever the lifetime was then; a token issued
// under today's lifetime just before the revocation is covered too.
func keepRevoked(revokedAt, accessExpiresAt time.Time, access time.Duration) time.Time {
	return later(accessExpiresAt, revokedAt.Add(access)).Add(revokedOverlap)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *Service) noteRevoked(sess store.Session, at time.Time) {
	until := keepRevoked(at, sess.AccessExpiresAt, s.Lifetimes().Access)
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	s.revoked.sids[sess.ID] = later(s.revoked.sids[sess.ID], until)
}

// syncAfterRevoking brings this replica's list up to date at once after
// it revoked sessions in bulk (a disable, a client revocation): the other
// replicas see them at their next poll.
func (s *Service) syncAfterRevoking(ctx context.Context, n int) {
	if n == 0 {
		return
	}
	if err := s.SyncRevocations(context.WithoutCancel(ctx)); err != nil {
		s.log.WarnContext(ctx, "revocation list sync failed; the next poll catches up", "error", err)
	}
}

// SyncRevocations reads revocations since the last sync (all that still
// matter, the first time) and forgets those whose access tokens have all
// expired. Call it once at start (before serving) and then through
// RunRevocationSync.
func (s *Service) SyncRevocations(ctx context.Context) error {
	now := s.now()
	access := s.Lifetimes().Access
	s.revoked.mu.RLock()
	since := s.revoked.synced.Add(-revokedOverlap)
	if s.revoked.synced.IsZero() {
		since = time.Unix(0, 0)
	}
	s.revoked.mu.RUnlock()
	list, err := s.revStore.RevokedSessions(ctx, since.UTC(), now.Add(-access-revokedOverlap).UTC())
	if err != nil {
		return fmt.Errorf("sync revocation list: %w", err)
	}
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	for _, r := range list {
		s.revoked.sids[r.ID] = later(s.revoked.sids[r.ID], keepRevoked(r.RevokedAt, r.AccessExpiresAt, access))
	}
	for sid, until := range s.revoked.sids {
		if until.Before(now) {
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
