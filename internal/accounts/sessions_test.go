package accounts_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/store"
)

// TestRefreshRotationGraceAndReuse walks one session through the refresh
// rules: keep, rotate, the retry within the grace, and reuse.
func TestRefreshRotationGraceAndReuse(t *testing.T) {
	f := newFixture(t)
	g := f.signup(t, "ann@example.com")
	ctx := request(addr)

	kept, err := f.svc.Refresh(ctx, g.RefreshToken, accounts.KeepRefreshToken)
	if err != nil || kept.RefreshToken != g.RefreshToken || kept.AccessToken == g.AccessToken {
		t.Fatalf("keep: %v; want a new access token and the same refresh token", err)
	}
	r1, err := f.svc.Refresh(ctx, g.RefreshToken, accounts.RotateRefreshToken)
	if err != nil || r1.RefreshToken == g.RefreshToken {
		t.Fatalf("rotate: %v; want a new refresh token", err)
	}

	// Steps run in order on the session, each presenting a token.
	steps := []struct {
		name    string
		advance time.Duration
		token   func() string
		rotate  accounts.Rotation
		want    error  // nil: a grant
		same    string // the grant's refresh token must be this one
	}{
		{name: "the previous token again within the grace", advance: 4 * time.Second, token: func() string { return g.RefreshToken },
			rotate: accounts.RotateRefreshToken, same: r1.RefreshToken},
		{name: "and at the keeping dialect: refused, nothing revoked", token: func() string { return g.RefreshToken },
			rotate: accounts.KeepRefreshToken, want: accounts.ErrRefreshInvalid},
		{name: "the successor still works", token: func() string { return r1.RefreshToken }, rotate: accounts.KeepRefreshToken,
			same: r1.RefreshToken},
		{name: "the previous token after the grace is reuse", advance: 2 * time.Second, token: func() string { return g.RefreshToken },
			rotate: accounts.RotateRefreshToken, want: accounts.ErrRefreshInvalid},
		{name: "which revoked the newest token too", token: func() string { return r1.RefreshToken },
			rotate: accounts.RotateRefreshToken, want: accounts.ErrRefreshInvalid},
	}
	for _, st := range steps {
		f.clock.Advance(st.advance)
		got, err := f.svc.Refresh(ctx, st.token(), st.rotate)
		if st.want != nil {
			if !errors.Is(err, st.want) {
				t.Fatalf("%s: %v, want %v", st.name, err, st.want)
			}
			continue
		}
		if err != nil || got.RefreshToken != st.same {
			t.Fatalf("%s: %v; want the refresh token %.8s…", st.name, err, st.same)
		}
	}
	if f.obs.reuse != 1 {
		t.Errorf("reuse counted %d times, want 1", f.obs.reuse)
	}
	if f.accessOK(r1.AccessToken) {
		t.Errorf("the access token of a session revoked for reuse is still accepted")
	}
}

// TestConcurrentRotations: tabs refreshing one token at once all get the
// same successor, and the session stays live.
func TestConcurrentRotations(t *testing.T) {
	f := newFixture(t)
	g := f.signup(t, "ann@example.com")
	const n = 8
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := f.svc.Refresh(request(addr), g.RefreshToken, accounts.RotateRefreshToken)
			got[i], errs[i] = r.RefreshToken, err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("refresh %d: %v, %.8s…; want every one to get the successor %.8s…", i, errs[i], got[i], got[0])
		}
	}
	if _, err := f.svc.Refresh(request(addr), got[0], accounts.RotateRefreshToken); err != nil {
		t.Fatalf("the successor: %v", err)
	}
}

