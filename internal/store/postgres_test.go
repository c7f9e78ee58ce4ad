package store_test

import (
	"errors"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/store/storetest"
)

const postgresEnv = storetest.PostgresEnv

// postgresURL is a new, empty schema for t (storetest.PostgresURL).
func postgresURL(t *testing.T) string { return storetest.PostgresURL(t) }

func requirePostgres(t *testing.T) string { return storetest.RequirePostgres(t) }

func TestPostgres(t *testing.T) {
	requirePostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, postgresURL(t)) })
}

func TestPostgresReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
		url := postgresURL(t)
		return mustOpen(t, url), mustOpen(t, url)
	})
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
