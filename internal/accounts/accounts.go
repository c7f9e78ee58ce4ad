// Package accounts is the one account and session core behind every auth
// dialect: signup, login with throttling, refresh, logout and the current
// user. Dialects adapt its results to their wire formats; none of them hash
// passwords, count failures or issue tokens on their own.
package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
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
	UpdateUser(ctx context.Context, id string, u store.UserUpdate) (int, error)
	CreateSession(ctx context.Context, s store.Session, t store.RefreshToken, role store.Role) error
	RefreshTokenByHash(ctx context.Context, hash []byte) (store.RefreshToken, store.Session, error)
	SessionByID(ctx context.Context, id string) (store.Session, error)
	RotateRefreshToken(ctx context.Context, oldHash []byte, next store.RefreshToken, at, accessExpiresAt time.Time) error
	ExtendSessionAccess(ctx context.Context, id string, accessExpiresAt time.Time) error
	RevokeSession(ctx context.Context, id string, at time.Time) error
	RevokedSessions(ctx context.Context, since, liveAfter time.Time) ([]store.RevokedSession, error)
	CreateAPIClient(ctx context.Context, c store.APIClient) error
	APIClientByID(ctx context.Context, id string) (store.APIClient, error)
	ListAPIClients(ctx context.Context, userID string) ([]store.APIClient, error)
	RevokeAPIClient(ctx context.Context, userID, id string, at time.Time) (int, error)
	UseClientAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error
	RecordLoginAttempt(ctx context.Context, key, attempt string, at time.Time) error
	ForgetLoginAttempt(ctx context.Context, key, attempt string) error
	LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error)
	ClearLoginFailures(ctx context.Context, key string) error
	CleanupStore
}

var _ Store = store.Store(nil)

// Signer issues access and ID tokens.
type Signer interface {
	SignAccess(c token.AccessClaims, ttl time.Duration) (string, token.AccessClaims, error)
	SignID(c token.IDClaims, audience string, ttl time.Duration) (string, error)
}

// Observer is told about security-relevant events, for metrics, with the
// dialect that served the request.
type Observer interface {
	TokenIssued(dialect, kind string)
	LoginFailed(dialect, reason string)
	RefreshReuse(dialect string)
	// CleanupDeleted counts records the cleanup deleted from table.
	CleanupDeleted(table string, n int)
}

// Token kinds and failure reasons reported to the Observer.
const (
	KindAccess  = "access"
	KindRefresh = "refresh"
	KindID      = "id"

	// ReasonInvalidCredentials is an unknown account, a wrong password or
	// a disabled account alike: metrics anyone may scrape must not tell
	// which names are accounts. The audit log tells them apart.
	ReasonInvalidCredentials = "invalid_credentials" //nolint:gosec // G101: a metric label value
	ReasonThrottled          = "throttled"
	// ReasonClientAssertion is a refused API client assertion (JSON-RPC).
	ReasonClientAssertion = "client_assertion"
)