// TestRevocationOutlivesAShorterLifetime: a revocation is kept until every
// access token of the session has expired, even after the access lifetime
// was lowered, and by a replica started after it.
func TestRevocationOutlivesAShorterLifetime(t *testing.T) {
	long := accounts.Lifetimes{Access: time.Hour, Refresh: 720 * time.Hour, ReuseGrace: 5 * time.Second}
	f := newFixture(t, withLifetimes(long))
	g := f.signup(t, "ann@example.com")
	short := long
	short.Access = 5 * time.Minute
	if err := f.svc.SetLifetimes(short); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(request(addr), g.User.ID, g.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// Steps run in order: the clock moves, the replica polls, a new
	// replica starts; the hour-long token must stay refused until it
	// expires.
	steps := []struct {
		advance time.Duration
		want    bool // the access token is accepted
	}{
		{advance: 10 * time.Minute}, // past today's lifetime plus the poll overlap
		{advance: 45 * time.Minute}, // 55 minutes in
		{advance: 6 * time.Minute, want: false},
	}
	for i, st := range steps {
		f.clock.Advance(st.advance)
		started := newReplica(t, f.url, f.clock, withLifetimes(short))
		for name, r := range map[string]*fixture{"running replica": f, "replica started now": started} {
			if err := r.svc.SyncRevocations(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, verr := r.tokens.VerifyAccess(g.AccessToken)
			if ok := r.accessOK(g.AccessToken); ok != st.want {
				t.Fatalf("step %d, %s: the revoked session's access token accepted %v (verifies: %v), want %v",
					i, name, ok, verr, st.want)
			}
		}
	}
}

func TestClientAuthentication(t *testing.T) {
	f := newFixture(t)
	owner := f.signup(t, "robots@example.com")
	id, secret := f.client(t, owner)
	ctx := accounts.WithDialect(context.Background(), "jsonrpc")

	g, err := f.svc.AuthenticateClient(ctx, id, f.assertion(t, id, secret, time.Minute), issuer)
	if err != nil || g.ClientID != id || g.User.ID != owner.User.ID {
		t.Fatalf("authenticate: %+v, %v; want a session of the owner started by the client", g, err)
	}
	if c, err := f.tokens.VerifyAccess(g.AccessToken); err != nil || c.ClientID != id {
		t.Fatalf("access token claims %+v, %v; want client_id %s", c, err, id)
	}

	// One assertion valid for a minute, used once, presented again as time
	// passes: it is a replay for as long as it could be accepted (exp and
	// 5 s of leeway), and expired after.
	a := f.assertion(t, id, secret, time.Minute)
	if _, err := f.svc.AuthenticateClient(ctx, id, a, issuer); err != nil {
		t.Fatalf("first use: %v", err)
	}
	steps := []struct {
		at   time.Duration // after the first use
		want accounts.AssertionReason
	}{
		{at: 0, want: accounts.AssertionReplayed},
		{at: time.Minute - time.Second, want: accounts.AssertionReplayed},
		{at: time.Minute, want: accounts.AssertionReplayed},
		{at: time.Minute + 4*time.Second, want: accounts.AssertionReplayed},
		{at: time.Minute + 5*time.Second, want: accounts.AssertionExpired},
	}
	start := f.clock.Now()
	for _, st := range steps {
		f.clock.Advance(start.Add(st.at).Sub(f.clock.Now()))
		_, err := f.svc.AuthenticateClient(ctx, id, a, issuer)
		var ae *accounts.AssertionError
		if !errors.As(err, &ae) || ae.Reason != st.want {
			t.Fatalf("replay %v after the first use: %v, want %s", st.at, err, st.want)
		}
	}

	// Revoking the client ends its sessions and refuses its assertions.
	if err := f.svc.RevokeClient(request(addr), caller(owner), id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, g.RefreshToken, accounts.RotateRefreshToken); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Errorf("refresh of a revoked client's session: %v, want invalid", err)
	}
	if f.accessOK(g.AccessToken) {
		t.Errorf("this replica accepts the access token of a revoked client's session")
	}
	_, err = f.svc.AuthenticateClient(ctx, id, f.assertion(t, id, secret, time.Minute), issuer)
	var ae *accounts.AssertionError
	if !errors.As(err, &ae) || ae.Reason != accounts.AssertionUnknownClient {
		t.Fatalf("a revoked client: %v, want unknown client", err)
	}
}

// revokeDuring revokes the API client (as DELETE /api-clients/:id does)
// right before the wrapped step of an authentication or a refresh writes:
// the revocation lands while the request is in flight.
type revokeDuring struct {
	store.Store
	userID, clientID string
	onCreate         bool // before CreateSession, else before RotateRefreshToken
}

func (r revokeDuring) revoke(ctx context.Context) error {
	_, err := r.RevokeAPIClient(ctx, r.userID, r.clientID, t0)
	return err
}

func (r revokeDuring) CreateSession(ctx context.Context, s store.Session, rt store.RefreshToken, role store.Role) error {
	if r.onCreate && s.ClientID == r.clientID {
		if err := r.revoke(ctx); err != nil {
			return err
		}
	}
	return r.Store.CreateSession(ctx, s, rt, role)
}

func (r revokeDuring) RotateRefreshToken(ctx context.Context, old []byte, next store.RefreshToken, at, access time.Time) error {
	if !r.onCreate {
		if err := r.revoke(ctx); err != nil {
			return err
		}
	}
	return r.Store.RotateRefreshToken(ctx, old, next, at, access)
}

// TestClientRevokedInFlight: once a client's revocation has returned, no
// refresh token of any session of it works, whatever was in flight.
func TestClientRevokedInFlight(t *testing.T) {
	tests := map[string]struct {
		onCreate bool // the revocation lands during the authentication, else during a refresh
	}{
		"during authentication": {onCreate: true},
		"during a refresh":      {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			owner := f.signup(t, "robots@example.com")
			id, secret := f.client(t, owner)
			ctx := accounts.WithDialect(context.Background(), "jsonrpc")
			var g accounts.Grant
			if !tc.onCreate {
				var err error
				if g, err = f.svc.AuthenticateClient(ctx, id, f.assertion(t, id, secret, time.Minute), issuer); err != nil {
					t.Fatal(err)
				}
			}
			racy := newReplica(t, f.url, f.clock, withStore(func(s store.Store) accounts.Store {
				return revokeDuring{Store: s, userID: owner.User.ID, clientID: id, onCreate: tc.onCreate}
			}))
			var got accounts.Grant
			var err error
			if tc.onCreate {
				got, err = racy.svc.AuthenticateClient(ctx, id, racy.assertion(t, id, secret, time.Minute), issuer)
			} else {
				got, err = racy.svc.Refresh(ctx, g.RefreshToken, accounts.RotateRefreshToken)
			}
			if err == nil {
				t.Errorf("the request in flight succeeded after the revocation committed")
			}
			for _, rt := range []string{got.RefreshToken, g.RefreshToken} {
				if rt == "" {
					continue
				}
				if _, err := f.svc.Refresh(ctx, rt, accounts.KeepRefreshToken); !errors.Is(err, accounts.ErrRefreshInvalid) {
					t.Errorf("a refresh token of the revoked client works: %v", err)
				}
			}
			n, err := f.db.UpdateUser(context.Background(), owner.User.ID, store.UserUpdate{RevokeSessionsAt: &t0})
			if err != nil || n != 1 {
				t.Errorf("live sessions of the owner: %d (%v), want only the password one", n, err)
			}
		})
	}
}

