package accounts

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// CleanupStore is what the cleanup deletes through.
type CleanupStore interface {
	LockCleanup(ctx context.Context) (unlock func(), ok bool, err error)
	DeleteEndedSessions(ctx context.Context, now, accessBefore time.Time, limit int) (sessions, refreshTokens int, err error)
	DeleteLoginFailuresBefore(ctx context.Context, before time.Time, limit int) (int, error)
	DeleteClientAssertions(ctx context.Context, now time.Time, limit int) (int, error)
}

// The tables the cleanup deletes from, as ideapool_cleanup_deleted_total
// labels them.
const (
	TableSessions         = "sessions"
	TableRefreshTokens    = "refresh_tokens"
	TableLoginFailures    = "login_failures"
	TableClientAssertions = "client_assertions"
)

// CleanupResult is what one cleanup deleted, by table. Skipped is true
// when another process was cleaning up.
type CleanupResult struct {
	Deleted map[string]int
	Skipped bool
}

// Cleanup deletes the records no rule needs any more, in transactions of
// at most CleanupBatch rows with a pause after each full one: sessions that
// ended (absolute expiry passed, or revoked) once every access token they
// issued has expired (until then the revocation list needs them), their
// refresh tokens first; login failures older than the throttle window;
// client assertion ids remembered long enough (assertionRememberedUntil).
// One process at a time does it.
func (s *Service) Cleanup(ctx context.Context) (CleanupResult, error) {
	unlock, ok, err := s.store.LockCleanup(ctx)
	if err != nil {
		return CleanupResult{}, fmt.Errorf("cleanup: %w", err)
	}
	if !ok {
		return CleanupResult{Skipped: true}, nil
	}
	defer unlock()
	start := s.now()
	now := start.UTC()
	res := CleanupResult{Deleted: map[string]int{}}
	steps := []struct {
		tables []string
		delete func(limit int) ([]int, error)
	}{
		{[]string{TableSessions, TableRefreshTokens}, func(limit int) ([]int, error) {
			n, tokens, err := s.store.DeleteEndedSessions(ctx, now, now.Add(-revokedOverlap), limit)
			return []int{n, tokens}, err
		}},
		{[]string{TableLoginFailures}, func(limit int) ([]int, error) {
			n, err := s.store.DeleteLoginFailuresBefore(ctx, now.Add(-s.throttle.Window), limit)
			return []int{n}, err
		}},
		{[]string{TableClientAssertions}, func(limit int) ([]int, error) {
			n, err := s.store.DeleteClientAssertions(ctx, now, limit)
			return []int{n}, err
		}},
	}
	for _, st := range steps {
		for {
			began := s.now()
			ns, err := st.delete(s.cleanBatch)
			rows := 0
			for i, table := range st.tables {
				res.Deleted[table] += ns[i]
				rows += ns[i]
				s.obs.CleanupDeleted(table, ns[i])
			}
			if err != nil {
				return res, fmt.Errorf("cleanup %s: %w", st.tables[0], err)
			}
			if rows < s.cleanBatch {
				break
			}
			if err := s.pauseCleanup(ctx, s.now().Sub(began)); err != nil {
				return res, fmt.Errorf("cleanup %s: %w", st.tables[0], err)
			}
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "cleanup done",
		slog.Int("sessions", res.Deleted[TableSessions]), slog.Int("refresh_tokens", res.Deleted[TableRefreshTokens]),
		slog.Int("login_failures", res.Deleted[TableLoginFailures]), slog.Int("client_assertions", res.Deleted[TableClientAssertions]),
		slog.Duration("duration", s.now().Sub(start)))
	return res, nil
}

// pauseCleanup waits between two batches, so that the writers waiting for
// the database get it: as long as the last batch took (at most a second),
// and at least cleanPause.
func (s *Service) pauseCleanup(ctx context.Context, took time.Duration) error {
	t := time.NewTimer(min(max(took, s.cleanPause), time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RunCleanup cleans up at once and then every interval until ctx ends. A
// failed cleanup is logged and tried again at the next interval.
func (s *Service) RunCleanup(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Cleanup(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "cleanup failed; trying again at the next interval", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
