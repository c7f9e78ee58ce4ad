// Package storetest is the conformance suite every store.Store backend must
// pass, so SQLite and PostgreSQL behave alike.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// Run runs the suite. open must return a new, empty, migrated Store that is
// closed when t ends; Run calls it once per subtest, from parallel subtests.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefreshTokens(t, open) })
	t.Run("LoginFailures", func(t *testing.T) { testLoginFailures(t, open) })
	t.Run("APIClients", func(t *testing.T) { testAPIClients(t, open) })
	t.Run("ClientAssertions", func(t *testing.T) { testClientAssertions(t, open) })
	t.Run("Ideas", func(t *testing.T) { testIdeas(t, open) })
	t.Run("DeepPages", func(t *testing.T) { testDeepPages(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, open) })
	t.Run("Context", func(t *testing.T) { testContext(t, open) })
}

// base is the suite's fixed "now". It has sub-microsecond digits on purpose:
// the store keeps microseconds.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// at returns base+d.
func at(d time.Duration) time.Time { return base.Add(d) }

// stored is what t becomes after a round trip: UTC, microseconds.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func storedPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := stored(*t)
	return &s
}

func ptr[T any](v T) *T { return &v }

// fresh opens a new store for one parallel subtest.
func fresh(t *testing.T, open func(t *testing.T) store.Store) (context.Context, store.Store) {
	t.Helper()
	t.Parallel()
	return t.Context(), open(t)
}

// newUser builds a member named name; opts adjust it.
func newUser(name string, opts ...func(*store.User)) store.User {
	u := store.User{
		ID:           "user-" + name,
		Email:        name + "@example.com",
		Username:     name,
		Name:         "User " + name,
		PasswordHash: "phc-of-" + name,
		Role:         store.RoleMember,
		CreatedAt:    base,
	}
	for _, o := range opts {
		o(&u)
	}
	return u
}

func mustCreateUser(t *testing.T, s store.Store, u store.User) store.User {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.ID, err)
	}
	return u
}

// wantErr fails unless err matches want; a nil want means no error.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error: %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// wantEqual compares with reflect.DeepEqual; times must already be in
// stored form on both sides.
func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func storedUser(u store.User) store.User {
	u.CreatedAt = stored(u.CreatedAt)
	u.DisabledAt = storedPtr(u.DisabledAt)
	return u
}

func storedSession(s store.Session) store.Session {
	s.AuthTime, s.CreatedAt, s.ExpiresAt = stored(s.AuthTime), stored(s.CreatedAt), stored(s.ExpiresAt)
	s.AccessExpiresAt = stored(s.AccessExpiresAt)
	s.RevokedAt = storedPtr(s.RevokedAt)
	return s
}

func storedToken(rt store.RefreshToken) store.RefreshToken {
	rt.CreatedAt = stored(rt.CreatedAt)
	rt.RotatedAt = storedPtr(rt.RotatedAt)
	return rt
}

func storedAPIClient(c store.APIClient) store.APIClient {
	c.CreatedAt = stored(c.CreatedAt)
	c.RevokedAt = storedPtr(c.RevokedAt)
	return c
}

// secret32 derives 32 distinct-looking bytes from seed, standing in for
// the random secret a caller would choose.
func secret32(seed string) []byte {
	b := sha256.Sum256([]byte(seed))
	return b[:]
}

func storedIdea(i store.Idea) store.Idea {
	i.CreatedAt = stored(i.CreatedAt)
	return i
}

func testContext(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ping answers", func(t *testing.T) {
		ctx, s := fresh(t, open)
		wantErr(t, "Ping", s.Ping(ctx), nil)
	})
	t.Run("expired deadline is unavailable", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ctx, cancel := context.WithDeadline(ctx, time.Unix(0, 0))
		defer cancel()
		_, err := s.UserByID(ctx, "user-a")
		wantErr(t, "UserByID", err, store.ErrUnavailable)
		wantErr(t, "UserByID", err, context.DeadlineExceeded)
		err = s.CreateUser(ctx, newUser("a"))
		wantErr(t, "CreateUser", err, store.ErrUnavailable)
	})
}
