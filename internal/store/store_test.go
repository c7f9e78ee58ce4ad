package store_test

import (
	"reflect"
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
// database opened several times: durability across reopening, concurrent
// migration and upgrading an older schema.
func testOpen(t *testing.T, newURL func(t *testing.T) string) {
	t.Run("upgrade from version 1", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		ctx := t.Context()
		created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
		us := created.UnixMicro()

		old, err := store.OpenLegacy(ctx, url, 1)
		if err != nil {
			t.Fatalf("OpenLegacy: %v", err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO users (id, email, username, name, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
				[]any{"u1", "a@example.com", "a", "A", "x", 1, us}},
			{"INSERT INTO sessions (id, user_id, auth_time, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
				[]any{"s-old", "u1", us, us, us + time.Hour.Microseconds()}},
			{"INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)",
				[]any{[]byte("rt-old"), "s-old", us}},
			{"INSERT INTO login_failures (key, at) VALUES (?, ?)", []any{"ip:192.0.2.1", us}},
		} {
			if err := old.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatalf("seed version 1: %s: %v", q.sql, err)
			}
		}
		if err := old.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s := mustOpen(t, url)
		_, sess, err := s.RefreshTokenByHash(ctx, []byte("rt-old"))
		if err != nil {
			t.Fatalf("RefreshTokenByHash after upgrade: %v", err)
		}
		// Its access tokens are bounded by the session's end plus its length.
		want := store.Session{ID: "s-old", UserID: "u1", AuthTime: created, CreatedAt: created, ExpiresAt: created.Add(time.Hour),
			AccessExpiresAt: created.Add(2 * time.Hour)}
		if !reflect.DeepEqual(sess, want) {
			t.Fatalf("old session after upgrade:\n got  %+v\n want %+v (no secret, no client)", sess, want)
		}
		if n, err := s.DeleteLoginFailuresBefore(ctx, created.Add(time.Second), 10); err != nil || n != 1 {
			t.Fatalf("DeleteLoginFailuresBefore after upgrade = %d, %v; want 1, nil", n, err)
		}

		// The new tables and columns work.
		c := store.APIClient{ID: "c1", UserID: "u1", Name: "cli", Secret: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: created}
		if err := s.CreateAPIClient(ctx, c); err != nil {
			t.Fatalf("CreateAPIClient after upgrade: %v", err)
		}
		next := store.Session{ID: "s-new", UserID: "u1", Secret: c.Secret, ClientID: c.ID, AuthTime: created, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
		if err := s.CreateSession(ctx, next, store.RefreshToken{Hash: []byte("rt-new"), CreatedAt: created}, store.RoleMember); err != nil {
			t.Fatalf("CreateSession after upgrade: %v", err)
		}
		if _, got, err := s.RefreshTokenByHash(ctx, []byte("rt-new")); err != nil || !reflect.DeepEqual(got, next) {
			t.Fatalf("new session after upgrade = %+v, %v; want %+v", got, err, next)
		}
		if err := s.UseClientAssertion(ctx, c.ID, "j1", created.Add(time.Minute), created); err != nil {
			t.Fatalf("UseClientAssertion after upgrade: %v", err)
		}
		if err := store.Migrate(ctx, url, nil); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
	})

	t.Run("upgrade from version 4 ends sessions of revoked clients and disabled users", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		ctx := t.Context()
		us := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC).UnixMicro()
		revokedAt := us + time.Minute.Microseconds()
		old, err := store.OpenLegacy(ctx, url, 4)
		if err != nil {
			t.Fatalf("OpenLegacy: %v", err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO users (id, email, username, name, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
				[]any{"u1", "a@example.com", "a", "A", "x", 1, us}},
			{"INSERT INTO users (id, email, username, name, password_hash, role, created_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
				[]any{"u2", "b@example.com", "b", "B", "x", 1, us, revokedAt}},
			{"INSERT INTO api_clients (id, user_id, name, secret, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
				[]any{"c1", "u1", "cli", []byte("0123456789abcdef0123456789abcdef"), us, revokedAt}},
			{"INSERT INTO sessions (id, user_id, auth_time, created_at, expires_at, secret, client_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
				[]any{"by-revoked-client", "u1", us, us, us + time.Hour.Microseconds(), []byte("s"), "c1"}},
			{"INSERT INTO sessions (id, user_id, auth_time, created_at, expires_at, secret) VALUES (?, ?, ?, ?, ?, ?)",
				[]any{"of-disabled-user", "u2", us, us, us + time.Hour.Microseconds(), []byte("s")}},
			{"INSERT INTO sessions (id, user_id, auth_time, created_at, expires_at, secret) VALUES (?, ?, ?, ?, ?, ?)",
				[]any{"live", "u1", us, us, us + time.Hour.Microseconds(), []byte("s")}},
		} {
			if err := old.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatalf("seed version 4: %s: %v", q.sql, err)
			}
		}
		for _, id := range []string{"by-revoked-client", "of-disabled-user", "live"} {
			if err := old.Exec(ctx, "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)", []byte("rt-"+id), id, us); err != nil {
				t.Fatalf("seed version 4: %v", err)
			}
		}
		if err := old.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s := mustOpen(t, url)
		for id, wantRevoked := range map[string]bool{"by-revoked-client": true, "of-disabled-user": true, "live": false} {
			_, sess, err := s.RefreshTokenByHash(ctx, []byte("rt-"+id))
			if err != nil {
				t.Fatalf("RefreshTokenByHash %s: %v", id, err)
			}
			if got := sess.RevokedAt != nil; got != wantRevoked {
				t.Errorf("session %s revoked %v after upgrade, want %v", id, got, wantRevoked)
			}
			if wantRevoked && sess.RevokedAt.UnixMicro() != revokedAt {
				t.Errorf("session %s revoked at %v, want the revocation's time", id, sess.RevokedAt)
			}
		}
	})

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
