package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// BenchmarkStore measures each operation on a hot path of the API against
// both backends: SQLite on a temporary file and PostgreSQL from
// IDEAPOOL_TEST_POSTGRES_URL (`hack/with-postgres.sh go test -bench Store
// -run '^$' ./internal/store`). The PostgreSQL half fails when the variable
// is missing, but only when it is selected to run.
func BenchmarkStore(b *testing.B) {
	backends := map[string]func(b *testing.B) string{
		"sqlite":   benchSQLiteURL,
		"postgres": benchPostgresURL,
	}
	for _, name := range []string{"sqlite", "postgres"} {
		newURL := backends[name]
		b.Run(name, func(b *testing.B) {
			for _, op := range storeBenchOps {
				b.Run(op.name, func(b *testing.B) {
					s := benchOpen(b, newURL(b))
					op.run(b, s)
				})
			}
		})
	}
}

// benchBase is the creation time of every fixture; sessions expire long
// after it.
var benchBase = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var storeBenchOps = []struct {
	name string
	run  func(b *testing.B, s store.Store)
}{
	{"CreateIdea", func(b *testing.B, s store.Store) {
		u := benchUser(b, s, "writer")
		var n int
		for b.Loop() {
			n++
			benchCreateIdea(b, s, u.ID, "i"+strconv.Itoa(n), n)
		}
	}},
	{"CreateIdeaParallel", func(b *testing.B, s store.Store) {
		u := benchUser(b, s, "writer")
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(n.Add(1))
				benchCreateIdea(b, s, u.ID, "i"+strconv.Itoa(i), i)
			}
		})
	}},
	// A page of 10 out of a user's 50 ideas: GET /ideas?page=1.
	{"ListIdeas", func(b *testing.B, s store.Store) {
		u := benchUserWithIdeas(b, s, 50)
		ctx := context.Background()
		for b.Loop() {
			if list, err := s.ListIdeas(ctx, u.ID, 10, 0); err != nil || len(list) != 10 {
				b.Fatalf("ListIdeas = %d ideas, %v", len(list), err)
			}
		}
	}},
	{"ListIdeasParallel", func(b *testing.B, s store.Store) {
		u := benchUserWithIdeas(b, s, 50)
		ctx := context.Background()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if list, err := s.ListIdeas(ctx, u.ID, 10, 0); err != nil || len(list) != 10 {
					b.Errorf("ListIdeas = %d ideas, %v", len(list), err)
					return
				}
			}
		})
	}},
	// One of 100 live sessions' tokens: POST /access-tokens/refresh.
	{"RefreshTokenByHash", func(b *testing.B, s store.Store) {
		u := benchUser(b, s, "holder")
		hashes := make([][]byte, 100)
		for i := range hashes {
			hashes[i] = benchSession(b, s, u.ID, "s"+strconv.Itoa(i))
		}
		ctx := context.Background()
		var n int
		for b.Loop() {
			n++
			if _, _, err := s.RefreshTokenByHash(ctx, hashes[n%len(hashes)]); err != nil {
				b.Fatal(err)
			}
		}
	}},
	// One of 100 accounts, by username: POST /access-tokens.
	{"UserByLogin", func(b *testing.B, s store.Store) {
		logins := make([]string, 100)
		for i := range logins {
			logins[i] = benchUser(b, s, "u"+strconv.Itoa(i)).Username
		}
		ctx := context.Background()
		var n int
		for b.Loop() {
			n++
			if _, err := s.UserByLogin(ctx, logins[n%len(logins)]); err != nil {
				b.Fatal(err)
			}
		}
	}},
	// A session and its first refresh token, atomically: every login.
	{"CreateSession", func(b *testing.B, s store.Store) {
		u := benchUser(b, s, "holder")
		var n int
		for b.Loop() {
			n++
			benchSession(b, s, u.ID, "s"+strconv.Itoa(n))
		}
	}},
	{"RecordLoginAttempt", func(b *testing.B, s store.Store) {
		ctx := context.Background()
		var n int
		for b.Loop() {
			n++
			// Ten keys, as a guessing client spreads over a few accounts.
			if err := s.RecordLoginAttempt(ctx, "account:a"+strconv.Itoa(n%10)+"@example.com", "", benchBase.Add(time.Duration(n)*time.Microsecond)); err != nil {
				b.Fatal(err)
			}
		}
	}},
	// The throttle check of every login: a key with 9 failures in the window
	// among 1,000 rows of other keys.
	{"LoginFailures", func(b *testing.B, s store.Store) {
		ctx := context.Background()
		for i := range 1000 {
			key := "addr:192.0.2." + strconv.Itoa(i%100)
			if i < 9 {
				key = "account:victim@example.com"
			}
			if err := s.RecordLoginAttempt(ctx, key, "", benchBase.Add(time.Duration(i)*time.Second)); err != nil {
				b.Fatal(err)
			}
		}
		since := benchBase.Add(-15 * time.Minute)
		for b.Loop() {
			if n, _, err := s.LoginFailures(ctx, "account:victim@example.com", since); err != nil || n != 9 {
				b.Fatalf("LoginFailures = %d, %v; want 9", n, err)
			}
		}
	}},
}

