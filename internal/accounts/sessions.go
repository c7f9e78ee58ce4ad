package accounts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/randid"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/token"
)

// Refresh failures, told apart with errors.Is by dialects that report them
// differently (JSON-RPC's -32020 for an expired token, say). Both come
// wrapped in an *apperr.Error with code Unauthorized.
var (
	ErrRefreshInvalid = errors.New("refresh token invalid, revoked or reused")
	ErrRefreshExpired = errors.New("refresh token expired")
)

// Rotation says whether a refresh hands out a new refresh token.
type Rotation bool

const (
	// KeepRefreshToken keeps the refresh token (the Idea Pool API).
	KeepRefreshToken Rotation = false
	// RotateRefreshToken replaces it; the old one stops working, and
	// presenting it again revokes the whole session (RFC 9700 4.14.2).
	RotateRefreshToken Rotation = true
)

// Groups are the groups claim of a role's tokens, for RBAC bindings.
func Groups(r store.Role) []string {
	if r == store.RoleAdmin {
		return []string{"admin"}
	}
	return []string{"member"}
}

// beginSession starts a session for u, which the caller read before it
// checked u's password or client. Should u's role have changed since (the
// tokens, signed with the old role, would carry it in groups), the store
// refuses the session; then u is read again and the session started once
// more with the role u has now, without checking the password again
// (unless it changed too). A second change in that moment fails cleanly,
// as Unavailable: the client signs in again. store.ErrRevoked: u was
// disabled, or the client revoked, since the caller read them.
func (s *Service) beginSession(ctx context.Context, u store.User, clientID string) (Grant, error) {
	g, err := s.startSession(ctx, u, clientID)
	if !errors.Is(err, store.ErrStale) {
		return g, err
	}
	fresh, err := s.store.UserByID(ctx, u.ID)
	if err != nil {
		return Grant{}, fmt.Errorf("start session: reload user: %w", err)
	}
	switch {
	case fresh.DisabledAt != nil:
		return Grant{}, fmt.Errorf("start session: %w", store.ErrRevoked)
	case fresh.PasswordHash != u.PasswordHash:
		return Grant{}, accountChanged()
	}
	g, err = s.startSession(ctx, fresh, clientID)
	if errors.Is(err, store.ErrStale) {
		return Grant{}, accountChanged()
	}
	return g, err
}

func accountChanged() error {
	return apperr.New(apperr.Unavailable, "the account changed while signing in; sign in again")
}

// startSession starts a session for u; clientID is set when an API client
// authenticated on the user's behalf. It is store.ErrRevoked when the user
// was disabled, or the client revoked, and store.ErrStale when the user's
// role changed, since the caller read them: the store checks all three in
// the transaction that creates the session.
func (s *Service) startSession(ctx context.Context, u store.User, clientID string) (Grant, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	lt := s.Lifetimes()
	sid, err := randid.New(s.rand, 20)
	if err != nil {
		return Grant{}, err
	}
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return Grant{}, fmt.Errorf("read session secret: %w", err)
	}
	body, err := randid.Secret(s.rand, 256)
	if err != nil {
		return Grant{}, err
	}
	sess := store.Session{ID: sid, UserID: u.ID, ClientID: clientID, Secret: secret,
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(lt.Refresh)}
	refresh := namedToken(sess, body)
	g := Grant{User: u, SessionID: sid, ClientID: clientID, AuthTime: now, RefreshToken: refresh, RefreshExpiresAt: sess.ExpiresAt}
	// The access token is signed first so that the session records its
	// exact expiry; it is handed out only once the session exists.
	if err := s.signAccess(&g); err != nil {
		return Grant{}, err
	}
	sess.AccessExpiresAt = g.AccessExpiresAt
	first := store.RefreshToken{Hash: HashRefreshToken(refresh), SessionID: sid, CreatedAt: now, Disposable: true}
	if err := s.store.CreateSession(ctx, sess, first, u.Role); err != nil {
		return Grant{}, fmt.Errorf("start session: %w", err)
	}
	s.obs.TokenIssued(DialectOf(ctx), KindAccess)
	s.obs.TokenIssued(DialectOf(ctx), KindRefresh)
	return g, nil
}

