package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RecordLoginAttempt counts attempt under key at `at` as a failure until
// ForgetLoginAttempt takes it back.
func (s *sqlStore) RecordLoginAttempt(ctx context.Context, key, attempt string, at time.Time) error {
	if _, err := s.exec(ctx, "INSERT INTO login_failures (key, at, attempt) VALUES (?, ?, ?)", key, dbTime(at), attempt); err != nil {
		return fmt.Errorf("record login attempt: %w", err)
	}
	return nil
}

// ForgetLoginAttempt takes back what RecordLoginAttempt counted.
func (s *sqlStore) ForgetLoginAttempt(ctx context.Context, key, attempt string) error {
	if attempt == "" {
		return fmt.Errorf("forget login attempt: no attempt named")
	}
	if _, err := s.exec(ctx, "DELETE FROM login_failures WHERE key = ? AND attempt = ?", key, attempt); err != nil {
		return fmt.Errorf("forget login attempt: %w", err)
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

// DeleteLoginFailuresBefore deletes at most limit failures of any key
// recorded before `before`. The table has no key of its own: rows are
// picked by the backend's row address (rowid, ctid).
func (s *sqlStore) DeleteLoginFailuresBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("delete old login failures: limit must be positive")
	}
	n, err := s.exec(ctx, "DELETE FROM login_failures WHERE "+
		s.d.rowIn("SELECT "+s.d.rowAddress+" FROM login_failures WHERE at < ? LIMIT ?"), dbTime(before), limit)
	if err != nil {
		return 0, fmt.Errorf("delete old login failures: %w", err)
	}
	return int(n), nil
}
