package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// newSession builds a session of userID created at base, expiring after
// ttl, with a 32-byte secret and its first refresh token (hash "rt-<id>").
func newSession(id, userID string, ttl time.Duration) (store.Session, store.RefreshToken) {
	s := store.Session{
		ID:        id,
		UserID:    userID,
		AuthTime:  at(-time.Second),
		Secret:    secret32("session " + id),
		CreatedAt: base,
		ExpiresAt: at(ttl),
	}
	return s, newToken("rt-"+id, id, base)
}

func newToken(hash, sessionID string, created time.Time) store.RefreshToken {
	return store.RefreshToken{Hash: []byte(hash), SessionID: sessionID, CreatedAt: created}
}

func mustCreateSession(t *testing.T, s store.Store, sess store.Session, rt store.RefreshToken) {
	t.Helper()
	if err := s.CreateSession(t.Context(), sess, rt); err != nil {
		t.Fatalf("CreateSession(%s): %v", sess.ID, err)
	}
}

// wantToken checks that hash leads to token want in session wantSess.
func wantToken(t *testing.T, s store.Store, hash string, want store.RefreshToken, wantSess store.Session) {
	t.Helper()
	got, sess, err := s.RefreshTokenByHash(t.Context(), []byte(hash))
	wantErr(t, "RefreshTokenByHash "+hash, err, nil)
	wantEqual(t, "token "+hash, got, storedToken(want))
	wantEqual(t, "session of "+hash, sess, storedSession(wantSess))
}

func testSessions(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("create and look up", func(t *testing.T) {
		_, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		wantToken(t, s, "rt-s1", rt, sess)
	})

	t.Run("unknown user is not found and stores nothing", func(t *testing.T) {
		ctx, s := fresh(t, open)
		sess, rt := newSession("s1", "user-nobody", time.Hour)
		wantErr(t, "CreateSession", s.CreateSession(ctx, sess, rt), store.ErrNotFound)
		_, _, err := s.RefreshTokenByHash(ctx, rt.Hash)
		wantErr(t, "RefreshTokenByHash", err, store.ErrNotFound)
	})

	t.Run("secret and client id round trip", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		mustCreateAPIClient(t, s, newAPIClient("c1", u.ID, base))
		tests := map[string]struct {
			clientID string
			secret   []byte
			wantErr  error // nil: stored and read back as given
			anyErr   bool  // an error outside the sentinels
		}{
			"browser session":           {secret: secret32("a")},
			"started by an API client":  {clientID: "c1", secret: secret32("b")},
			"secret is kept byte-exact": {secret: []byte{0, 0xff, 0, 1}},
			"unknown client":            {clientID: "c-nobody", secret: secret32("c"), wantErr: store.ErrNotFound},
			"empty secret is refused":   {secret: []byte{}, anyErr: true},
			"nil secret is refused":     {anyErr: true},
		}
		for name, tc := range tests {
			sess, rt := newSession(name, u.ID, time.Hour)
			sess.ClientID, sess.Secret = tc.clientID, tc.secret
			err := s.CreateSession(ctx, sess, rt)
			if tc.anyErr {
				if err == nil {
					t.Fatalf("%s: CreateSession succeeded, want an error", name)
				}
			} else {
				wantErr(t, name+": CreateSession", err, tc.wantErr)
			}
			if tc.wantErr != nil || tc.anyErr {
				_, _, err := s.RefreshTokenByHash(ctx, rt.Hash)
				wantErr(t, name+": RefreshTokenByHash", err, store.ErrNotFound)
				continue
			}
			wantToken(t, s, string(rt.Hash), rt, sess)
		}
	})

	t.Run("session and token are created together", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		// The token insert fails (hash taken), so the session must not exist.
		sess2, _ := newSession("s2", u.ID, time.Hour)
		err := s.CreateSession(ctx, sess2, newToken("rt-s1", "s2", base))
		wantErr(t, "CreateSession", err, store.ErrConflict)
		wantErr(t, "RevokeSession s2", s.RevokeSession(ctx, "s2", base), store.ErrNotFound)
	})

	t.Run("revoke keeps the first revocation", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		wantErr(t, "RevokeSession", s.RevokeSession(ctx, "s1", at(time.Minute)), nil)
		wantErr(t, "RevokeSession again", s.RevokeSession(ctx, "s1", at(2*time.Minute)), nil)
		sess.RevokedAt = ptr(at(time.Minute))
		wantToken(t, s, "rt-s1", rt, sess)
		wantErr(t, "RevokeSession unknown", s.RevokeSession(ctx, "nope", base), store.ErrNotFound)
	})

	t.Run("revoke all of a user", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		bob := mustCreateUser(t, s, newUser("bob"))
		live1, rt1 := newSession("ann-1", ann.ID, time.Hour)
		live2, rt2 := newSession("ann-2", ann.ID, time.Hour)
		old, rtOld := newSession("ann-old", ann.ID, time.Hour)
		old.RevokedAt = ptr(at(time.Second))
		other, rtOther := newSession("bob-1", bob.ID, time.Hour)
		for _, c := range []struct {
			s  store.Session
			rt store.RefreshToken
		}{{live1, rt1}, {live2, rt2}, {old, rtOld}, {other, rtOther}} {
			mustCreateSession(t, s, c.s, c.rt)
		}

		wantErr(t, "RevokeUserSessions", s.RevokeUserSessions(ctx, ann.ID, at(time.Minute)), nil)
		wantErr(t, "RevokeUserSessions unknown user", s.RevokeUserSessions(ctx, "user-nobody", at(time.Minute)), nil)

		live1.RevokedAt, live2.RevokedAt = ptr(at(time.Minute)), ptr(at(time.Minute))
		wantToken(t, s, "rt-ann-1", rt1, live1)
		wantToken(t, s, "rt-ann-2", rt2, live2)
		wantToken(t, s, "rt-ann-old", rtOld, old) // first revocation kept
		wantToken(t, s, "rt-bob-1", rtOther, other)

		// The revocation list: revoked at or after since, oldest first.
		got, err := s.RevokedSessions(ctx, at(0))
		wantErr(t, "RevokedSessions", err, nil)
		wantEqual(t, "revoked sessions", got, []store.RevokedSession{
			{ID: "ann-old", RevokedAt: stored(at(time.Second))},
			{ID: "ann-1", RevokedAt: stored(at(time.Minute))},
			{ID: "ann-2", RevokedAt: stored(at(time.Minute))},
		})
		got, err = s.RevokedSessions(ctx, at(2*time.Second))
		wantErr(t, "RevokedSessions since", err, nil)
		wantEqual(t, "revoked since", len(got), 2)
		got, err = s.RevokedSessions(ctx, at(time.Hour))
		wantErr(t, "RevokedSessions none", err, nil)
		wantEqual(t, "revoked none", got, []store.RevokedSession{})
	})

	t.Run("delete expired cascades to tokens", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		for i, ttl := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
			sess, rt := newSession(fmt.Sprintf("s%d", i+1), u.ID, ttl)
			mustCreateSession(t, s, sess, rt)
		}
		wantErr(t, "RotateRefreshToken", s.RotateRefreshToken(ctx, []byte("rt-s1"), newToken("rt-s1b", "s1", at(time.Minute)), at(time.Minute)), nil)

		// s2 expires exactly at `before`: not yet expired before it.
		n, err := s.DeleteExpiredSessions(ctx, at(2*time.Hour))
		wantErr(t, "DeleteExpiredSessions", err, nil)
		wantEqual(t, "deleted", n, 1)
		for _, h := range []string{"rt-s1", "rt-s1b"} {
			_, _, err := s.RefreshTokenByHash(ctx, []byte(h))
			wantErr(t, "RefreshTokenByHash "+h, err, store.ErrNotFound)
		}
		for _, h := range []string{"rt-s2", "rt-s3"} {
			_, _, err := s.RefreshTokenByHash(ctx, []byte(h))
			wantErr(t, "RefreshTokenByHash "+h, err, nil)
		}
		n, err = s.DeleteExpiredSessions(ctx, at(4*time.Hour))
		wantErr(t, "DeleteExpiredSessions later", err, nil)
		wantEqual(t, "deleted later", n, 2)
	})
}