// signAccess signs an access token for g's user and session, and sets it
// and its expiry in g.
func (s *Service) signAccess(g *Grant) error {
	tok, c, err := s.signer.SignAccess(token.AccessClaims{Subject: g.User.ID, SessionID: g.SessionID,
		Email: g.User.Email, Name: g.User.Name, Username: g.User.Username, Groups: Groups(g.User.Role),
		ClientID: g.ClientID}, s.Lifetimes().Access)
	if err != nil {
		return fmt.Errorf("sign access token: %w", err)
	}
	g.AccessToken, g.AccessExpiresAt = tok, c.ExpiresAt
	return nil
}

// IDToken issues an OpenID Connect ID token for the user of g. The token
// of a session an API client started names it in client_id, as its access
// tokens do, so that a verifier can refuse it.
func (s *Service) IDToken(ctx context.Context, g Grant) (string, error) {
	tok, err := s.signer.SignID(token.IDClaims{Subject: g.User.ID, Email: g.User.Email, EmailVerified: false,
		Name: g.User.Name, Username: g.User.Username, Groups: Groups(g.User.Role), AuthTime: g.AuthTime,
		ClientID: g.ClientID}, s.idAudience, s.Lifetimes().ID)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	s.obs.TokenIssued(DialectOf(ctx), KindID)
	return tok, nil
}

// refreshAction is what a refresh does, decided by decideRefresh.
type refreshAction int

const (
	refreshInvalid refreshAction = iota // refused: unknown, revoked or the account disabled
	refreshExpired                      // refused: the session's absolute expiry has passed
	refreshKeep                         // a new access token; the refresh token stays
	refreshRotate                       // a new access token and a new refresh token
	refreshReplay                       // a retry within the grace: the same successor again
	refreshStale                        // a retry within the grace where the answer cannot carry the successor: refused, nothing revoked
	refreshReuse                        // a rotated-out token presented again: refused, and the session revoked
)

// refreshFacts are what decides a refresh.
type refreshFacts struct {
	now            time.Time
	rotate         Rotation
	grace          time.Duration // ReuseGrace in force
	sessionRevoked bool
	sessionExpires time.Time
	userDisabled   bool
	// forgotten: the presented token names its session and carries its
	// tag, but its row is gone: it was rotated out, and replaced again.
	forgotten bool
	// rotatedAt is set when the presented token was rotated out.
	rotatedAt *time.Time
	// successorIsOwn: the token's recorded successor is the one derived
	// from it (what a retry would be handed), and is itself still current.
	successorIsOwn bool
}

// decideRefresh is the refresh rule, in order: a revoked session, an
// expired one or a disabled account refuse; a token of the session whose
// row is gone is reuse (it was rotated out generations ago); a current
// token refreshes (rotating or keeping it); a rotated-out token within the
// grace gets its own still-current successor again (where the answer has
// room for it); any other rotated-out token is reuse.
func decideRefresh(f refreshFacts) refreshAction {
	switch {
	case f.sessionRevoked:
		return refreshInvalid
	case !f.now.Before(f.sessionExpires):
		return refreshExpired
	case f.userDisabled:
		return refreshInvalid
	case f.forgotten:
		return refreshReuse
	case f.rotatedAt == nil && f.rotate == RotateRefreshToken:
		return refreshRotate
	case f.rotatedAt == nil:
		return refreshKeep
	case f.grace > 0 && f.now.Sub(*f.rotatedAt) <= f.grace && f.successorIsOwn && f.rotate == RotateRefreshToken:
		return refreshReplay
	case f.grace > 0 && f.now.Sub(*f.rotatedAt) <= f.grace && f.successorIsOwn:
		return refreshStale
	}
	return refreshReuse
}

// Refresh returns a new access token for a live session. The session's
// absolute expiry never moves. With RotateRefreshToken the grant carries a
// new refresh token; a client that lost the answer may present the previous
// token again within the reuse grace and gets the same successor back. Any
// other reuse of a rotated-out token revokes the session, its newest refresh
// token included.
func (s *Service) Refresh(ctx context.Context, refresh string, rotate Rotation) (Grant, error) {
	return s.refresh(ctx, refresh, rotate, true)
}

