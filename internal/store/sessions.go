package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// errAlreadyRotated is the conflict of rotating a token twice: the second
// presenter holds a stale (possibly stolen) token.
var errAlreadyRotated = fmt.Errorf("refresh token already rotated: %w", ErrConflict)

// CreateSession inserts s and its first refresh token t in one transaction.
// t.SessionID may be left empty; otherwise it must be s.ID. An empty secret
// is refused: it marks the sessions older than secrets.
//
// The user (and the client) are read under a shared row lock: a disable, a
// role change or a client revocation, which updates that row before it
// revokes sessions, either commits first and is seen here, or waits for
// this transaction and then revokes the session it created. (SQLite runs
// one write transaction at a time, so there the read alone is enough.)
func (s *sqlStore) CreateSession(ctx context.Context, sess Session, t RefreshToken, role Role) error {
	if len(sess.Secret) == 0 {
		return errors.New("create session: empty secret")
	}
	if role == 0 {
		return errors.New("create session: no role")
	}
	if t.SessionID == "" {
		t.SessionID = sess.ID
	}
	if t.SessionID != sess.ID {
		return errors.New("create session: refresh token names another session")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			ended   sql.NullInt64
			current Role
		)
		err := tx.QueryRowContext(ctx, s.d.bind("SELECT disabled_at, role FROM users WHERE id = ?"+s.d.forShare), sess.UserID).Scan(&ended, &current)
		if errors.Is(err, sql.ErrNoRows) {
			return errForeignKey
		}
		if err != nil {
			return err
		}
		if ended.Valid {
			return errUserDisabled
		}
		if current != role {
			return errRoleChanged
		}
		if sess.ClientID != "" {
			err := tx.QueryRowContext(ctx, s.d.bind("SELECT revoked_at FROM api_clients WHERE id = ?"+s.d.forShare), sess.ClientID).Scan(&ended)
			if errors.Is(err, sql.ErrNoRows) {
				return errForeignKey
			}
			if err != nil {
				return err
			}
			if ended.Valid {
				return errClientRevoked
			}
		}
		_, err = tx.ExecContext(ctx, s.d.bind(`INSERT INTO sessions
			(id, user_id, auth_time, secret, client_id, created_at, expires_at, access_expires_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			sess.ID, sess.UserID, dbTime(sess.AuthTime), sess.Secret, dbNullString(sess.ClientID),
			dbTime(sess.CreatedAt), dbTime(sess.ExpiresAt), dbTime(sess.AccessExpiresAt), dbNullTime(sess.RevokedAt))
		if err != nil {
			return err
		}
		return s.insertRefreshToken(ctx, tx, t)
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// The refusals of writes that depend on a live user, client or session.
var (
	errUserDisabled   = fmt.Errorf("user disabled: %w", ErrRevoked)
	errClientRevoked  = fmt.Errorf("api client revoked: %w", ErrRevoked)
	errSessionRevoked = fmt.Errorf("session revoked: %w", ErrRevoked)
	errRoleChanged    = fmt.Errorf("the user's role changed: %w", ErrStale)
)

func (s *sqlStore) insertRefreshToken(ctx context.Context, tx *sql.Tx, t RefreshToken) error {
	_, err := tx.ExecContext(ctx, s.d.bind(`INSERT INTO refresh_tokens
		(hash, session_id, created_at, rotated_at, successor_hash, disposable) VALUES (?, ?, ?, ?, ?, ?)`),
		t.Hash, t.SessionID, dbTime(t.CreatedAt), dbNullTime(t.RotatedAt), dbBytes(t.SuccessorHash), t.Disposable)
	return err
}

// sessionColumns are the columns scanSession reads, of the sessions table
// aliased s.
const sessionColumns = "s.id, s.user_id, s.auth_time, s.secret, s.client_id, s.created_at, s.expires_at, s.access_expires_at, s.revoked_at"

// sessionScan holds the columns of a session while they are scanned.
type sessionScan struct {
	sess                           Session
	auth, created, expires, access int64
	revoked                        sql.NullInt64
	client                         sql.NullString
}

func (r *sessionScan) dest() []any {
	return []any{&r.sess.ID, &r.sess.UserID, &r.auth, &r.sess.Secret, &r.client, &r.created, &r.expires, &r.access, &r.revoked}
}

func (r *sessionScan) session() Session {
	sess := r.sess
	sess.AuthTime, sess.CreatedAt, sess.ExpiresAt = goTime(r.auth), goTime(r.created), goTime(r.expires)
	sess.AccessExpiresAt = goTime(r.access)
	sess.RevokedAt = goNullTime(r.revoked)
	sess.ClientID = r.client.String
	if len(sess.Secret) == 0 {
		sess.Secret = nil // the drivers disagree on an empty blob
	}
	return sess
}

// SessionByID returns the session with id.
func (s *sqlStore) SessionByID(ctx context.Context, id string) (Session, error) {
	var r sessionScan
	if err := s.queryRow(ctx, "SELECT "+sessionColumns+" FROM sessions s WHERE s.id = ?", id).Scan(r.dest()...); err != nil {
		return Session{}, fmt.Errorf("get session: %w", s.d.mapErr(err))
	}
	return r.session(), nil
}

// RefreshTokenByHash returns the token with hash and its session.
func (s *sqlStore) RefreshTokenByHash(ctx context.Context, hash []byte) (RefreshToken, Session, error) {
	var (
		t        RefreshToken
		tCreated int64
		tRotated sql.NullInt64
		r        sessionScan
	)
	err := s.queryRow(ctx, `SELECT t.hash, t.session_id, t.created_at, t.rotated_at, t.successor_hash, t.disposable, `+sessionColumns+`
		FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
		WHERE t.hash = ?`, hash).Scan(append([]any{&t.Hash, &t.SessionID, &tCreated, &tRotated, &t.SuccessorHash, &t.Disposable}, r.dest()...)...)
	if err != nil {
		return RefreshToken{}, Session{}, fmt.Errorf("get refresh token: %w", s.d.mapErr(err))
	}
	t.CreatedAt, t.RotatedAt = goTime(tCreated), goNullTime(tRotated)
	return t, r.session(), nil
}

// extendAccess is the statement that raises a live session's
// access_expires_at (args: the new expiry twice, then the session id). On
// PostgreSQL it also row-locks the session until the transaction ends, so
// a revocation of it waits, then sees what this transaction issued.
const extendAccess = `UPDATE sessions
	SET access_expires_at = CASE WHEN access_expires_at < ? THEN ? ELSE access_expires_at END
	WHERE id = ? AND revoked_at IS NULL`

// RotateRefreshToken marks old rotated, inserts next, extends the session's
// access expiry and deletes the session's disposable tokens rotated out
// before old, in one transaction. The session is written first: a revoked
// session refuses the rotation, and a revocation that comes later waits for
// it (so do other rotations of the session: each deletes at most the one
// disposable token the previous one left). The conditional UPDATE of old is
// what makes a second rotation of old fail, even when two run at once.
// next.SessionID may be left empty; otherwise it must be old's session.
func (s *sqlStore) RotateRefreshToken(ctx context.Context, oldHash []byte, next RefreshToken, at, accessExpiresAt time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var sessionID string
		err := tx.QueryRowContext(ctx, s.d.bind("SELECT session_id FROM refresh_tokens WHERE hash = ?"), oldHash).Scan(&sessionID)
		if err != nil {
			return err // ErrNoRows: unknown token
		}
		if err := s.extendAccess(ctx, tx, sessionID, accessExpiresAt); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.bind(`UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ?
			WHERE hash = ? AND rotated_at IS NULL`), dbTime(at), dbBytes(next.Hash), oldHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errAlreadyRotated
		}
		if next.SessionID == "" {
			next.SessionID = sessionID
		}
		if next.SessionID != sessionID {
			return errors.New("successor names another session")
		}
		if err := s.insertRefreshToken(ctx, tx, next); err != nil {
			return err
		}
		// The terms of refresh_tokens_rotated_disposable_idx, so that only
		// those rows are read, never a session's older ones.
		_, err = tx.ExecContext(ctx, s.d.bind(`DELETE FROM refresh_tokens
			WHERE session_id = ? AND rotated_at IS NOT NULL AND disposable AND hash <> ?`), sessionID, oldHash)
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	return nil
}

// ExtendSessionAccess raises the session's access expiry unless it is
// revoked.
func (s *sqlStore) ExtendSessionAccess(ctx context.Context, id string, accessExpiresAt time.Time) error {
	// One statement, committed on its own: no BEGIN and COMMIT round trips
	// (a refresh's on PostgreSQL), the same row lock while it runs.
	exp := dbTime(accessExpiresAt)
	n, err := s.exec(ctx, extendAccess, exp, exp, id)
	if err == nil && n == 0 {
		var one int
		if err = s.d.mapErr(s.queryRow(ctx, "SELECT 1 FROM sessions WHERE id = ?", id).Scan(&one)); err == nil {
			err = errSessionRevoked
		}
	}
	if err != nil {
		return fmt.Errorf("extend session access: %w", err)
	}
	return nil
}

func (s *sqlStore) extendAccess(ctx context.Context, tx *sql.Tx, id string, accessExpiresAt time.Time) error {
	exp := dbTime(accessExpiresAt)
	res, err := tx.ExecContext(ctx, s.d.bind(extendAccess), exp, exp, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	var one int
	err = tx.QueryRowContext(ctx, s.d.bind("SELECT 1 FROM sessions WHERE id = ?"), id).Scan(&one)
	if err != nil {
		return err // ErrNoRows: unknown session
	}
	return errSessionRevoked
}

// RevokeSession sets RevokedAt unless already set; an unknown id is
// ErrNotFound.
func (s *sqlStore) RevokeSession(ctx context.Context, id string, at time.Time) error {
	// Matching the row even when revoked keeps "exists" and "revoked"
	// apart in one statement.
	n, err := s.exec(ctx, "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", dbTime(at), id)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RevokedSessions returns the sessions revoked at or after since whose
// access tokens may live past liveAfter, oldest revocation first.
func (s *sqlStore) RevokedSessions(ctx context.Context, since, liveAfter time.Time) ([]RevokedSession, error) {
	rows, err := s.query(ctx, `SELECT id, revoked_at, access_expires_at FROM sessions
		WHERE revoked_at >= ? AND (access_expires_at >= ? OR revoked_at >= ?) ORDER BY revoked_at, id`,
		dbTime(since), dbTime(liveAfter), dbTime(liveAfter))
	if err != nil {
		return nil, fmt.Errorf("list revoked sessions: %w", s.d.mapErr(err))
	}
	defer rows.Close()
	out := []RevokedSession{}
	for rows.Next() {
		var r RevokedSession
		var at, access int64
		if err := rows.Scan(&r.ID, &at, &access); err != nil {
			return nil, fmt.Errorf("list revoked sessions: %w", s.d.mapErr(err))
		}
		r.RevokedAt, r.AccessExpiresAt = goTime(at), goTime(access)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked sessions: %w", s.d.mapErr(err))
	}
	return out, nil
}

// DeleteEndedSessions picks at most limit ended sessions whose access
// tokens have all expired, expired ones first (sessions_expires_at_idx),
// then revoked ones (sessions_revoked_access_idx), and in one short
// transaction deletes at most limit of their refresh tokens, then, within
// the same limit of rows, those of them that have no token left: however
// many tokens a session piled up, no transaction deletes more than limit
// rows. The sessions are locked when picked, before their tokens, in the
// order a rotation locks them, so the two never deadlock.
func (s *sqlStore) DeleteEndedSessions(ctx context.Context, now, accessBefore time.Time, limit int) (int, int, error) {
	if limit <= 0 {
		return 0, 0, errors.New("delete ended sessions: limit must be positive")
	}
	var sessions, tokens int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := s.selectIDs(ctx, tx, `SELECT id FROM sessions
			WHERE expires_at <= ? AND access_expires_at < ? LIMIT ?`+s.d.skipLocked, dbTime(now), dbTime(accessBefore), limit)
		if err != nil {
			return err
		}
		if len(ids) < limit {
			more, err := s.selectIDs(ctx, tx, `SELECT id FROM sessions
				WHERE revoked_at IS NOT NULL AND access_expires_at < ? AND expires_at > ? LIMIT ?`+s.d.skipLocked,
				dbTime(accessBefore), dbTime(now), limit-len(ids))
			if err != nil {
				return err
			}
			ids = append(ids, more...)
		}
		if len(ids) == 0 {
			return nil
		}
		in := placeholders(len(ids))
		res, err := tx.ExecContext(ctx, s.d.bind(`DELETE FROM refresh_tokens WHERE hash IN (
			SELECT hash FROM refresh_tokens WHERE session_id IN (`+in+`) LIMIT ?)`), append(ids, limit)...)
		if err != nil {
			return err
		}
		if tokens, err = res.RowsAffected(); err != nil || int(tokens) >= limit {
			return err
		}
		// Only sessions without tokens: deleting one with tokens would
		// cascade to all of them, however many.
		res, err = tx.ExecContext(ctx, s.d.bind(`DELETE FROM sessions WHERE id IN (
			SELECT s.id FROM sessions s WHERE s.id IN (`+in+`)
			AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id) LIMIT ?)`),
			append(ids, limit-int(tokens))...)
		if err != nil {
			return err
		}
		sessions, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("delete ended sessions: %w", err)
	}
	return int(sessions), int(tokens), nil
}

// selectIDs runs a query of one text column inside tx.
func (s *sqlStore) selectIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]any, error) {
	rows, err := tx.QueryContext(ctx, s.d.bind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// placeholders is "?, ?, ..." n times.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
