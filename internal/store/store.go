// Package store persists ideapool's records (users, sessions, refresh tokens,
// API clients, used client assertion ids, ideas, login failures) in SQLite or
// PostgreSQL behind one set of methods.
//
// The records here are plain data; the rules about them (validation, hashing,
// expiry) live in the domain packages that use the store. Every method that
// writes returns only after the write is durable.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound means no record matched (including a record owned by
	// another user, so callers cannot tell the two apart).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a uniqueness rule was violated. The returned error
	// wraps it in a *ConflictError naming the field.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the database could not be reached or did not
	// answer in time; callers map it to 503.
	ErrUnavailable = errors.New("database unavailable")
	// ErrRevoked means a write was refused because what it depends on has
	// ended: the user is disabled, or the API client or the session is
	// revoked. The check and the write are one transaction, so a
	// revocation that commits first is always seen.
	ErrRevoked = errors.New("revoked")
	// ErrStale means a write was refused because what the caller read
	// before it has changed since: a session signed with the role its user
	// no longer has. Read again and decide anew.
	ErrStale = errors.New("stale")
)

// ConflictError names the unique field that was already taken ("email",
// "username" or "id").
type ConflictError struct{ Field string }

func (e *ConflictError) Error() string { return e.Field + " already taken" }

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Role is a user's numeric role.
type Role int

const (
	// RoleMember is an ordinary user, the default for new accounts.
	RoleMember Role = 1
	// RoleAdmin is an administrator; what it may do beyond a member is
	// decided by the domain packages.
	RoleAdmin Role = 2
)

// User is an account. Email and Username are stored lower-case.
type User struct {
	ID           string
	Email        string
	Username     string // equals Email when the user chose none
	Name         string
	PasswordHash string // PHC string
	Role         Role
	CreatedAt    time.Time
	DisabledAt   *time.Time
}

// Session is one login. It ends at ExpiresAt (absolute, never extended) or
// when RevokedAt is set.
type Session struct {
	ID       string
	UserID   string
	AuthTime time.Time
	// Secret is chosen by the caller (32 random bytes) and required for new
	// sessions. It is empty (nil) only for sessions created before schema
	// version 2, which had none: never use an empty Secret as a key.
	Secret []byte
	// ClientID names the APIClient that started the session, "" for none.
	ClientID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// AccessExpiresAt is the latest expiry of an access token issued for
	// the session: a revocation must be remembered until then, whatever
	// the access lifetime is now.
	AccessExpiresAt time.Time
	RevokedAt       *time.Time
}

// RevokedSession is one entry of the revocation list.
type RevokedSession struct {
	ID              string
	RevokedAt       time.Time
	AccessExpiresAt time.Time
}

// UserUpdate is a change to an account. Zero fields change nothing.
type UserUpdate struct {
	// Role, when not zero, becomes the user's role.
	Role Role
	// DisabledAt, when set, disables the user at that time; Enable clears
	// it. At most one of the two.
	DisabledAt *time.Time
	Enable     bool
	// RevokeSessionsAt, when set, revokes every live session of the user
	// at that time, in the same transaction as the change.
	RevokeSessionsAt *time.Time
}

// RefreshToken is the stored form of an opaque refresh token: only its hash.
// A rotated token has RotatedAt set and names its successor.
type RefreshToken struct {
	Hash          []byte
	SessionID     string
	CreatedAt     time.Time
	RotatedAt     *time.Time
	SuccessorHash []byte
	// Disposable says the caller recognises the token without its row:
	// once it is rotated out and another token of its session is rotated
	// out after it, RotateRefreshToken deletes it. Other tokens stay until
	// their session is deleted.
	Disposable bool
}