func (s *Service) refresh(ctx context.Context, refresh string, rotate Rotation, mayRetry bool) (Grant, error) {
	if refresh == "" {
		return Grant{}, apperr.InvalidFields(map[string]string{"refresh_token": "is required"})
	}
	rt, sess, kept, err := s.findRefresh(ctx, refresh)
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, refreshError(ErrRefreshInvalid)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("refresh: %w", err)
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return Grant{}, fmt.Errorf("refresh: load user: %w", err)
	}
	now := s.now()
	f := refreshFacts{now: now, rotate: rotate, grace: s.Lifetimes().ReuseGrace, sessionRevoked: sess.RevokedAt != nil,
		sessionExpires: sess.ExpiresAt, userDisabled: u.DisabledAt != nil, forgotten: !kept, rotatedAt: rt.RotatedAt}
	if rt.RotatedAt != nil && f.grace > 0 && now.Sub(*rt.RotatedAt) <= f.grace {
		if f.successorIsOwn, err = s.successorIsOwn(ctx, rt, sess, refresh); err != nil {
			return Grant{}, err
		}
	}
	g := Grant{User: u, SessionID: sess.ID, ClientID: sess.ClientID, AuthTime: sess.AuthTime,
		RefreshToken: refresh, RefreshExpiresAt: sess.ExpiresAt}
	switch decideRefresh(f) {
	case refreshInvalid:
		return Grant{}, refreshError(ErrRefreshInvalid)
	case refreshExpired:
		return Grant{}, refreshError(ErrRefreshExpired)
	case refreshStale:
		// The answer has no room for the successor: a 200 here would
		// leave the client holding a dead token. Nothing is revoked, and
		// the message says so.
		return Grant{}, &apperr.Error{Code: apperr.Unauthorized, Err: ErrRefreshInvalid,
			Message: "this refresh token was replaced a moment ago by the one another request received; use that one"}
	case refreshReuse:
		return Grant{}, s.revokeReused(ctx, sess, now)
	case refreshKeep, refreshReplay:
		if f.rotatedAt != nil {
			g.RefreshToken = successor(sess, refresh, nil)
		}
		if err := s.signAccess(&g); err != nil {
			return Grant{}, err
		}
		if err := s.store.ExtendSessionAccess(ctx, sess.ID, g.AccessExpiresAt); err != nil {
			return Grant{}, refreshStoreError(err)
		}
	case refreshRotate:
		if g.RefreshToken = successor(sess, refresh, s.rand); g.RefreshToken == "" {
			return Grant{}, errors.New("refresh: no randomness for a successor")
		}
		if err := s.signAccess(&g); err != nil {
			return Grant{}, err
		}
		err := s.store.RotateRefreshToken(ctx, rt.Hash, store.RefreshToken{Hash: HashRefreshToken(g.RefreshToken),
			SessionID: sess.ID, CreatedAt: now.UTC(), Disposable: len(sess.Secret) > 0}, now.UTC(), g.AccessExpiresAt)
		if errors.Is(err, store.ErrConflict) && mayRetry {
			// Rotated by a concurrent request a moment ago: read it again
			// and let the grace rule decide, once.
			return s.refresh(ctx, refresh, rotate, false)
		}
		if err != nil {
			return Grant{}, refreshStoreError(err)
		}
	}
	s.obs.TokenIssued(DialectOf(ctx), KindAccess)
	if g.RefreshToken != refresh {
		s.obs.TokenIssued(DialectOf(ctx), KindRefresh)
	}
	return g, nil
}

// successorIsOwn reports whether the successor recorded for the rotated-out
// token rt is the one derived from it, and is still current: only then may
// a retry be handed it again.
func (s *Service) successorIsOwn(ctx context.Context, rt store.RefreshToken, sess store.Session, refresh string) (bool, error) {
	if len(sess.Secret) == 0 || !bytes.Equal(HashRefreshToken(successor(sess, refresh, nil)), rt.SuccessorHash) {
		return false, nil
	}
	succ, _, err := s.store.RefreshTokenByHash(ctx, rt.SuccessorHash)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("refresh: load successor: %w", err)
	}
	return succ.RotatedAt == nil, nil
}

// revokeReused revokes the session of a reused refresh token.
func (s *Service) revokeReused(ctx context.Context, sess store.Session, now time.Time) error {
	s.obs.RefreshReuse(DialectOf(ctx))
	s.audit(ctx, EventRefreshReuse, "", sess.UserID, slog.String("sid", sess.ID))
	if err := s.store.RevokeSession(ctx, sess.ID, now.UTC()); err != nil {
		return fmt.Errorf("revoke reused session: %w", err)
	}
	s.noteRevoked(sess, now.UTC())
	s.audit(ctx, EventSessionRevoked, "", sess.UserID, slog.String("reason", RevokedReuse), slog.String("sid", sess.ID))
	return refreshError(ErrRefreshInvalid)
}