// TestClientSessionsCannotManageClients: only a session started with the
// account's password may create, list or revoke its API clients.
func TestClientSessionsCannotManageClients(t *testing.T) {
	f := newFixture(t)
	owner := f.signup(t, "robots@example.com")
	id, secret := f.client(t, owner)
	bySecret, err := f.svc.AuthenticateClient(context.Background(), id, f.assertion(t, id, secret, time.Minute), issuer)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(c accounts.Caller) error{
		"create": func(c accounts.Caller) error {
			_, _, err := f.svc.CreateClient(request(addr), c, "second", nil)
			return err
		},
		"list":   func(c accounts.Caller) error { _, err := f.svc.Clients(request(addr), c); return err },
		"revoke": func(c accounts.Caller) error { return f.svc.RevokeClient(request(addr), c, id) },
	}
	for name, call := range calls {
		if err := call(caller(bySecret)); apperr.CodeOf(err) != apperr.Forbidden {
			t.Errorf("%s from the client's session: %v, want forbidden", name, err)
		}
	}
	list, err := f.svc.Clients(request(addr), caller(owner))
	if err != nil || len(list) != 1 {
		t.Fatalf("list from the password session: %d clients, %v; want the one (no second was created)", len(list), err)
	}
	if err := calls["revoke"](caller(owner)); err != nil {
		t.Fatalf("revoke from the password session: %v", err)
	}
}

