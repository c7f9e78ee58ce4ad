package accounts_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/password"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/store/storetest"
	"github.com/ideapool/ideapool/internal/token"
)

// The core's own tests: a real SQLite store, real token signing with a test
// key, argon2id with tiny parameters (the rules do not depend on its cost),
// and a clock the tests move by hand.

const (
	issuer    = "http://ideapool.test"
	password1 = "the-Secret-123"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type clock = clocktest.Clock

// observer records what the core reports for metrics.
type observer struct {
	mu       sync.Mutex
	failures map[string]int // reason → count
	reuse    int
	deleted  map[string]int // table → count
}

func (o *observer) TokenIssued(string, string) {}
func (o *observer) LoginFailed(_, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures[reason]++
}
func (o *observer) RefreshReuse(string) { o.mu.Lock(); defer o.mu.Unlock(); o.reuse++ }
func (o *observer) CleanupDeleted(table string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deleted[table] += n
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *logBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// lines decodes the JSON log lines.
func (b *logBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader([]byte(b.String())))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// audits returns the audit lines of event.
func (b *logBuffer) audits(t testing.TB, event string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range b.lines(t) {
		if l["audit"] == true && l["event"] == event {
			out = append(out, l)
		}
	}
	return out
}

type fixture struct {
	svc    *accounts.Service
	db     store.Store
	url    string
	clock  *clock
	obs    *observer
	logs   *logBuffer
	tokens *token.Manager
	cfg    accounts.Config
}

type option func(*accounts.Config)

// withStore puts wrap(db) between the core and the database.
func withStore(wrap func(store.Store) accounts.Store) option {
	return func(c *accounts.Config) { c.Store = wrap(c.Store.(store.Store)) }
}

func withLifetimes(l accounts.Lifetimes) option { return func(c *accounts.Config) { c.Lifetimes = l } }

var (
	keyOnce  sync.Once
	testKey  keyset.Keyset
	hashOnce sync.Once
	hasher   *password.Hasher
)

// newFixture is a core on a new SQLite file.
func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	return newReplica(t, sqliteURL(t), clocktest.New(t0), opts...)
}

func sqliteURL(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "ideapool.db") }

// backends name a new, empty database of each backend, for the tests of
// rules that depend on how the store locks and deletes. PostgreSQL needs
// IDEAPOOL_TEST_POSTGRES_URL (make test, hack/with-postgres.sh) and fails
// the test without it.
var backends = map[string]func(t testing.TB) string{
	"sqlite":   sqliteURL,
	"postgres": storetest.PostgresURL,
}

// newReplica is another core on the database at url, as a second replica
// or a restarted one would be.
func newReplica(t testing.TB, url string, clk *clock, opts ...option) *fixture {
	t.Helper()
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	keyOnce.Do(func() {
		p := keyset.Policy{Algorithm: keyset.ES256, MaxTokenTTL: 2 * time.Hour}.WithDefaults()
		testKey, _, err = keyset.Advance(keyset.Keyset{}, p, t0.Add(-30*24*time.Hour), keyset.NewGenerator(rand.Reader))
	})
	if err != nil {
		t.Fatalf("test keyset: %v", err)
	}
	tokens, err := token.NewManager(token.Config{Issuer: issuer, Now: clk.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.SetKeyset(testKey); err != nil {
		t.Fatal(err)
	}
	hashOnce.Do(func() {
		hasher, err = password.NewHasher(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, rand.Reader, 4)
	})
	if err != nil {
		t.Fatal(err)
	}
	obs := &observer{failures: map[string]int{}, deleted: map[string]int{}}
	logs := &logBuffer{}
	cfg := accounts.Config{Store: db, Signer: tokens, Hasher: hasher,
		Lifetimes: accounts.Lifetimes{Access: 10 * time.Minute, Refresh: 720 * time.Hour, ID: time.Hour, ReuseGrace: 5 * time.Second},
		Observer:  obs, Now: clk.Now, Rand: rand.Reader, Log: slog.New(slog.NewJSONHandler(logs, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := accounts.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, db: db, url: url, clock: clk, obs: obs, logs: logs, tokens: tokens, cfg: cfg}
}

// request is the context of a request from addr through the ideapool
// dialect.
func request(addr string) context.Context {
	ctx := accounts.WithDialect(context.Background(), "ideapool")
	return accounts.WithRequestID(accounts.WithClientAddr(ctx, addr), "req-"+addr)
}

const addr = "192.0.2.1"

// signup creates an account and returns its first grant.
func (f *fixture) signup(t testing.TB, email string) accounts.Grant {
	t.Helper()
	g, err := f.svc.Signup(request(addr), accounts.SignupRequest{Email: email, Name: "Test User", Password: password1})
	if err != nil {
		t.Fatalf("signup %s: %v", email, err)
	}
	return g
}

// accessOK reports whether an access token is accepted as requireAccess
// does: it verifies and its session is not on the revocation list.
func (f *fixture) accessOK(tok string) bool {
	c, err := f.tokens.VerifyAccess(tok)
	return err == nil && !f.svc.SessionRevoked(c.SessionID)
}

// client registers an HS256 API client for g's session.
func (f *fixture) client(t testing.TB, g accounts.Grant) (id, secret string) {
	t.Helper()
	c, secret, err := f.svc.CreateClient(request(addr), caller(g), "robot", nil)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return c.ID, secret
}

func caller(g accounts.Grant) accounts.Caller {
	return accounts.Caller{UserID: g.User.ID, SessionID: g.SessionID, ClientID: g.ClientID}
}

// assertion signs a client JWT valid for lifetime from now; edit changes
// its claims.
func (f *fixture) assertion(t testing.TB, clientID, secret string, lifetime time.Duration, edit ...func(jwt.MapClaims)) string {
	t.Helper()
	now := f.clock.Now()
	c := jwt.MapClaims{"iss": clientID, "sub": clientID, "aud": issuer, "iat": now.Unix(),
		"exp": now.Add(lifetime).Unix(), "jti": rand.Text()}
	for _, e := range edit {
		e(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