// refreshStoreError maps a refused write: the session was revoked (or
// deleted) between reading it and refreshing it.
func refreshStoreError(err error) error {
	if errors.Is(err, store.ErrRevoked) || errors.Is(err, store.ErrNotFound) {
		return refreshError(ErrRefreshInvalid)
	}
	return fmt.Errorf("refresh: %w", err)
}

// Refresh tokens of sessions with a secret read "<sid>.<tag>.<body>": the
// session's id, its tag (an HMAC of the id under the session's secret, 128
// bits) and a body of 256 bits: random for the first token, the HMAC of its
// predecessor for the others. Through the tag the core knows a token as one
// of its session even once the token's row is gone (a rotated-out token is
// deleted as soon as the next rotation happens), so presenting a token
// rotated out any number of generations ago is still reuse and revokes the
// session. Only someone who held a token of the session knows its tag: a
// made-up token naming a session is merely unknown. Tokens issued before
// this format (a bare body) are kept until their session is deleted.
const tagLabel = "ideapool refresh token tag\x00"

// sessionTag is the tag of sess's refresh tokens.
func sessionTag(sess store.Session) string {
	m := hmac.New(sha256.New, sess.Secret)
	m.Write([]byte(tagLabel + sess.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// namedToken is the refresh token of sess with body.
func namedToken(sess store.Session, body string) string {
	return sess.ID + "." + sessionTag(sess) + "." + body
}

// splitToken returns the session id and tag a refresh token names.
func splitToken(t string) (sid, tag string, ok bool) {
	parts := strings.Split(t, ".")
	if len(parts) != 3 || !randid.Plausible(parts[0]) || len(parts[1]) != 22 || parts[2] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// findRefresh finds a presented refresh token and its session: by the
// token's row, or, once that row is gone, by the session and tag the
// token names (kept is false then, and the token is zero but for its
// SessionID). A token that is neither is store.ErrNotFound.
func (s *Service) findRefresh(ctx context.Context, refresh string) (rt store.RefreshToken, sess store.Session, kept bool, err error) {
	rt, sess, err = s.store.RefreshTokenByHash(ctx, HashRefreshToken(refresh))
	if !errors.Is(err, store.ErrNotFound) {
		return rt, sess, err == nil, err
	}
	sid, tag, ok := splitToken(refresh)
	if !ok {
		return store.RefreshToken{}, store.Session{}, false, err
	}
	sess, err = s.store.SessionByID(ctx, sid)
	if err != nil {
		return store.RefreshToken{}, store.Session{}, false, err
	}
	if len(sess.Secret) == 0 || !hmac.Equal([]byte(tag), []byte(sessionTag(sess))) {
		return store.RefreshToken{}, store.Session{}, false, fmt.Errorf("refresh token names a session: %w", store.ErrNotFound)
	}
	return store.RefreshToken{SessionID: sid}, sess, false, nil
}

// successor derives the refresh token that replaces refresh: the session's
// name and tag with, as body, an HMAC of refresh keyed with the session's
// secret, so the same predecessor always yields the same successor (which
// is what the reuse grace hands back) while the database alone, holding
// only hashes and the secret, yields neither. Sessions without a secret
// get a random successor and no grace.
func successor(sess store.Session, refresh string, rand io.Reader) string {
	if len(sess.Secret) == 0 {
		if rand == nil {
			return ""
		}
		t, err := randid.Secret(rand, 256)
		if err != nil {
			return ""
		}
		return t
	}
	m := hmac.New(sha256.New, sess.Secret)
	m.Write([]byte(refresh))
	return namedToken(sess, base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

func refreshError(cause error) error {
	msg := "refresh token is invalid or revoked; log in again"
	if errors.Is(cause, ErrRefreshExpired) {
		msg = "refresh token has expired; log in again"
	}
	return &apperr.Error{Code: apperr.Unauthorized, Message: msg, Err: cause}
}

// HashRefreshToken is the stored form of a refresh token. The token carries
// 256 random bits, so a plain SHA-256 is enough: there is nothing to guess.
func HashRefreshToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}