func testRefreshTokens(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("unknown hash is not found", func(t *testing.T) {
		ctx, s := fresh(t, open)
		_, _, err := s.RefreshTokenByHash(ctx, []byte("nope"))
		wantErr(t, "RefreshTokenByHash", err, store.ErrNotFound)
	})

	t.Run("rotate once, then twice is a conflict", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)

		next := newToken("rt-2", "s1", at(time.Minute))
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute)), nil)
		rt.RotatedAt, rt.SuccessorHash = ptr(at(time.Minute)), next.Hash
		wantToken(t, s, "rt-s1", rt, sess)
		wantToken(t, s, "rt-2", next, sess)

		again := newToken("rt-3", "s1", at(2*time.Minute))
		wantErr(t, "rotate again", s.RotateRefreshToken(ctx, rt.Hash, again, at(2*time.Minute)), store.ErrConflict)
		_, _, err := s.RefreshTokenByHash(ctx, again.Hash)
		wantErr(t, "refused successor", err, store.ErrNotFound)
		wantToken(t, s, "rt-s1", rt, sess) // unchanged

		wantErr(t, "rotate successor", s.RotateRefreshToken(ctx, next.Hash, again, at(2*time.Minute)), nil)
	})

	t.Run("rotate with empty successor session", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		next := newToken("rt-2", "", at(time.Minute))
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute)), nil)
		next.SessionID = "s1"
		wantToken(t, s, "rt-2", next, sess)
	})

	t.Run("rotate unknown is not found", func(t *testing.T) {
		ctx, s := fresh(t, open)
		err := s.RotateRefreshToken(ctx, []byte("nope"), newToken("rt-2", "s1", base), base)
		wantErr(t, "rotate", err, store.ErrNotFound)
	})

	t.Run("concurrent rotations: exactly one wins", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)

		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				next := newToken(fmt.Sprintf("rt-next-%d", i), "s1", at(time.Minute))
				errs[i] = s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute))
			})
		}
		wg.Wait()
		winners := 0
		for i, err := range errs {
			if err == nil {
				winners++
				continue
			}
			wantErr(t, fmt.Sprintf("rotation %d", i), err, store.ErrConflict)
		}
		wantEqual(t, "successful rotations", winners, 1)
	})
}
