package storetest

import (
	"context"
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
		ID:              id,
		UserID:          userID,
		AuthTime:        at(-time.Second),
		Secret:          secret32("session " + id),
		CreatedAt:       base,
		ExpiresAt:       at(ttl),
		AccessExpiresAt: at(10 * time.Minute),
	}
	return s, newToken("rt-"+id, id, base)
}

func newToken(hash, sessionID string, created time.Time) store.RefreshToken {
	return store.RefreshToken{Hash: []byte(hash), SessionID: sessionID, CreatedAt: created}
}

func mustCreateSession(t *testing.T, s store.Store, sess store.Session, rt store.RefreshToken) {
	t.Helper()
	if err := s.CreateSession(t.Context(), sess, rt, store.RoleMember); err != nil {
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
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		wantToken(t, s, "rt-s1", rt, sess)
		got, err := s.SessionByID(ctx, "s1")
		wantErr(t, "SessionByID", err, nil)
		wantEqual(t, "session by id", got, storedSession(sess))
		_, err = s.SessionByID(ctx, "s-nobody")
		wantErr(t, "SessionByID unknown", err, store.ErrNotFound)

		disposable := newToken("rt-d", "s2", base)
		disposable.Disposable = true
		sess2, _ := newSession("s2", u.ID, time.Hour)
		mustCreateSession(t, s, sess2, disposable)
		wantToken(t, s, "rt-d", disposable, sess2)
	})

	t.Run("unknown user is not found and stores nothing", func(t *testing.T) {
		ctx, s := fresh(t, open)
		sess, rt := newSession("s1", "user-nobody", time.Hour)
		wantErr(t, "CreateSession", s.CreateSession(ctx, sess, rt, store.RoleMember), store.ErrNotFound)
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
			err := s.CreateSession(ctx, sess, rt, store.RoleMember)
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
		err := s.CreateSession(ctx, sess2, newToken("rt-s1", "s2", base), store.RoleMember)
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

		n, err := s.UpdateUser(ctx, ann.ID, store.UserUpdate{RevokeSessionsAt: ptr(at(time.Minute))})
		wantErr(t, "UpdateUser", err, nil)
		wantEqual(t, "sessions revoked", n, 2)

		live1.RevokedAt, live2.RevokedAt = ptr(at(time.Minute)), ptr(at(time.Minute))
		wantToken(t, s, "rt-ann-1", rt1, live1)
		wantToken(t, s, "rt-ann-2", rt2, live2)
		wantToken(t, s, "rt-ann-old", rtOld, old) // first revocation kept
		wantToken(t, s, "rt-bob-1", rtOther, other)

		// The revocation list: revoked at or after since, oldest first.
		access := stored(at(10 * time.Minute))
		got, err := s.RevokedSessions(ctx, at(0), at(0))
		wantErr(t, "RevokedSessions", err, nil)
		wantEqual(t, "revoked sessions", got, []store.RevokedSession{
			{ID: "ann-old", RevokedAt: stored(at(time.Second)), AccessExpiresAt: access},
			{ID: "ann-1", RevokedAt: stored(at(time.Minute)), AccessExpiresAt: access},
			{ID: "ann-2", RevokedAt: stored(at(time.Minute)), AccessExpiresAt: access},
		})
		tests := map[string]struct {
			since, liveAfter time.Time
			want             int
		}{
			"since excludes earlier revocations": {since: at(2 * time.Second), liveAfter: at(0), want: 2},
			"none revoked since":                 {since: at(time.Hour), liveAfter: at(0), want: 0},
			"access tokens live until liveAfter": {since: at(0), liveAfter: at(10 * time.Minute), want: 3},
			"every access token expired":         {since: at(0), liveAfter: at(11 * time.Minute), want: 0},
		}
		for name, tc := range tests {
			got, err := s.RevokedSessions(ctx, tc.since, tc.liveAfter)
			wantErr(t, name, err, nil)
			wantEqual(t, name+": count", len(got), tc.want)
		}
	})

	t.Run("delete ended sessions", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		// Each session: when it expires, until when its access tokens live,
		// whether it is revoked.
		sessions := []struct {
			id      string
			expires time.Duration
			access  time.Duration
			revoked bool
		}{
			{id: "expired", expires: time.Hour, access: time.Hour},
			{id: "expired, a token still live", expires: time.Hour, access: 3 * time.Hour},
			{id: "revoked", expires: 10 * time.Hour, access: time.Hour, revoked: true},
			{id: "revoked, a token still live", expires: 10 * time.Hour, access: 3 * time.Hour, revoked: true},
			{id: "live, tokens expired", expires: 10 * time.Hour, access: time.Hour},
			{id: "live", expires: 10 * time.Hour, access: 3 * time.Hour},
		}
		for _, c := range sessions {
			sess, rt := newSession(c.id, u.ID, c.expires)
			sess.AccessExpiresAt = at(c.access)
			mustCreateSession(t, s, sess, rt)
			if c.revoked {
				wantErr(t, "RevokeSession "+c.id, s.RevokeSession(ctx, c.id, at(time.Minute)), nil)
			}
		}
		// Two more refresh tokens of "expired": they go with it.
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, []byte("rt-expired"), newToken("rt-expired-2", "expired", at(time.Minute)), at(time.Minute), at(time.Hour)), nil)
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, []byte("rt-expired-2"), newToken("rt-expired-3", "expired", at(2*time.Minute)), at(2*time.Minute), at(time.Hour)), nil)

		// Steps run in order, each on what the previous ones left. No step
		// deletes more than limit rows, refresh tokens first.
		steps := []struct {
			name         string
			now          time.Duration // accessBefore is now - 1m
			limit        int
			wantSessions int
			wantTokens   int
			wantLeft     []string // hashes still found afterwards
		}{
			{name: "nothing ended yet", now: time.Hour, limit: 10,
				wantLeft: []string{"rt-expired", "rt-revoked", "rt-live"}},
			{name: "a batch stops at its limit of rows", now: 2 * time.Hour, limit: 1, wantTokens: 1,
				wantLeft: []string{"rt-expired, a token still live", "rt-live, tokens expired"}},
			{name: "tokens go first", now: 2 * time.Hour, limit: 3, wantTokens: 3,
				wantLeft: []string{"rt-expired, a token still live", "rt-revoked, a token still live", "rt-live, tokens expired"}},
			{name: "then their sessions", now: 2 * time.Hour, limit: 10, wantSessions: 2,
				wantLeft: []string{"rt-expired, a token still live", "rt-revoked, a token still live", "rt-live, tokens expired"}},
			{name: "once their last tokens expired", now: 4 * time.Hour, limit: 10, wantSessions: 2, wantTokens: 2,
				wantLeft: []string{"rt-live, tokens expired", "rt-live"}},
			{name: "nothing more", now: 4 * time.Hour, limit: 10, wantLeft: []string{"rt-live, tokens expired", "rt-live"}},
		}
		for _, st := range steps {
			n, tokens, err := s.DeleteEndedSessions(ctx, at(st.now), at(st.now-time.Minute), st.limit)
			wantErr(t, st.name, err, nil)
			wantEqual(t, st.name+": sessions deleted", n, st.wantSessions)
			wantEqual(t, st.name+": refresh tokens deleted", tokens, st.wantTokens)
			for _, h := range st.wantLeft {
				_, _, err := s.RefreshTokenByHash(ctx, []byte(h))
				wantErr(t, st.name+": "+h+" is left", err, nil)
			}
		}
		for _, id := range []string{"expired", "revoked", "expired, a token still live", "revoked, a token still live"} {
			_, err := s.SessionByID(ctx, id)
			wantErr(t, id+" deleted", err, store.ErrNotFound)
		}
		for _, h := range []string{"rt-expired", "rt-expired-2", "rt-expired-3", "rt-revoked"} {
			_, _, err := s.RefreshTokenByHash(ctx, []byte(h))
			wantErr(t, h+" deleted", err, store.ErrNotFound)
		}
	})

	t.Run("a session of many refresh tokens goes in batches of limit rows", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		// 25 tokens, kept (not disposable) as a session of an older
		// release kept them.
		prev := rt.Hash
		for i := range 24 {
			next := newToken(fmt.Sprintf("rt-s1-%d", i), "s1", at(time.Duration(i)*time.Second))
			wantErr(t, "rotate", s.RotateRefreshToken(ctx, prev, next, next.CreatedAt, at(10*time.Minute)), nil)
			prev = next.Hash
		}
		for i, want := range [][2]int{{0, 10}, {0, 10}, {1, 5}, {0, 0}} {
			n, tokens, err := s.DeleteEndedSessions(ctx, at(2*time.Hour), at(2*time.Hour), 10)
			wantErr(t, fmt.Sprintf("batch %d", i), err, nil)
			wantEqual(t, fmt.Sprintf("batch %d: sessions and tokens deleted", i), [2]int{n, tokens}, want)
		}
		_, err := s.SessionByID(ctx, "s1")
		wantErr(t, "session deleted", err, store.ErrNotFound)
	})

	t.Run("a disabled user or a revoked client gets no session", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		off := mustCreateUser(t, s, newUser("off"))
		live := mustCreateAPIClient(t, s, newAPIClient("live", ann.ID, base))
		gone := mustCreateAPIClient(t, s, newAPIClient("gone", ann.ID, base))
		_, err := s.RevokeAPIClient(ctx, ann.ID, gone.ID, at(time.Second))
		wantErr(t, "RevokeAPIClient", err, nil)
		_, err = s.UpdateUser(ctx, off.ID, store.UserUpdate{DisabledAt: ptr(at(time.Second))})
		wantErr(t, "UpdateUser", err, nil)
		tests := map[string]struct {
			userID, clientID string
			role             store.Role // the role the session was signed with; 0: member
			wantErr          error
		}{
			"live user":                       {userID: ann.ID},
			"live client":                     {userID: ann.ID, clientID: live.ID},
			"disabled user":                   {userID: off.ID, wantErr: store.ErrRevoked},
			"revoked client":                  {userID: ann.ID, clientID: gone.ID, wantErr: store.ErrRevoked},
			"disabled user, any client":       {userID: off.ID, clientID: live.ID, wantErr: store.ErrRevoked},
			"a role the user does not have":   {userID: ann.ID, role: store.RoleAdmin, wantErr: store.ErrStale},
			"of a client, another role":       {userID: ann.ID, clientID: live.ID, role: store.RoleAdmin, wantErr: store.ErrStale},
			"disabled user, another role too": {userID: off.ID, role: store.RoleAdmin, wantErr: store.ErrRevoked},
		}
		for name, tc := range tests {
			sess, rt := newSession(name, tc.userID, time.Hour)
			sess.ClientID = tc.clientID
			role := tc.role
			if role == 0 {
				role = store.RoleMember
			}
			wantErr(t, name, s.CreateSession(ctx, sess, rt, role), tc.wantErr)
			_, _, err := s.RefreshTokenByHash(ctx, rt.Hash)
			if tc.wantErr != nil {
				wantErr(t, name+": nothing stored", err, store.ErrNotFound)
			} else {
				wantErr(t, name+": stored", err, nil)
			}
		}
	})

	// Sessions created while their client is revoked, their user disabled
	// or given another role: whichever commits first, no live session of
	// what ended is left, and the others are refused with refusal.
	revocations := map[string]struct {
		revoke  func(ctx context.Context, s store.Store, userID, clientID string) error
		refusal error
	}{
		"client revoked": {func(ctx context.Context, s store.Store, userID, clientID string) error {
			_, err := s.RevokeAPIClient(ctx, userID, clientID, at(time.Second))
			return err
		}, store.ErrRevoked},
		"user disabled": {func(ctx context.Context, s store.Store, userID, _ string) error {
			_, err := s.UpdateUser(ctx, userID, store.UserUpdate{DisabledAt: ptr(at(time.Second)), RevokeSessionsAt: ptr(at(time.Second))})
			return err
		}, store.ErrRevoked},
		"role changed": {func(ctx context.Context, s store.Store, userID, _ string) error {
			_, err := s.UpdateUser(ctx, userID, store.UserUpdate{Role: store.RoleAdmin, RevokeSessionsAt: ptr(at(time.Second))})
			return err
		}, store.ErrStale},
	}
	for name, rv := range revocations {
		t.Run("concurrent creation and revocation: no live session/"+name, func(t *testing.T) {
			ctx, s := fresh(t, open)
			u := mustCreateUser(t, s, newUser("ann"))
			c := mustCreateAPIClient(t, s, newAPIClient("c1", u.ID, base))
			const n = 16
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					sess, rt := newSession(fmt.Sprintf("s%d", i), u.ID, time.Hour)
					sess.ClientID = c.ID
					errs[i] = s.CreateSession(ctx, sess, rt, store.RoleMember)
				})
				if i == n/2 {
					wg.Go(func() { wantErr(t, "revoke", rv.revoke(ctx, s, u.ID, c.ID), nil) })
				}
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					wantErr(t, fmt.Sprintf("create %d", i), err, rv.refusal)
					continue
				}
				_, sess, err := s.RefreshTokenByHash(ctx, []byte(fmt.Sprintf("rt-s%d", i)))
				wantErr(t, fmt.Sprintf("session %d", i), err, nil)
				if sess.RevokedAt == nil {
					t.Errorf("session %d is live after the revocation", i)
				}
			}
		})
	}
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
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute), at(11*time.Minute)), nil)
		rt.RotatedAt, rt.SuccessorHash = ptr(at(time.Minute)), next.Hash
		sess.AccessExpiresAt = at(11 * time.Minute)
		wantToken(t, s, "rt-s1", rt, sess)
		wantToken(t, s, "rt-2", next, sess)

		again := newToken("rt-3", "s1", at(2*time.Minute))
		wantErr(t, "rotate again", s.RotateRefreshToken(ctx, rt.Hash, again, at(2*time.Minute), at(time.Hour)), store.ErrConflict)
		_, _, err := s.RefreshTokenByHash(ctx, again.Hash)
		wantErr(t, "refused successor", err, store.ErrNotFound)
		wantToken(t, s, "rt-s1", rt, sess) // unchanged, access expiry included

		wantErr(t, "rotate successor", s.RotateRefreshToken(ctx, next.Hash, again, at(2*time.Minute), at(12*time.Minute)), nil)
	})

	t.Run("a rotation deletes the disposable tokens rotated out before", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		// s1 starts with a kept token, as sessions of an older release do;
		// s2, a bystander, has disposable tokens of its own.
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		other, otherRT := newSession("s2", u.ID, time.Hour)
		otherRT.Disposable = true
		mustCreateSession(t, s, other, otherRT)
		otherNext := newToken("rt-s2-next", "s2", at(time.Second))
		otherNext.Disposable = true
		wantErr(t, "rotate s2", s.RotateRefreshToken(ctx, otherRT.Hash, otherNext, at(time.Second), at(time.Hour)), nil)

		hashes := []string{"rt-s1"}
		for i := range 5 {
			next := newToken(fmt.Sprintf("rt-d%d", i), "s1", at(time.Duration(i+1)*time.Minute))
			next.Disposable = true
			wantErr(t, "rotate", s.RotateRefreshToken(ctx, []byte(hashes[len(hashes)-1]), next, next.CreatedAt, at(time.Hour)), nil)
			hashes = append(hashes, string(next.Hash))
		}
		// Kept: the first (not disposable), the last one rotated out (a
		// retry within the grace needs it) and the current one.
		tests := map[string]error{
			"rt-s1": nil, "rt-d0": store.ErrNotFound, "rt-d1": store.ErrNotFound, "rt-d2": store.ErrNotFound,
			"rt-d3": nil, "rt-d4": nil, "rt-s2": nil, "rt-s2-next": nil,
		}
		for h, want := range tests {
			_, _, err := s.RefreshTokenByHash(ctx, []byte(h))
			wantErr(t, h, err, want)
		}
		d3, _, err := s.RefreshTokenByHash(ctx, []byte("rt-d3"))
		wantErr(t, "rt-d3", err, nil)
		wantEqual(t, "rt-d3 rotated to", string(d3.SuccessorHash), "rt-d4")
	})

	t.Run("rotate with empty successor session", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		next := newToken("rt-2", "", at(time.Minute))
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute), at(time.Minute)), nil)
		next.SessionID = "s1"
		wantToken(t, s, "rt-2", next, sess)
	})

	t.Run("rotate unknown is not found", func(t *testing.T) {
		ctx, s := fresh(t, open)
		err := s.RotateRefreshToken(ctx, []byte("nope"), newToken("rt-2", "s1", base), base, base)
		wantErr(t, "rotate", err, store.ErrNotFound)
	})

	t.Run("a revoked session is neither rotated nor extended", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour)
		mustCreateSession(t, s, sess, rt)
		wantErr(t, "RevokeSession", s.RevokeSession(ctx, "s1", at(time.Minute)), nil)
		next := newToken("rt-2", "s1", at(2*time.Minute))
		wantErr(t, "rotate", s.RotateRefreshToken(ctx, rt.Hash, next, at(2*time.Minute), at(time.Hour)), store.ErrRevoked)
		wantErr(t, "extend", s.ExtendSessionAccess(ctx, "s1", at(time.Hour)), store.ErrRevoked)
		_, _, err := s.RefreshTokenByHash(ctx, next.Hash)
		wantErr(t, "refused successor", err, store.ErrNotFound)
		sess.RevokedAt = ptr(at(time.Minute))
		wantToken(t, s, "rt-s1", rt, sess) // not rotated, access expiry unchanged
		wantErr(t, "extend unknown", s.ExtendSessionAccess(ctx, "nope", at(time.Hour)), store.ErrNotFound)
	})

	t.Run("access expiry only grows", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		sess, rt := newSession("s1", u.ID, time.Hour) // access until base+10m
		mustCreateSession(t, s, sess, rt)
		steps := []struct {
			name   string
			extend time.Duration
			want   time.Duration
		}{
			{name: "later", extend: 20 * time.Minute, want: 20 * time.Minute},
			{name: "earlier (a shorter lifetime now)", extend: 15 * time.Minute, want: 20 * time.Minute},
			{name: "later again", extend: 30 * time.Minute, want: 30 * time.Minute},
		}
		for _, st := range steps {
			wantErr(t, st.name, s.ExtendSessionAccess(ctx, "s1", at(st.extend)), nil)
			sess.AccessExpiresAt = at(st.want)
			wantToken(t, s, "rt-s1", rt, sess)
		}
		next := newToken("rt-2", "s1", at(time.Minute))
		wantErr(t, "rotate with an earlier expiry", s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute), at(25*time.Minute)), nil)
		wantToken(t, s, "rt-2", next, sess)
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
				errs[i] = s.RotateRefreshToken(ctx, rt.Hash, next, at(time.Minute), at(11*time.Minute))
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
