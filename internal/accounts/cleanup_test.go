package accounts_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/store"
)

func TestCleanup(t *testing.T) {
	// Lifetimes: access 10m, refresh 1h; throttle window 15m; batches of 2.
	lt := accounts.Lifetimes{Access: 10 * time.Minute, Refresh: time.Hour, ReuseGrace: 5 * time.Second}
	f := newFixture(t, withLifetimes(lt), func(c *accounts.Config) { c.CleanupBatch = 2 })
	ctx := request(addr)
	// At t0: five sessions, one rotated twice (two refresh tokens kept: the
	// current one and the one it replaced).
	// One is logged out at once, two live on; the others expire at t0+1h.
	var grants []accounts.Grant
	for i := range 5 {
		grants = append(grants, f.signup(t, fmt.Sprintf("user%d@example.com", i)))
	}
	r1, err := f.svc.Refresh(ctx, grants[0].RefreshToken, accounts.RotateRefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, r1.RefreshToken, accounts.RotateRefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(ctx, grants[1].User.ID, grants[1].RefreshToken); err != nil {
		t.Fatal(err)
	}
	// Three failed logins (counted by name and by address), and two client
	// assertions used, acceptable until t0+5m5s.
	for range 3 {
		f.svc.Login(ctx, "nobody@example.com", "Wrong-pass-1") //nolint:errcheck // failures on purpose
	}
	id, secret := f.client(t, grants[4])
	for range 2 {
		if _, err := f.svc.AuthenticateClient(ctx, id, f.assertion(t, id, secret, 5*time.Minute), issuer); err != nil {
			t.Fatal(err)
		}
	}

	// Steps run in order; each cleans up at t0 plus at.
	steps := []struct {
		name string
		at   time.Duration
		want map[string]int // deleted by this cleanup
		keep func(t *testing.T)
	}{
		{name: "nothing has ended long enough", at: 5 * time.Minute,
			want: map[string]int{accounts.TableSessions: 0, accounts.TableRefreshTokens: 0, accounts.TableLoginFailures: 0, accounts.TableClientAssertions: 0}},
		{name: "the revoked session once its access token expired, old failures and used assertions", at: 16 * time.Minute,
			want: map[string]int{accounts.TableSessions: 1, accounts.TableRefreshTokens: 1, accounts.TableLoginFailures: 6, accounts.TableClientAssertions: 2},
			keep: func(t *testing.T) {
				// The revocation list has nothing to miss: its token expired.
				if f.accessOK(grants[1].AccessToken) {
					t.Errorf("the logged-out session's token is accepted")
				}
			}},
		{name: "expired sessions, with their refresh tokens, once their last access tokens expired", at: time.Hour + 11*time.Minute,
			want: map[string]int{accounts.TableSessions: 6, accounts.TableRefreshTokens: 7, accounts.TableLoginFailures: 0, accounts.TableClientAssertions: 0}},
	}
	for _, st := range steps {
		f.clock.Advance(t0.Add(st.at).Sub(f.clock.Now()))
		before := copyMap(f.obs.deleted)
		res, err := f.svc.Cleanup(context.Background())
		if err != nil || res.Skipped {
			t.Fatalf("%s: Cleanup = %+v, %v", st.name, res, err)
		}
		for table, want := range st.want {
			if res.Deleted[table] != want || f.obs.deleted[table]-before[table] != want {
				t.Errorf("%s: %s: deleted %d (counted %d), want %d", st.name, table, res.Deleted[table], f.obs.deleted[table]-before[table], want)
			}
		}
		if st.keep != nil {
			st.keep(t)
		}
	}
	summaries := 0
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "cleanup done" {
			summaries++
		}
	}
	if summaries != len(steps) {
		t.Errorf("%d cleanup summaries logged, want %d", summaries, len(steps))
	}
}

// lockHeld is a store whose cleanup lock another process holds.
type lockHeld struct{ store.Store }

func (lockHeld) LockCleanup(context.Context) (func(), bool, error) { return nil, false, nil }

func TestCleanupSkipsWhileAnotherProcessCleans(t *testing.T) {
	f := newFixture(t, withStore(func(s store.Store) accounts.Store { return lockHeld{s} }))
	f.svc.Login(request(addr), "nobody@example.com", "Wrong-pass-1") //nolint:errcheck // a failure on purpose
	f.clock.Advance(time.Hour)
	res, err := f.svc.Cleanup(context.Background())
	if err != nil || !res.Skipped || len(res.Deleted) != 0 {
		t.Fatalf("Cleanup without the lock = %+v, %v; want skipped, nothing deleted", res, err)
	}
}

func copyMap(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// countRows records how many rows each DeleteEndedSessions call deleted.
type countRows struct {
	store.Store
	mu    *sync.Mutex
	calls *[]int
}

func (c countRows) DeleteEndedSessions(ctx context.Context, now, accessBefore time.Time, limit int) (int, int, error) {
	n, tokens, err := c.Store.DeleteEndedSessions(ctx, now, accessBefore, limit)
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.calls = append(*c.calls, n+tokens)
	return n, tokens, err
}

// TestCleanupBoundsEveryTransaction: however many refresh tokens a session
// piled up (a session of an older release kept every one it rotated out),
// no cleanup transaction deletes more than the batch of rows.
func TestCleanupBoundsEveryTransaction(t *testing.T) {
	const batch, pile = 5, 23
	for backend, newURL := range backends {
		t.Run(backend, func(t *testing.T) {
			var calls []int
			lt := accounts.Lifetimes{Access: 10 * time.Minute, Refresh: time.Hour}
			f := newReplica(t, newURL(t), clocktest.New(t0), withLifetimes(lt), func(c *accounts.Config) { c.CleanupBatch = batch },
				withStore(func(s store.Store) accounts.Store { return countRows{Store: s, mu: &sync.Mutex{}, calls: &calls} }))
			g := f.signup(t, "ann@example.com")
			f.signup(t, "bob@example.com")
			prev := accounts.HashRefreshToken(g.RefreshToken)
			for i := range pile {
				next := store.RefreshToken{Hash: []byte(fmt.Sprintf("kept-%02d", i)), CreatedAt: t0}
				if err := f.db.RotateRefreshToken(context.Background(), prev, next, t0, t0.Add(10*time.Minute)); err != nil {
					t.Fatal(err)
				}
				prev = next.Hash
			}
			f.clock.Advance(2 * time.Hour)
			res, err := f.svc.Cleanup(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// ann's first token went at her second rotation (it was
			// disposable); the 23 kept ones and bob's remain.
			if res.Deleted[accounts.TableSessions] != 2 || res.Deleted[accounts.TableRefreshTokens] != pile+1 {
				t.Fatalf("deleted %v, want 2 sessions and %d refresh tokens", res.Deleted, pile+1)
			}
			for i, n := range calls {
				if n > batch {
					t.Fatalf("transaction %d of %v deleted %d rows, want at most %d", i, calls, n, batch)
				}
			}
		})
	}
}
