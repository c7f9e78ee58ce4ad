// Package accounts is the one account and session core behind every auth
// dialect: signup, login with throttling, refresh, logout and the current
// user. Dialects adapt its results to their wire formats; none of them hash
// passwords, count failures or issue tokens on their own.
package accounts

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/password"
	"github.com/ideapool/ideapool/internal/randid"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/token"
)

// Store is what the core needs from storage.
type Store interface {
	CreateUser(ctx context.Context, u store.User) error
	UserByID(ctx context.Context, id string) (store.User, error)
	UserByLogin(ctx context.Context, login string) (store.User, error)
	CreateSession(ctx context.Context, s store.Session, t store.RefreshToken) error
	RefreshTokenByHash(ctx context.Context, hash []byte) (store.RefreshToken, store.Session, error)
	RevokeSession(ctx context.Context, id string, at time.Time) error
	RecordLoginFailure(ctx context.Context, key string, at time.Time) error
	LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error)
	ClearLoginFailures(ctx context.Context, key string) error
}

// Signer issues access tokens.
type Signer interface {
	SignAccess(c token.AccessClaims, ttl time.Duration) (string, token.AccessClaims, error)
}

// Observer is told about security-relevant events, for metrics.
type Observer interface {
	TokenIssued(kind string)
	LoginFailed(reason string)
}

// Token kinds and failure reasons reported to the Observer.
const (
	KindAccess  = "access"
	KindRefresh = "refresh"

	ReasonUnknownAccount = "unknown_account"
	ReasonBadPassword    = "bad_password"
	ReasonDisabled       = "disabled"
	ReasonThrottled      = "throttled"
)

// Lifetimes are the token lifetimes; they may change while running.
type Lifetimes struct {
	Access  time.Duration
	Refresh time.Duration // absolute from login; refreshing never extends it
	ID      time.Duration // OpenID Connect ID tokens
	// ReuseGrace lets a client that lost a response retry a just-rotated
	// refresh token and get the same successor back; 0 disables it.
	ReuseGrace time.Duration
}

// Throttle bounds failed logins per account.
type Throttle struct {
	MaxFailures int           // failures allowed within Window; the next attempt is refused
	Window      time.Duration // sliding window
}

// Config holds the core's dependencies. Zero values get defaults in New.
type Config struct {
	Store     Store
	Signer    Signer
	Hasher    *password.Hasher
	Lifetimes Lifetimes
	Throttle  Throttle
	Observer  Observer
	Now       func() time.Time
	Rand      io.Reader
	Log       *slog.Logger
}

// Service is the account and session core.
type Service struct {
	store     Store
	signer    Signer
	hasher    *password.Hasher
	throttle  Throttle
	obs       Observer
	now       func() time.Time
	rand      io.Reader
	log       *slog.Logger
	lifetimes atomic.Pointer[Lifetimes]
}

// New validates cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("accounts: Store is required")
	case cfg.Signer == nil:
		return nil, errors.New("accounts: Signer is required")
	case cfg.Hasher == nil:
		return nil, errors.New("accounts: Hasher is required")
	case cfg.Now == nil || cfg.Rand == nil:
		return nil, errors.New("accounts: Now and Rand are required")
	}
	if cfg.Throttle.MaxFailures == 0 {
		cfg.Throttle = Throttle{MaxFailures: 10, Window: 15 * time.Minute}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: cfg.Store, signer: cfg.Signer, hasher: cfg.Hasher, throttle: cfg.Throttle,
		obs: cfg.Observer, now: cfg.Now, rand: cfg.Rand, log: cfg.Log}
	if err := s.SetLifetimes(cfg.Lifetimes); err != nil {
		return nil, err
	}
	return s, nil
}

// SetLifetimes changes token lifetimes for the next tokens issued.
func (s *Service) SetLifetimes(l Lifetimes) error {
	if l.ID == 0 {
		l.ID = time.Hour
	}
	if l.Access <= 0 || l.Refresh <= 0 || l.ID <= 0 || l.ReuseGrace < 0 {
		return fmt.Errorf("accounts: token lifetimes must be positive (access %s, refresh %s, id %s, reuse grace %s)",
			l.Access, l.Refresh, l.ID, l.ReuseGrace)
	}
	s.lifetimes.Store(&l)
	return nil
}

// Lifetimes returns the lifetimes in force.
func (s *Service) Lifetimes() Lifetimes { return *s.lifetimes.Load() }

// Grant is the result of a login, signup or refresh.
type Grant struct {
	User             store.User
	SessionID        string
	AuthTime         time.Time
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
}

