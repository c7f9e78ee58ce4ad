package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// PostgresEnv names the server the PostgreSQL tests use
// (hack/with-postgres.sh sets it).
const PostgresEnv = "IDEAPOOL_TEST_POSTGRES_URL"

var (
	pgAdminOnce sync.Once
	pgAdmin     *sql.DB
	pgAdminErr  error
	pgSchemaSeq atomic.Int64
)

// PostgresURL creates an empty schema for t, dropped when t ends, and
// returns a URL whose connections use it. A missing server fails the test:
// the PostgreSQL backend must not go untested by accident.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := RequirePostgres(t)
	pgAdminOnce.Do(func() {
		pgAdmin, pgAdminErr = sql.Open("pgx", base)
		if pgAdminErr == nil {
			pgAdmin.SetMaxOpenConns(4)
		}
	})
	if pgAdminErr != nil {
		t.Fatalf("open %s: %v", PostgresEnv, pgAdminErr)
	}

	schema := fmt.Sprintf("t%d_%d_%s", os.Getpid(), pgSchemaSeq.Add(1),
		strings.ToLower(strings.NewReplacer("/", "_", " ", "_", ":", "_", ",", "_", "-", "_").Replace(t.Name())))
	if len(schema) > 63 {
		schema = schema[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pgAdmin.ExecContext(ctx, `CREATE SCHEMA "`+schema+`"`); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pgAdmin.ExecContext(ctx, `DROP SCHEMA "`+schema+`" CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// RequirePostgres returns the server URL from the environment, or fails t.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set: run `make test` or `hack/with-postgres.sh go test ./...`", PostgresEnv)
	}
	return base
}
