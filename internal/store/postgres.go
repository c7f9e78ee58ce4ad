package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

const (
	// postgresMaxConns bounds the pool; callers beyond it wait, within
	// their context's deadline.
	postgresMaxConns = 16
	// postgresConnectTimeout applies when the URL sets no connect_timeout.
	postgresConnectTimeout = 5 * time.Second
	// migrationLockKey is the pg_advisory_xact_lock key that serializes
	// migrations of one database: "ideapool" in ASCII.
	migrationLockKey int64 = 0x69646561706f6f6c
	// cleanupLockKey is the pg_try_advisory_lock key held by the one
	// process that deletes ended records: "ideapoo" and "C".
	cleanupLockKey int64 = 0x69646561706f6f43
)

var postgresDialect = &dialect{
	name:     "postgres",
	numbered: true,
	createMigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`,
	lockMigrations: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey)
		return err
	},
	forShare:   " FOR SHARE",
	skipLocked: " FOR UPDATE SKIP LOCKED",
	rowAddress: "ctid",
	// = ANY(ARRAY(...)) is what PostgreSQL plans as a TID scan.
	rowIn: func(sub string) string { return "ctid = ANY(ARRAY(" + sub + "))" },
	tryCleanupLock: func(ctx context.Context, conn *sql.Conn) (bool, error) {
		var ok bool
		err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", cleanupLockKey).Scan(&ok)
		return ok, err
	},
	unlockCleanup: func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", cleanupLockKey)
		return err
	},
	classify: classifyPostgres,
}

// constraintFields names the field behind each unique constraint callers
// may hit.
var constraintFields = map[string]string{
	"users_email_key":    "email",
	"users_username_key": "username",
	"users_pkey":         "id",
	"api_clients_pkey":   "id",
}

// openPostgres connects through pgx's database/sql driver, so both backends
// share their queries.
func openPostgres(ctx context.Context, url string, log *slog.Logger) (*sqlStore, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in parse errors.
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = postgresConnectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres: %w", postgresDialect.mapErr(err))
	}
	log.Debug("opened database", "backend", "postgres", "host", cfg.Host, "database", cfg.Database)
	return &sqlStore{w: db, r: db, d: postgresDialect, log: log}, nil
}

// classifyPostgres maps SQLSTATE codes and connection failures.
func classifyPostgres(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return &ConflictError{Field: postgresConflictField(pe)}
		case pe.Code == "23503": // foreign_key_violation
			return errForeignKey
		case strings.HasPrefix(pe.Code, "08"), // connection_exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient_resources
			strings.HasPrefix(pe.Code, "40"),                           // serialization_failure, deadlock: retry later
			pe.Code == "57014",                                         // query_canceled (statement_timeout)
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, cannot_connect_now
			return unavailable(err)
		}
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return unavailable(err)
	}
	return nil
}

// postgresConflictField names the field of a unique violation, from the
// constraint name or else from the detail "Key (col)=(...) already exists."
func postgresConflictField(pe *pgconn.PgError) string {
	if f, ok := constraintFields[pe.ConstraintName]; ok {
		return f
	}
	if _, rest, ok := strings.Cut(pe.Detail, "Key ("); ok {
		col, _, _ := strings.Cut(rest, ")")
		col, _, _ = strings.Cut(col, ",")
		return col
	}
	return ""
}