// SignupRequest is a new account.
type SignupRequest struct {
	Email    string
	Name     string
	Password string
	Username string // optional; defaults to the email
}

// Problems returns what is wrong with r, by field; empty when it is valid.
// Dialects merge it with their own binding problems so that one 422 names
// every bad field.
func (r SignupRequest) Problems() map[string]string {
	bad := map[string]string{}
	if m := checkEmail(NormalizeEmail(r.Email)); m != "" {
		bad["email"] = m
	}
	if m := checkName(r.Name); m != "" {
		bad["name"] = m
	}
	if m := checkPassword(r.Password); m != "" {
		bad["password"] = m
	}
	if u := strings.TrimSpace(r.Username); u != "" {
		if m := checkUsername(u); m != "" {
			bad["username"] = m
		}
	}
	return bad
}

// Signup creates an account and its first session.
func (s *Service) Signup(ctx context.Context, r SignupRequest) (Grant, error) {
	if bad := r.Problems(); len(bad) > 0 {
		return Grant{}, apperr.InvalidFields(bad)
	}
	email := NormalizeEmail(r.Email)
	username := strings.ToLower(strings.TrimSpace(r.Username))
	if username == "" {
		username = email
	}
	hash, err := s.hasher.Hash(ctx, r.Password)
	if err != nil {
		return Grant{}, busy(err)
	}
	id, err := randid.New(s.rand, 16)
	if err != nil {
		return Grant{}, err
	}
	u := store.User{ID: id, Email: email, Username: username, Name: strings.TrimSpace(r.Name),
		PasswordHash: hash, Role: store.RoleMember, CreatedAt: s.now().UTC()}
	if err := s.store.CreateUser(ctx, u); err != nil {
		var c *store.ConflictError
		if errors.As(err, &c) {
			return Grant{}, apperr.Newf(apperr.Conflict, "%s is already taken", c.Field)
		}
		return Grant{}, fmt.Errorf("signup: %w", err)
	}
	return s.startSession(ctx, u)
}

// Login checks a password for a username or email and starts a session.
// A wrong password, an unknown account and a disabled one look the same.
func (s *Service) Login(ctx context.Context, login, pw string) (Grant, error) {
	login = NormalizeEmail(login)
	if login == "" || pw == "" {
		return Grant{}, apperr.InvalidFields(missing(map[string]string{"login": login, "password": pw}))
	}
	key := "account:" + login
	now := s.now()
	if err := s.checkThrottle(ctx, key, now); err != nil {
		return Grant{}, err
	}
	u, err := s.store.UserByLogin(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.hasher.VerifyDummy(ctx, pw)
		return Grant{}, s.fail(ctx, key, ReasonUnknownAccount, now)
	case err != nil:
		return Grant{}, fmt.Errorf("login: %w", err)
	}
	if err := s.hasher.Verify(ctx, u.PasswordHash, pw); err != nil {
		if errors.Is(err, password.ErrMismatch) {
			return Grant{}, s.fail(ctx, key, ReasonBadPassword, now)
		}
		return Grant{}, busy(err)
	}
	if u.DisabledAt != nil {
		return Grant{}, s.fail(ctx, key, ReasonDisabled, now)
	}
	if err := s.store.ClearLoginFailures(ctx, key); err != nil {
		return Grant{}, fmt.Errorf("login: %w", err)
	}
	return s.startSession(ctx, u)
}

// ErrBadCredentials is the message for every failed login.
const badCredentials = "invalid email or password"

func (s *Service) fail(ctx context.Context, key, reason string, now time.Time) error {
	s.obs.LoginFailed(reason)
	if err := s.store.RecordLoginFailure(ctx, key, now.UTC()); err != nil {
		return fmt.Errorf("record login failure: %w", err)
	}
	return apperr.New(apperr.Unauthorized, badCredentials)
}

func (s *Service) checkThrottle(ctx context.Context, key string, now time.Time) error {
	n, oldest, err := s.store.LoginFailures(ctx, key, now.Add(-s.throttle.Window).UTC())
	if err != nil {
		return fmt.Errorf("check login throttle: %w", err)
	}
	if n < s.throttle.MaxFailures {
		return nil
	}
	s.obs.LoginFailed(ReasonThrottled)
	wait := oldest.Add(s.throttle.Window).Sub(now)
	e := apperr.New(apperr.TooManyRequests, "too many failed logins for this account; try again later")
	e.RetryAfter = time.Duration(math.Ceil(max(wait, time.Second).Seconds())) * time.Second
	return e
}