// APIClient is a machine client of a user. Exactly one of Secret (HS256
// shared secret, kept only because verification needs it) and PublicJWK
// (a registered public key, JSON) is set.
type APIClient struct {
	ID        string
	UserID    string
	Name      string
	Secret    []byte
	PublicJWK []byte
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Idea belongs to one user. CreatedAt keeps sub-second precision
// (microseconds) so ties within a second still order by creation.
type Idea struct {
	ID         string
	UserID     string
	Content    string
	Impact     int
	Ease       int
	Confidence int
	CreatedAt  time.Time
}

// Store is the full set of operations both backends provide. Domain
// packages depend on smaller interfaces of their own.
type Store interface {
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error

	// CreateUser inserts u; a taken email or username is a *ConflictError.
	CreateUser(ctx context.Context, u User) error
	UserByID(ctx context.Context, id string) (User, error)
	// UserByLogin finds a user by username or email (both lower-case).
	UserByLogin(ctx context.Context, login string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser applies u to user id in one transaction and returns how
	// many sessions it revoked. An unknown id is ErrNotFound.
	UpdateUser(ctx context.Context, id string, u UserUpdate) (revoked int, err error)

	// CreateSession inserts s together with its first refresh token,
	// atomically. role is the user's role that the session's first tokens
	// were signed with. s.Secret must not be empty; an s.UserID or
	// s.ClientID naming no record is ErrNotFound. A disabled user or a
	// revoked client is ErrRevoked, and a user whose role is no longer role
	// is ErrStale, checked in the same transaction under a lock that a
	// concurrent disable, role change or client revocation waits for: a
	// session is never created that such a change misses.
	CreateSession(ctx context.Context, s Session, t RefreshToken, role Role) error
	// RefreshTokenByHash returns the token and its session, Secret and
	// ClientID included.
	RefreshTokenByHash(ctx context.Context, hash []byte) (RefreshToken, Session, error)
	// SessionByID returns the session with id, Secret and ClientID
	// included.
	SessionByID(ctx context.Context, id string) (Session, error)
	// RotateRefreshToken marks old as rotated at `at` with successor next,
	// inserts next, and extends the session's AccessExpiresAt to at least
	// accessExpiresAt, atomically: only if old was not already rotated
	// (ErrConflict otherwise) and its session is not revoked (ErrRevoked).
	// In the same transaction it deletes the session's disposable tokens
	// rotated out before old, so a session keeps at most its current
	// token and the one it replaced of those.
	RotateRefreshToken(ctx context.Context, oldHash []byte, next RefreshToken, at, accessExpiresAt time.Time) error
	// ExtendSessionAccess raises the session's AccessExpiresAt to at least
	// accessExpiresAt, unless it is revoked (ErrRevoked); an unknown id is
	// ErrNotFound.
	ExtendSessionAccess(ctx context.Context, id string, accessExpiresAt time.Time) error
	// RevokeSession sets RevokedAt on the session if it is not yet revoked.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokedSessions lists the sessions revoked at or after since whose
	// access tokens may outlive liveAfter (AccessExpiresAt or RevokedAt at
	// or after it), oldest revocation first: the replicated revocation
	// list.
	RevokedSessions(ctx context.Context, since, liveAfter time.Time) ([]RevokedSession, error)
	// DeleteEndedSessions deletes at most limit rows in one transaction,
	// refresh tokens first: the refresh tokens of sessions that ended
	// (expired at or before now, or revoked) and whose every access token
	// expired before accessBefore, then such sessions once they have no
	// token left. It returns how many of each it deleted; fewer than limit
	// rows in all means nothing more is left to delete.
	DeleteEndedSessions(ctx context.Context, now, accessBefore time.Time, limit int) (sessions, refreshTokens int, err error)

	// LoginFailures counts failures under key at or after since, and returns
	// the oldest of them (zero time when count is 0).
	LoginFailures(ctx context.Context, key string, since time.Time) (count int, oldest time.Time, err error)
	// RecordLoginAttempt counts a login attempt under key as a failure
	// before its outcome is known; ForgetLoginAttempt takes it back.
	RecordLoginAttempt(ctx context.Context, key, attempt string, at time.Time) error
	ForgetLoginAttempt(ctx context.Context, key, attempt string) error
	// ClearLoginFailures forgets the failures under key (after a success).
	ClearLoginFailures(ctx context.Context, key string) error
	// DeleteLoginFailuresBefore deletes at most limit failures of any key
	// recorded before `before`, in one transaction, and returns how many.
	DeleteLoginFailuresBefore(ctx context.Context, before time.Time, limit int) (int, error)

	// CreateAPIClient inserts c, which must carry exactly one of Secret and
	// PublicJWK. A taken id is a *ConflictError{Field: "id"}; an unknown
	// c.UserID is ErrNotFound.
	CreateAPIClient(ctx context.Context, c APIClient) error
	// APIClientByID returns the client with id, revoked or not.
	APIClientByID(ctx context.Context, id string) (APIClient, error)
	// ListAPIClients returns a user's clients, newest first, revoked ones
	// included; none is an empty slice.
	ListAPIClients(ctx context.Context, userID string) ([]APIClient, error)
	// RevokeAPIClient sets RevokedAt on client id and, in the same
	// transaction, revokes every live session the client started; it
	// returns how many. It is ErrNotFound unless userID owns the client and
	// it is not yet revoked.
	RevokeAPIClient(ctx context.Context, userID, id string, at time.Time) (revokedSessions int, err error)
	// UseClientAssertion records jti for clientID until expiresAt. It returns
	// ErrConflict when the same (clientID, jti) was already used and has not
	// yet expired at now (expired means expiresAt <= now), where now is the
	// time the record is written. Of concurrent calls with one (clientID,
	// jti), exactly one succeeds.
	UseClientAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error
	// DeleteClientAssertions deletes at most limit records that expired at
	// or before now, in one transaction, and returns how many.
	DeleteClientAssertions(ctx context.Context, now time.Time, limit int) (int, error)

	// LockCleanup makes this process the one that deletes ended records
	// until unlock is called: ok is false when another process holds the
	// lock (PostgreSQL; SQLite serializes writers anyway, so there it is
	// always granted).
	LockCleanup(ctx context.Context) (unlock func(), ok bool, err error)

	CreateIdea(ctx context.Context, i Idea) error
	// UpdateIdea replaces content and scores of the idea with i.ID owned by
	// i.UserID and returns the stored idea (CreatedAt unchanged).
	UpdateIdea(ctx context.Context, i Idea) (Idea, error)
	DeleteIdea(ctx context.Context, userID, id string) error
	// ListIdeas returns a user's ideas, highest (impact+ease+confidence)
	// first, ties newest first, then by id: a total, stable order.
	ListIdeas(ctx context.Context, userID string, limit, offset int) ([]Idea, error)
}