// Why a password login failed, in the audit log only.
const (
	failUnknownAccount = "unknown_account"
	failBadPassword    = "bad_password"
	failDisabled       = "disabled"
	failThrottled      = "throttled"
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

// Throttle bounds failed logins, per account and per client address.
type Throttle struct {
	MaxFailures int           // per account within Window; the next attempt is refused
	MaxPerAddr  int           // per client address within Window (0: 100)
	Window      time.Duration // sliding window
}

// Config holds the core's dependencies. Zero values get defaults in New.
type Config struct {
	Store     Store
	Signer    Signer
	Hasher    *password.Hasher
	Lifetimes Lifetimes
	// IDAudience is the aud of ID tokens (default "ideapool").
	IDAudience string
	Throttle   Throttle
	Observer   Observer
	// CleanupBatch bounds the rows one cleanup transaction deletes
	// (default 1000), so that it never holds a write lock for long.
	CleanupBatch int
	// CleanupPause is the least time the cleanup waits after a full batch
	// before the next (default 10ms). It waits at least as long as the
	// batch took, up to a second, so writers have the database at least
	// half of the time.
	CleanupPause time.Duration
	Now          func() time.Time
	Rand         io.Reader
	// Log receives warnings and the audit events.
	Log *slog.Logger
}

// Service is the account and session core.
type Service struct {
	store      Store
	signer     Signer
	hasher     *password.Hasher
	throttle   Throttle
	idAudience string
	obs        Observer
	now        func() time.Time
	rand       io.Reader
	log        *slog.Logger
	lifetimes  atomic.Pointer[Lifetimes]
	revStore   RevocationStore
	revoked    revocations
	cleanBatch int
	cleanPause time.Duration
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
		cfg.Throttle.MaxFailures = 10
	}
	if cfg.Throttle.MaxPerAddr == 0 {
		cfg.Throttle.MaxPerAddr = 100
	}
	if cfg.Throttle.Window == 0 {
		cfg.Throttle.Window = 15 * time.Minute
	}
	if cfg.IDAudience == "" {
		cfg.IDAudience = "ideapool"
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CleanupBatch == 0 {
		cfg.CleanupBatch = 1000
	}
	if cfg.CleanupPause == 0 {
		cfg.CleanupPause = 10 * time.Millisecond
	}
	s := &Service{store: cfg.Store, signer: cfg.Signer, hasher: cfg.Hasher, throttle: cfg.Throttle,
		idAudience: cfg.IDAudience, obs: cfg.Observer, revStore: cfg.Store, cleanBatch: cfg.CleanupBatch, cleanPause: cfg.CleanupPause,
		revoked: revocations{sids: map[string]time.Time{}}, now: cfg.Now, rand: cfg.Rand, log: cfg.Log}
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
	ClientID         string // set when an API client authenticated for the user
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
	u, err := s.Register(ctx, r, store.RoleMember)
	if err != nil {
		return Grant{}, err
	}
	g, err := s.beginSession(ctx, u, "")
	if err != nil {
		return Grant{}, err
	}
	s.audit(ctx, EventLoginSucceeded, u.ID, u.ID, slog.String("sid", g.SessionID), slog.String("method", "signup"))
	return g, nil
}

// Register creates an account with a role and no session (signup, and the
// operators' command line).
func (s *Service) Register(ctx context.Context, r SignupRequest, role store.Role) (store.User, error) {
	if bad := r.Problems(); len(bad) > 0 {
		return store.User{}, apperr.InvalidFields(bad)
	}
	if role != store.RoleMember && role != store.RoleAdmin {
		return store.User{}, apperr.InvalidFields(map[string]string{"role": "must be 1 (member) or 2 (admin)"})
	}
	email := NormalizeEmail(r.Email)
	username := strings.ToLower(strings.TrimSpace(r.Username))
	if username == "" {
		username = email
	}
	hash, err := s.hasher.Hash(ctx, r.Password)
	if err != nil {
		return store.User{}, busy(err)
	}
	id, err := randid.New(s.rand, 16)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{ID: id, Email: email, Username: username, Name: strings.TrimSpace(r.Name),
		PasswordHash: hash, Role: role, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.store.CreateUser(ctx, u); err != nil {
		var c *store.ConflictError
		if errors.As(err, &c) {
			field := c.Field
			if username == email {
				// The username defaulted to the email and a username never
				// holds an "@": the taken one is this email.
				field = "email"
			}
			return store.User{}, &apperr.Error{Code: apperr.Conflict, Message: field + " is already taken",
				Fields: map[string]string{field: "is already taken"}}
		}
		return store.User{}, fmt.Errorf("register user: %w", err)
	}
	actor := actorOf(ctx)
	if actor == "" {
		actor = u.ID // signing up
	}
	s.audit(ctx, EventUserCreated, actor, u.ID, slog.Int("role", int(u.Role)))
	return u, nil
}

// Login checks a password for a username or email and starts a session.
// A wrong password, an unknown account and a disabled one look the same.
// Failures count against the account and against the client's address;
// past either limit, attempts are refused until the window passes.
func (s *Service) Login(ctx context.Context, login, pw string) (Grant, error) {
	login = NormalizeEmail(login)
	if login == "" || pw == "" {
		return Grant{}, apperr.InvalidFields(missing(map[string]string{"login": login, "password": pw}))
	}
	// The account is found first so that its failures count together
	// whichever name (email or username) and dialect they came through;
	// names of no account are counted by name, and throttled the same way.
	u, err := s.store.UserByLogin(ctx, login)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Grant{}, fmt.Errorf("login: %w", err)
	}
	// A name of no account is counted by its digest: any length fits the
	// index, and the table holds no typed-in secrets by mistake.
	digest := sha256.Sum256([]byte(login))
	keys := []string{"login:" + hex.EncodeToString(digest[:16])}
	if found {
		keys[0] = "account:" + u.ID
	}
	limits := []int{s.throttle.MaxFailures}
	if addr := clientAddrOf(ctx); addr != "" {
		keys, limits = append(keys, "addr:"+throttleAddr(addr)), append(limits, s.throttle.MaxPerAddr)
	}
	now := s.now()
	// The attempt counts as a failure under every key before its password
	// is checked, and only then are the failures counted: concurrent
	// attempts see each other, so however they arrive, at most the limit
	// of them is ever checked within a window. A success, or an attempt
	// refused unchecked, takes its count back.
	attempt, err := randid.New(s.rand, 16)
	if err != nil {
		return Grant{}, err
	}
	for _, key := range keys {
		if err := s.store.RecordLoginAttempt(ctx, key, attempt, now.UTC()); err != nil {
			s.forgetAttempt(ctx, keys, attempt)
			return Grant{}, fmt.Errorf("login: %w", err)
		}
	}
	for i, key := range keys {
		if err := s.checkThrottle(ctx, key, limits[i], now); err != nil {
			s.forgetAttempt(ctx, keys, attempt)
			s.audit(ctx, EventLoginFailed, "", u.ID, slog.String("method", "password"), slog.String("reason", failThrottled))
			return Grant{}, err
		}
	}
	if !found {
		s.hasher.VerifyDummy(ctx, pw)
		return Grant{}, s.failed(ctx, failUnknownAccount, "")
	}
	if err := s.hasher.Verify(ctx, u.PasswordHash, pw); err != nil {
		if errors.Is(err, password.ErrMismatch) {
			return Grant{}, s.failed(ctx, failBadPassword, u.ID)
		}
		s.forgetAttempt(ctx, keys, attempt) // nothing was checked
		return Grant{}, busy(err)
	}
	if u.DisabledAt != nil {
		return Grant{}, s.failed(ctx, failDisabled, u.ID)
	}
	// A success clears the account's failures, and takes back only this
	// attempt from the address: a success with one account must not reset
	// an address that is guessing others.
	if err := s.store.ClearLoginFailures(ctx, keys[0]); err != nil {
		return Grant{}, fmt.Errorf("login: %w", err)
	}
	s.forgetAttempt(ctx, keys[1:], attempt)
	g, err := s.beginSession(ctx, u, "")
	if errors.Is(err, store.ErrRevoked) {
		return Grant{}, s.failed(ctx, failDisabled, u.ID) // disabled while its password was checked
	}
	if err != nil {
		return Grant{}, err
	}
	s.audit(ctx, EventLoginSucceeded, u.ID, u.ID, slog.String("sid", g.SessionID), slog.String("method", "password"))
	return g, nil
}

// forgetAttempt takes back the count of an attempt under keys, even when
// ctx has ended (the request timed out: that is when it matters).
func (s *Service) forgetAttempt(ctx context.Context, keys []string, attempt string) {
	ctx = context.WithoutCancel(ctx)
	for _, key := range keys {
		if err := s.store.ForgetLoginAttempt(ctx, key, attempt); err != nil {
			s.log.WarnContext(ctx, "could not take back a login attempt; it counts as a failure until the window passes",
				"error", err)
		}
	}
}

// badCredentials is the message for every failed login.
const badCredentials = "invalid email or password"

// failed is a checked attempt that failed: it stays counted under its
// keys. why goes to the audit log only; userID is "" for a name of no
// account.
func (s *Service) failed(ctx context.Context, why, userID string) error {
	s.obs.LoginFailed(DialectOf(ctx), ReasonInvalidCredentials)
	s.audit(ctx, EventLoginFailed, "", userID, slog.String("method", "password"), slog.String("reason", why))
	return apperr.New(apperr.Unauthorized, badCredentials)
}

// checkThrottle refuses an attempt when key had limit failures within the
// window before it (the count includes the attempt itself).
func (s *Service) checkThrottle(ctx context.Context, key string, limit int, now time.Time) error {
	n, oldest, err := s.store.LoginFailures(ctx, key, now.Add(-s.throttle.Window).UTC())
	if err != nil {
		return fmt.Errorf("check login throttle: %w", err)
	}
	if n <= limit {
		return nil
	}
	s.obs.LoginFailed(DialectOf(ctx), ReasonThrottled)
	wait := oldest.Add(s.throttle.Window).Sub(now)
	what := "this account"
	if strings.HasPrefix(key, "addr:") {
		what = "this address"
	}
	e := apperr.New(apperr.TooManyRequests, "too many failed logins for "+what+"; try again later")
	e.RetryAfter = time.Duration(math.Ceil(max(wait, time.Second).Seconds())) * time.Second
	return e
}

// throttleAddr is a client address as the per-address limit counts it:
// an IPv6 address by its /64, the network a client commonly has to itself
// (its hosts may pick any address in it, one per attempt); an IPv4 address,
// or an IPv4-mapped IPv6 one, whole. What is no address counts as it is.
func throttleAddr(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

// Logout ends the session of refresh if it belongs to userID. Like RFC 7009
// revocation, an unknown token or another user's token is not an error and
// leaves everything as it was.
func (s *Service) Logout(ctx context.Context, userID, refresh string) error {
	if refresh == "" {
		return apperr.InvalidFields(map[string]string{"refresh_token": "is required"})
	}
	// A token of the session rotated out long ago names it too.
	_, sess, _, err := s.findRefresh(ctx, refresh)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if sess.UserID != userID || sess.RevokedAt != nil {
		return nil
	}
	now := s.now().UTC()
	if err := s.store.RevokeSession(ctx, sess.ID, now); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	s.noteRevoked(sess, now)
	s.audit(ctx, EventSessionRevoked, userID, userID, slog.String("reason", RevokedLogout), slog.String("sid", sess.ID))
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

func (nopObserver) TokenIssued(string, string) {}
func (nopObserver) LoginFailed(string, string) {}
func (nopObserver) RefreshReuse(string)        {}
func (nopObserver) CleanupDeleted(string, int) {}