func (s *Service) startSession(ctx context.Context, u store.User) (Grant, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	lt := s.Lifetimes()
	sid, err := randid.New(s.rand, 20)
	if err != nil {
		return Grant{}, err
	}
	refresh, err := randid.Secret(s.rand, 256)
	if err != nil {
		return Grant{}, err
	}
	sess := store.Session{ID: sid, UserID: u.ID, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(lt.Refresh)}
	if err := s.store.CreateSession(ctx, sess, store.RefreshToken{Hash: HashRefreshToken(refresh), SessionID: sid, CreatedAt: now}); err != nil {
		return Grant{}, fmt.Errorf("start session: %w", err)
	}
	g := Grant{User: u, SessionID: sid, AuthTime: now, RefreshToken: refresh, RefreshExpiresAt: sess.ExpiresAt}
	if err := s.issueAccess(&g); err != nil {
		return Grant{}, err
	}
	s.obs.TokenIssued(KindRefresh)
	return g, nil
}

func (s *Service) issueAccess(g *Grant) error {
	tok, c, err := s.signer.SignAccess(token.AccessClaims{Subject: g.User.ID, SessionID: g.SessionID,
		Email: g.User.Email, Name: g.User.Name}, s.Lifetimes().Access)
	if err != nil {
		return fmt.Errorf("sign access token: %w", err)
	}
	g.AccessToken, g.AccessExpiresAt = tok, c.ExpiresAt
	s.obs.TokenIssued(KindAccess)
	return nil
}

// Refresh returns a new access token for a live session. The refresh token
// stays the same and the session's absolute expiry does not move.
func (s *Service) Refresh(ctx context.Context, refresh string) (Grant, error) {
	if refresh == "" {
		return Grant{}, apperr.InvalidFields(map[string]string{"refresh_token": "is required"})
	}
	rt, sess, err := s.store.RefreshTokenByHash(ctx, HashRefreshToken(refresh))
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, invalidRefresh()
	}
	if err != nil {
		return Grant{}, fmt.Errorf("refresh: %w", err)
	}
	now := s.now()
	if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) {
		return Grant{}, invalidRefresh()
	}
	if rt.RotatedAt != nil {
		// A rotated-out token presented again: someone holds a copy.
		s.log.WarnContext(ctx, "refresh token reuse detected; revoking session", "sid", sess.ID)
		if err := s.store.RevokeSession(ctx, sess.ID, now.UTC()); err != nil {
			return Grant{}, fmt.Errorf("revoke reused session: %w", err)
		}
		return Grant{}, invalidRefresh()
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return Grant{}, fmt.Errorf("refresh: load user: %w", err)
	}
	if u.DisabledAt != nil {
		return Grant{}, invalidRefresh()
	}
	g := Grant{User: u, SessionID: sess.ID, AuthTime: sess.AuthTime, RefreshToken: refresh, RefreshExpiresAt: sess.ExpiresAt}
	if err := s.issueAccess(&g); err != nil {
		return Grant{}, err
	}
	return g, nil
}

func invalidRefresh() error {
	return apperr.New(apperr.Unauthorized, "refresh token is invalid, expired or revoked; log in again")
}

// Logout ends the session of refresh if it belongs to userID. Like RFC 7009
// revocation, an unknown token or another user's token is not an error and
// leaves everything as it was.
func (s *Service) Logout(ctx context.Context, userID, refresh string) error {
	if refresh == "" {
		return apperr.InvalidFields(map[string]string{"refresh_token": "is required"})
	}
	_, sess, err := s.store.RefreshTokenByHash(ctx, HashRefreshToken(refresh))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if sess.UserID != userID {
		return nil
	}
	if err := s.store.RevokeSession(ctx, sess.ID, s.now().UTC()); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// User returns the user with id.
func (s *Service) User(ctx context.Context, id string) (store.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, apperr.New(apperr.Unauthorized, "the account of this token no longer exists")
	}
	if err != nil {
		return store.User{}, fmt.Errorf("load user: %w", err)
	}
	return u, nil
}

// HashRefreshToken is the stored form of a refresh token. The token carries
// 256 random bits, so a plain SHA-256 is enough: there is nothing to guess.
func HashRefreshToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// busy maps a hashing failure (usually a context ended while waiting for a
// slot) to a retryable error.
func busy(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &apperr.Error{Code: apperr.Unavailable, Message: "the server is busy; retry shortly", Err: err}
	}
	return err
}

func missing(fields map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range fields {
		if v == "" {
			out[k] = "is required"
		}
	}
	return out
}

type nopObserver struct{}

func (nopObserver) TokenIssued(string) {}
func (nopObserver) LoginFailed(string) {}