// TestReuseOfTokensRotatedOutLongAgo: a session keeps the rows of only its
// current refresh token and the one that token replaced, yet a token
// rotated out any number of generations ago is still reuse and revokes
// the session (RFC 9700 4.14.2), whatever the backend. A made-up token
// naming the session is merely unknown.
func TestReuseOfTokensRotatedOutLongAgo(t *testing.T) {
	for backend, newURL := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newReplica(t, newURL(t), clocktest.New(t0))
			ctx := request(addr)
			g := f.signup(t, "ann@example.com")
			bystander := f.signup(t, "bob@example.com")
			tokens := []string{g.RefreshToken}
			var last accounts.Grant
			for range 50 {
				f.clock.Advance(time.Minute)
				r, err := f.svc.Refresh(ctx, tokens[len(tokens)-1], accounts.RotateRefreshToken)
				if err != nil {
					t.Fatalf("rotation %d: %v", len(tokens), err)
				}
				tokens, last = append(tokens, r.RefreshToken), r
			}
			for i, tok := range tokens {
				_, _, err := f.db.RefreshTokenByHash(context.Background(), accounts.HashRefreshToken(tok))
				if kept := i >= len(tokens)-2; (err == nil) != kept {
					t.Fatalf("token %d of %d: row found %v (%v), want %v: only the current one and its predecessor are kept",
						i, len(tokens), err == nil, err, kept)
				}
			}
			ann, bob := strings.Split(tokens[0], "."), strings.Split(bystander.RefreshToken, ".")
			if len(ann) != 3 || len(bob) != 3 {
				t.Fatalf("refresh tokens %q, %q: want <sid>.<tag>.<body>", tokens[0], bystander.RefreshToken)
			}
			// Steps run in order, on what the previous ones left.
			steps := []struct {
				name    string
				token   string
				revokes bool // ann's session
			}{
				{name: "ann's session with a made-up tag", token: ann[0] + "." + strings.Repeat("A", 22) + "." + ann[2]},
				{name: "bob's session with ann's tag", token: bob[0] + "." + ann[1] + "." + ann[2]},
				{name: "the token rotated out 50 generations ago", token: tokens[0], revokes: true},
			}
			for _, st := range steps {
				if _, err := f.svc.Refresh(ctx, st.token, accounts.RotateRefreshToken); !errors.Is(err, accounts.ErrRefreshInvalid) {
					t.Fatalf("%s: %v, want invalid", st.name, err)
				}
				_, err := f.svc.Refresh(ctx, last.RefreshToken, accounts.KeepRefreshToken)
				if revoked := errors.Is(err, accounts.ErrRefreshInvalid); revoked != st.revokes || (err != nil && !revoked) {
					t.Fatalf("%s: the current token then: %v; want the session revoked %v", st.name, err, st.revokes)
				}
				if _, err := f.svc.Refresh(ctx, bystander.RefreshToken, accounts.KeepRefreshToken); err != nil {
					t.Fatalf("%s: bob's session: %v, want it untouched", st.name, err)
				}
			}
			if f.obs.reuse != 1 || len(f.logs.audits(t, accounts.EventRefreshReuse)) != 1 {
				t.Errorf("reuse counted %d times, logged %d; want once each", f.obs.reuse, len(f.logs.audits(t, accounts.EventRefreshReuse)))
			}
			if f.accessOK(last.AccessToken) {
				t.Errorf("the access token of the session revoked for reuse is still accepted")
			}
		})
	}
}

