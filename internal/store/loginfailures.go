package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// RecordLoginFailure notes one failed login under key at `at`.
func (s *sqlStore) RecordLoginFailure(ctx context.Context, key string, at time.Time) error {
	if _, err := s.exec(ctx, "INSERT INTO login_failures (key, at) VALUES (?, ?)", key, dbTime(at)); err != nil {
		return fmt.Errorf("record login failure: %w", err)
	}
	return nil
}

// LoginFailures counts the failures under key at or after since.
func (s *sqlStore) LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error) {
	var (
		count  int
		oldest sql.NullInt64
	)
	err := s.queryRow(ctx, "SELECT COUNT(*), MIN(at) FROM login_failures WHERE key = ? AND at >= ?",
		key, dbTime(since)).Scan(&count, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count login failures: %w", s.d.mapErr(err))
	}
	if !oldest.Valid {
		return 0, time.Time{}, nil
	}
	return count, goTime(oldest.Int64), nil
}

// ClearLoginFailures forgets every failure under key.
func (s *sqlStore) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, "DELETE FROM login_failures WHERE key = ?", key); err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

// DeleteLoginFailuresBefore deletes the failures of every key recorded
// before `before`.
func (s *sqlStore) DeleteLoginFailuresBefore(ctx context.Context, before time.Time) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM login_failures WHERE at < ?", dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("delete old login failures: %w", err)
	}
	return int(n), nil
}