func benchUser(b *testing.B, s store.Store, name string) store.User {
	b.Helper()
	u := store.User{ID: "user-" + name, Email: name + "@example.com", Username: name, Name: "User " + name,
		PasswordHash: "phc-of-" + name, Role: store.RoleMember, CreatedAt: benchBase}
	if err := s.CreateUser(context.Background(), u); err != nil {
		b.Fatalf("CreateUser: %v", err)
	}
	return u
}

func benchUserWithIdeas(b *testing.B, s store.Store, n int) store.User {
	b.Helper()
	u := benchUser(b, s, "reader")
	for i := range n {
		benchCreateIdea(b, s, u.ID, "r"+strconv.Itoa(i), i)
	}
	return u
}

func benchCreateIdea(b *testing.B, s store.Store, userID, id string, n int) {
	i := store.Idea{ID: id, UserID: userID, Content: "idea " + id,
		Impact: 1 + n%10, Ease: 1 + n/10%10, Confidence: 1 + n/100%10,
		CreatedAt: benchBase.Add(time.Duration(n) * time.Microsecond)}
	if err := s.CreateIdea(context.Background(), i); err != nil {
		b.Errorf("CreateIdea: %v", err)
	}
}

// benchSession creates a session of userID with its refresh token and
// returns the token's hash.
func benchSession(b *testing.B, s store.Store, userID, id string) []byte {
	b.Helper()
	secret := sha256.Sum256([]byte("secret " + id))
	hash := sha256.Sum256([]byte("rt " + id))
	sess := store.Session{ID: id, UserID: userID, AuthTime: benchBase, Secret: secret[:],
		CreatedAt: benchBase, ExpiresAt: benchBase.Add(720 * time.Hour)}
	if err := s.CreateSession(context.Background(), sess, store.RefreshToken{Hash: hash[:], SessionID: id, CreatedAt: benchBase}, store.RoleMember); err != nil {
		b.Fatalf("CreateSession: %v", err)
	}
	return hash[:]
}

func benchOpen(b *testing.B, url string) store.Store {
	b.Helper()
	s, err := store.Open(context.Background(), url, nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	return s
}

func benchSQLiteURL(b *testing.B) string {
	return "sqlite:" + filepath.Join(b.TempDir(), "ideapool.db")
}

var (
	benchPGOnce  sync.Once
	benchPGAdmin *sql.DB
	benchPGErr   error
	benchPGSeq   atomic.Int64
)

// benchPostgresURL creates an empty schema, dropped when b ends, and
// returns a URL whose connections use it. Like the tests, it fails rather
// than skips when no server is configured.
func benchPostgresURL(b *testing.B) string {
	b.Helper()
	base := os.Getenv(postgresEnv)
	if base == "" {
		b.Fatalf("%s is not set: run `hack/with-postgres.sh go test -bench . ./internal/store`", postgresEnv)
	}
	benchPGOnce.Do(func() { benchPGAdmin, benchPGErr = sql.Open("pgx", base) })
	if benchPGErr != nil {
		b.Fatalf("open %s: %v", postgresEnv, benchPGErr)
	}
	schema := fmt.Sprintf("bench%d_%d", os.Getpid(), benchPGSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := benchPGAdmin.ExecContext(ctx, `CREATE SCHEMA "`+schema+`"`); err != nil {
		b.Fatalf("create schema: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := benchPGAdmin.ExecContext(ctx, `DROP SCHEMA "`+schema+`" CASCADE`); err != nil {
			b.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatalf("parse %s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
