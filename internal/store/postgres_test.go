package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/store/storetest"
)

const postgresEnv = "IDEAPOOL_TEST_POSTGRES_URL"

var (
	pgAdminOnce sync.Once
	pgAdmin     *sql.DB
	pgSchemaSeq atomic.Int64
)

// postgresURL creates an empty schema for t, dropped when t ends, and
// returns a URL whose connections use it. A missing server fails the test:
// the PostgreSQL backend must not go untested by accident.
func postgresURL(t *testing.T) string {
	t.Helper()
	base := requirePostgres(t)
	pgAdminOnce.Do(func() {
		var err error
		pgAdmin, err = sql.Open("pgx", base)
		if err != nil {
			t.Fatalf("open %s: %v", postgresEnv, err)
		}
		pgAdmin.SetMaxOpenConns(4)
	})

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
		t.Fatalf("parse %s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// requirePostgres returns the server URL from the environment, or fails t.
func requirePostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv(postgresEnv)
	if base == "" {
		t.Fatalf("%s is not set: run `make test` or `hack/with-postgres.sh go test ./...`", postgresEnv)
	}
	return base
}

func TestPostgres(t *testing.T) {
	requirePostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, postgresURL(t)) })
}

func TestPostgresOpen(t *testing.T) {
	requirePostgres(t)
	testOpen(t, postgresURL)
}

func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback: nothing listens, the dial fails at once.
	_, err := store.Open(t.Context(), "postgres://nobody:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", nil)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open: error = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open: error %q leaks the password", err)
	}
}

// One process at a time holds the cleanup lock of a database, whichever
// store (replica) asks; releasing it lets the next one in.
func TestPostgresCleanupLock(t *testing.T) {
	requirePostgres(t)
	url := postgresURL(t)
	a, b := mustOpen(t, url), mustOpen(t, url)
	unlock, ok, err := a.LockCleanup(t.Context())
	if err != nil || !ok {
		t.Fatalf("first LockCleanup = %v, %v; want granted", ok, err)
	}
	for name, s := range map[string]store.Store{"another replica": b, "the same replica": a} {
		if _, ok, err := s.LockCleanup(t.Context()); err != nil || ok {
			t.Fatalf("LockCleanup by %s while held = %v, %v; want refused", name, ok, err)
		}
	}
	unlock()
	unlockB, ok, err := b.LockCleanup(t.Context())
	if err != nil || !ok {
		t.Fatalf("LockCleanup after release = %v, %v; want granted", ok, err)
	}
	unlockB()
}
