package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// dialect holds what differs between the backends. Queries are written once
// with '?' placeholders and rewritten by bind.
type dialect struct {
	// name is also the directory of the dialect's migrations.
	name string
	// numbered placeholders ($1, $2, ...) instead of '?'.
	numbered bool
	// createMigrationsTable creates schema_migrations if it is missing.
	createMigrationsTable string
	// lockMigrations, if set, serializes migrating processes inside tx.
	lockMigrations func(ctx context.Context, tx *sql.Tx) error
	// forShare ends a SELECT of a row that must not change until the
	// transaction ends (a user or client a new session depends on). Empty
	// where writers are serialized anyway.
	forShare string
	// skipLocked ends a SELECT of rows the transaction will delete: it
	// locks them first (so rows are always locked session before token,
	// as a rotation does) and skips those another transaction holds.
	skipLocked string
	// rowAddress names a row of a table without a key (rowid, ctid), and
	// rowIn(sub) is the condition "the row's address is one of sub's".
	rowAddress string
	rowIn      func(sub string) string
	// tryCleanupLock, if set, takes the lock that lets one process at a
	// time delete ended records, held by conn until unlockCleanup.
	tryCleanupLock func(ctx context.Context, conn *sql.Conn) (bool, error)
	unlockCleanup  func(ctx context.Context, conn *sql.Conn) error
	// classify maps a driver error to the package's sentinels, or returns
	// nil when it does not recognize it.
	classify func(err error) error
}

// bind rewrites '?' placeholders for the dialect. Queries hold no '?'
// inside literals.
func (d *dialect) bind(query string) string {
	if !d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mapErr turns err into ErrNotFound, a *ConflictError or an
// ErrUnavailable-wrapped error where it can, and returns it unchanged
// otherwise.
func (d *dialect) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrUnavailable):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone):
		return unavailable(err)
	}
	if mapped := d.classify(err); mapped != nil {
		return mapped
	}
	return err
}

// unavailable marks err as ErrUnavailable while keeping it inspectable.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// errForeignKey is what a missing referenced record (a user, a session)
// becomes: the caller named something that does not exist.
var errForeignKey = fmt.Errorf("referenced record: %w", ErrNotFound)