// TestLogoutWithATokenRotatedOutLongAgo: logging out with an old token of
// the session ends it, as with its current one.
func TestLogoutWithATokenRotatedOutLongAgo(t *testing.T) {
	f := newFixture(t)
	g := f.signup(t, "ann@example.com")
	current := g.RefreshToken
	for range 3 {
		r, err := f.svc.Refresh(request(addr), current, accounts.RotateRefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		current = r.RefreshToken
	}
	if err := f.svc.Logout(request(addr), g.User.ID, g.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(request(addr), current, accounts.KeepRefreshToken); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Fatalf("the current token after logging out with the first: %v, want invalid", err)
	}
	if f.obs.reuse != 0 {
		t.Errorf("a logout counted as reuse")
	}
}

// TestIDTokensNameTheClient: the ID token of a session an API client
// started carries client_id, as its access tokens do, also when its
// refresh token is used at another dialect; a password session's does not.
func TestIDTokensNameTheClient(t *testing.T) {
	f := newFixture(t)
	owner := f.signup(t, "robots@example.com")
	id, secret := f.client(t, owner)
	ctx := accounts.WithDialect(context.Background(), "jsonrpc")
	byClient, err := f.svc.AuthenticateClient(ctx, id, f.assertion(t, id, secret, time.Minute), issuer)
	if err != nil {
		t.Fatal(err)
	}
	refreshed, err := f.svc.Refresh(accounts.WithDialect(context.Background(), "v1auth"), byClient.RefreshToken, accounts.RotateRefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		grant accounts.Grant
		want  string // client_id; "" for none
	}{
		"a password session":                  {grant: owner},
		"a client's session":                  {grant: byClient, want: id},
		"a client's session, refreshed later": {grant: refreshed, want: id},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok, err := f.svc.IDToken(ctx, tc.grant)
			if err != nil {
				t.Fatal(err)
			}
			claims := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
				t.Fatal(err)
			}
			got, present := claims["client_id"]
			if tc.want == "" && present || tc.want != "" && got != tc.want {
				t.Fatalf("client_id = %v (present %v), want %q", got, present, tc.want)
			}
		})
	}
}

// stallBeforeUse holds the write of a client assertion's jti: the clock
// moves on by stall (the request stalled) and a cleanup runs, then the
// write goes on.
type stallBeforeUse struct {
	store.Store
	clock   *clock
	stall   time.Duration
	cleanup func() error
}

func (s stallBeforeUse) UseClientAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error {
	s.clock.Advance(s.stall)
	if err := s.cleanup(); err != nil {
		return err
	}
	return s.Store.UseClientAssertion(ctx, clientID, jti, expiresAt, now)
}

// TestAssertionReplayAcrossCleanups: a replayed client assertion is
// refused however the cleanup, on this replica or one whose clock runs
// ahead, falls between its check and its write.
func TestAssertionReplayAcrossCleanups(t *testing.T) {
	// The assertion expires a minute after the first use and is accepted
	// for 5 s more; every replay comes 4 s into those 5.
	tests := map[string]func(t *testing.T, f *fixture) *fixture{ // the replica the replay reaches
		"the replay stalls past the window while a cleanup runs": func(t *testing.T, f *fixture) *fixture {
			return newReplica(t, f.url, f.clock, withStore(func(s store.Store) accounts.Store {
				return stallBeforeUse{Store: s, clock: f.clock, stall: 2 * time.Second, cleanup: func() error {
					_, err := f.svc.Cleanup(context.Background())
					return err
				}}
			}))
		},
		"a replica whose clock runs 30 s ahead cleaned up": func(t *testing.T, f *fixture) *fixture {
			ahead := newReplica(t, f.url, clocktest.New(f.clock.Now().Add(30*time.Second)))
			if _, err := ahead.svc.Cleanup(context.Background()); err != nil {
				t.Fatal(err)
			}
			return f
		},
	}
	for backend, newURL := range backends {
		for name, replica := range tests {
			t.Run(backend+"/"+name, func(t *testing.T) {
				f := newReplica(t, newURL(t), clocktest.New(t0))
				owner := f.signup(t, "robots@example.com")
				id, secret := f.client(t, owner)
				ctx := accounts.WithDialect(context.Background(), "jsonrpc")
				a := f.assertion(t, id, secret, time.Minute)
				if _, err := f.svc.AuthenticateClient(ctx, id, a, issuer); err != nil {
					t.Fatalf("first use: %v", err)
				}
				f.clock.Advance(time.Minute + 4*time.Second)
				_, err := replica(t, f).svc.AuthenticateClient(ctx, id, a, issuer)
				var ae *accounts.AssertionError
				if !errors.As(err, &ae) || ae.Reason != accounts.AssertionReplayed {
					t.Fatalf("replay: %v, want replayed", err)
				}
			})
		}
	}
}
