package store_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// mustOpen opens url and closes it when t ends.
func mustOpen(t *testing.T, url string) store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testOpen checks what the conformance suite cannot, as it needs one
// database opened several times: durability across reopening and
// concurrent migration.
func testOpen(t *testing.T, newURL func(t *testing.T) string) {
	t.Run("write survives reopen", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		ctx := t.Context()
		created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
		s, err := store.Open(ctx, url, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		u := store.User{ID: "u1", Email: "a@example.com", Username: "a", Name: "A", PasswordHash: "x", Role: store.RoleAdmin, CreatedAt: created}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s = mustOpen(t, url)
		got, err := s.UserByID(ctx, "u1")
		if err != nil {
			t.Fatalf("UserByID after reopen: %v", err)
		}
		if got.Email != u.Email || got.Role != u.Role || !got.CreatedAt.Equal(created) {
			t.Fatalf("after reopen got %+v, want %+v", got, u)
		}
	})

	t.Run("concurrent opens migrate once", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				s, err := store.Open(t.Context(), url, nil)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Open %d: %v", i, err)
			}
		}
		if err := store.Migrate(t.Context(), url, nil); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		s := mustOpen(t, url)
		if err := s.CreateUser(t.Context(), store.User{ID: "u1", Email: "a", Username: "a", CreatedAt: time.Unix(0, 0)}); err != nil {
			t.Fatalf("CreateUser after migrations: %v", err)
		}
	})
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	tests := map[string]struct {
		url  string
		want string // in the error
	}{
		"mysql scheme": {url: "mysql://u:secret@h/db", want: `unsupported database URL scheme "mysql": want sqlite:PATH, postgres://USER@HOST/DB or postgresql://USER@HOST/DB`},
		"bare path":    {url: "/var/lib/ideapool.db", want: "want sqlite:PATH"},
		"empty sqlite": {url: "sqlite:", want: "empty path"},
		"memory":       {url: "sqlite::memory:", want: "file path"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := store.Open(t.Context(), tc.url, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q): error = %v, want it to contain %q", tc.url, err, tc.want)
			}
		})
	}
}
