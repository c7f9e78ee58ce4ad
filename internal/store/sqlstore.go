package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// sqlStore implements Store over database/sql for both backends.
type sqlStore struct {
	w   *sql.DB // writes and transactions
	r   *sql.DB // reads; the same pool as w on PostgreSQL
	d   *dialect
	log *slog.Logger
	// Prepared statements of w and r (created on first use).
	wStmts, rStmts *stmts
	stmtsOnce      sync.Once
	// listing remembers where users' deep pages of ideas begin.
	listing listingCache
}

var _ Store = (*sqlStore)(nil)

// Ping reports whether the database answers.
func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", s.d.mapErr(err))
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("ping: %w", s.d.mapErr(err))
		}
	}
	return nil
}

// Close closes every connection.
func (s *sqlStore) Close() error {
	s.prepared()
	err := errors.Join(s.wStmts.close(), s.rStmts.close(), s.w.Close())
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// prepared returns the statement caches, made once.
func (s *sqlStore) prepared() (w, r *stmts) {
	s.stmtsOnce.Do(func() {
		s.wStmts, s.rStmts = newStmts(s.w), newStmts(s.r)
		if s.r == s.w {
			s.rStmts = s.wStmts
		}
	})
	return s.wStmts, s.rStmts
}

// exec runs a write outside a transaction and returns the rows it affected.
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (int64, error) {
	w, _ := s.prepared()
	st, err := w.get(ctx, s.d.bind(query)) //nolint:sqlclosecheck // cached; closed by Close
	if err != nil {
		return 0, s.d.mapErr(err)
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, s.d.mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.d.mapErr(err)
	}
	return n, nil
}

// queryRow runs a read.
func (s *sqlStore) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	_, r := s.prepared()
	st, err := r.get(ctx, s.d.bind(query)) //nolint:sqlclosecheck // cached; closed by Close
	if err != nil {
		// The same call unprepared carries the error in the Row.
		return s.r.QueryRowContext(ctx, s.d.bind(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read that returns rows.
func (s *sqlStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	_, r := s.prepared()
	st, err := r.get(ctx, s.d.bind(query)) //nolint:sqlclosecheck // cached; closed by Close
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// inTx runs fn in a write transaction and commits if fn succeeds. Errors
// come back mapped.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.d.mapErr(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return s.d.mapErr(err)
	}
	return s.d.mapErr(tx.Commit())
}

// Times are stored as Unix microseconds, so they come back in UTC with
// microsecond precision whatever the backend.

func dbTime(t time.Time) int64 { return t.UnixMicro() }

func goTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

func dbNullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func goNullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := goTime(v.Int64)
	return &t
}

// dbBytes keeps a nil slice NULL in both drivers.
func dbBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// dbNonEmptyBytes stores an empty slice as NULL, for columns where NULL
// means "not set".
func dbNonEmptyBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// dbNullString stores "" as NULL.
func dbNullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }
