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
	"time"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/randid"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/token"
)

// errDisabledMeanwhile means the account was disabled while a login or a
// client authentication was being checked; callers answer as for a
// disabled account.
var errDisabledMeanwhile = &apperr.Error{Code: apperr.Unauthorized, Message: badCredentials,
	Err: errors.New("account disabled during login")}

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

// startSession starts a session for u; clientID is set when an API client
// authenticated on the user's behalf.
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
	refresh, err := randid.Secret(s.rand, 256)
	if err != nil {
		return Grant{}, err
	}
	sess := store.Session{ID: sid, UserID: u.ID, ClientID: clientID, Secret: secret,
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(lt.Refresh)}
	if err := s.store.CreateSession(ctx, sess, store.RefreshToken{Hash: HashRefreshToken(refresh), SessionID: sid, CreatedAt: now}); err != nil {
		return Grant{}, fmt.Errorf("start session: %w", err)
	}
	// The caller read the account before a password hash or a client check;
	// a disable in between revokes the sessions that existed when it ran.
	// Looking again now that this one exists closes the gap: either the
	// disable comes later and revokes it, or it is seen here.
	cur, err := s.store.UserByID(ctx, u.ID)
	if err != nil {
		return Grant{}, fmt.Errorf("start session: reload user: %w", err)
	}
	if cur.DisabledAt != nil {
		at := s.now().UTC()
		if err := s.store.RevokeSession(context.WithoutCancel(ctx), sid, at); err != nil {
			return Grant{}, fmt.Errorf("start session: revoke the session of a disabled account: %w", err)
		}
		s.noteRevoked(sid, at)
		return Grant{}, errDisabledMeanwhile
	}
	g := Grant{User: u, SessionID: sid, ClientID: clientID, AuthTime: now, RefreshToken: refresh, RefreshExpiresAt: sess.ExpiresAt}
	if err := s.issueAccess(ctx, &g); err != nil {
		return Grant{}, err
	}
	s.obs.TokenIssued(DialectOf(ctx), KindRefresh)
	return g, nil
}

func (s *Service) issueAccess(ctx context.Context, g *Grant) error {
	tok, c, err := s.signer.SignAccess(token.AccessClaims{Subject: g.User.ID, SessionID: g.SessionID,
		Email: g.User.Email, Name: g.User.Name, ClientID: g.ClientID}, s.Lifetimes().Access)
	if err != nil {
		return fmt.Errorf("sign access token: %w", err)
	}
	g.AccessToken, g.AccessExpiresAt = tok, c.ExpiresAt
	s.obs.TokenIssued(DialectOf(ctx), KindAccess)
	return nil
}

// IDToken issues an OpenID Connect ID token for the user of g.
func (s *Service) IDToken(ctx context.Context, g Grant) (string, error) {
	tok, err := s.signer.SignID(token.IDClaims{Subject: g.User.ID, Email: g.User.Email, EmailVerified: false,
		Name: g.User.Name, AuthTime: g.AuthTime}, s.idAudience, s.Lifetimes().ID)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	s.obs.TokenIssued(DialectOf(ctx), KindID)
	return tok, nil
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
	rt, sess, err := s.store.RefreshTokenByHash(ctx, HashRefreshToken(refresh))
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, refreshError(ErrRefreshInvalid)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("refresh: %w", err)
	}
	now := s.now()
	switch {
	case sess.RevokedAt != nil:
		return Grant{}, refreshError(ErrRefreshInvalid)
	case !now.Before(sess.ExpiresAt):
		return Grant{}, refreshError(ErrRefreshExpired)
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return Grant{}, fmt.Errorf("refresh: load user: %w", err)
	}
	if u.DisabledAt != nil {
		return Grant{}, refreshError(ErrRefreshInvalid)
	}
	next := refresh
	switch {
	case rt.RotatedAt != nil:
		next, err = s.retry(ctx, rt, sess, refresh, rotate, now)
		if err != nil {
			return Grant{}, err
		}
	case rotate == RotateRefreshToken:
		next = successor(sess.Secret, refresh, s.rand)
		err := s.store.RotateRefreshToken(ctx, rt.Hash, store.RefreshToken{Hash: HashRefreshToken(next),
			SessionID: sess.ID, CreatedAt: now.UTC()}, now.UTC())
		if errors.Is(err, store.ErrConflict) && mayRetry {
			// Rotated by a concurrent request a moment ago: read it again
			// and let the grace rule decide, once.
			return s.refresh(ctx, refresh, rotate, false)
		}
		if err != nil {
			return Grant{}, fmt.Errorf("rotate refresh token: %w", err)
		}
	}
	g := Grant{User: u, SessionID: sess.ID, ClientID: sess.ClientID, AuthTime: sess.AuthTime,
		RefreshToken: next, RefreshExpiresAt: sess.ExpiresAt}
	if err := s.issueAccess(ctx, &g); err != nil {
		return Grant{}, err
	}
	if next != refresh {
		s.obs.TokenIssued(DialectOf(ctx), KindRefresh)
	}
	return g, nil
}

// retry handles a rotated-out token: within the grace, the immediately
// previous token gets its successor again (only where the answer can carry
// it; elsewhere it is refused without harm); anything else is reuse.
func (s *Service) retry(ctx context.Context, rt store.RefreshToken, sess store.Session, refresh string, rotate Rotation, now time.Time) (string, error) {
	grace := s.Lifetimes().ReuseGrace
	if grace > 0 && len(sess.Secret) > 0 && now.Sub(*rt.RotatedAt) <= grace {
		next := successor(sess.Secret, refresh, nil)
		if bytes.Equal(HashRefreshToken(next), rt.SuccessorHash) {
			succ, _, err := s.store.RefreshTokenByHash(ctx, rt.SuccessorHash)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return "", fmt.Errorf("refresh: load successor: %w", err)
			}
			if err == nil && succ.RotatedAt == nil {
				if rotate != RotateRefreshToken {
					// The answer has no room for the successor: a 200
					// here would leave the client holding a dead token.
					// Nothing is revoked, and the message says so.
					return "", &apperr.Error{Code: apperr.Unauthorized, Err: ErrRefreshInvalid,
						Message: "this refresh token was replaced a moment ago by the one another request received; use that one"}
				}
				return next, nil
			}
		}
	}
	s.obs.RefreshReuse(DialectOf(ctx))
	s.log.WarnContext(ctx, "refresh token reuse detected; revoking the session", "sid", sess.ID,
		"user_id", sess.UserID, "dialect", DialectOf(ctx))
	if err := s.store.RevokeSession(ctx, sess.ID, now.UTC()); err != nil {
		return "", fmt.Errorf("revoke reused session: %w", err)
	}
	s.noteRevoked(sess.ID, now.UTC())
	return "", refreshError(ErrRefreshInvalid)
}

// successor derives the refresh token that replaces refresh: an HMAC keyed
// with the session's secret, so the same predecessor always yields the same
// successor (which is what the reuse grace hands back) while the database
// alone, holding only hashes and the secret, yields neither. Sessions
// without a secret get a random successor and no grace.
func successor(secret []byte, refresh string, rand io.Reader) string {
	if len(secret) == 0 {
		if rand == nil {
			return ""
		}
		t, err := randid.Secret(rand, 256)
		if err != nil {
			return ""
		}
		return t
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(refresh))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
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
