package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// LockCleanup takes the cleanup lock for this process. On PostgreSQL it is
// a session-level advisory lock held by one pooled connection until unlock
// (or until that connection dies, which frees it too); another process
// holding it means ok is false. SQLite runs one write transaction at a
// time, so two cleaners there only take turns: the lock is always granted.
func (s *sqlStore) LockCleanup(ctx context.Context) (func(), bool, error) {
	if s.d.tryCleanupLock == nil {
		return func() {}, true, nil
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock cleanup: %w", s.d.mapErr(err))
	}
	ok, err := s.d.tryCleanupLock(ctx, conn)
	if err != nil || !ok {
		_ = conn.Close()
		if err != nil {
			return nil, false, fmt.Errorf("lock cleanup: %w", s.d.mapErr(err))
		}
		return nil, false, nil
	}
	unlock := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.d.unlockCleanup(ctx, conn); err != nil {
			// The lock must not stay with a pooled connection: dropping
			// the connection frees it.
			s.log.Warn("could not release the cleanup lock; closing its connection", "error", err)
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		if err := conn.Close(); err != nil && !errors.Is(err, driver.ErrBadConn) {
			s.log.Warn("could not close the cleanup lock's connection", "error", err)
		}
	}
	return unlock, true, nil
}
