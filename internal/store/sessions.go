package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// errAlreadyRotated is the conflict of rotating a token twice: the second
// presenter holds a stale (possibly stolen) token.
var errAlreadyRotated = fmt.Errorf("refresh token already rotated: %w", ErrConflict)

// CreateSession inserts s and its first refresh token t in one transaction.
// t.SessionID may be left empty; otherwise it must be s.ID. An empty secret
// is refused: it marks the sessions older than secrets.
func (s *sqlStore) CreateSession(ctx context.Context, sess Session, t RefreshToken) error {
	if len(sess.Secret) == 0 {
		return errors.New("create session: empty secret")
	}
	if t.SessionID == "" {
		t.SessionID = sess.ID
	}
	if t.SessionID != sess.ID {
		return errors.New("create session: refresh token names another session")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.bind(`INSERT INTO sessions
			(id, user_id, auth_time, secret, client_id, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			sess.ID, sess.UserID, dbTime(sess.AuthTime), sess.Secret, dbNullString(sess.ClientID),
			dbTime(sess.CreatedAt), dbTime(sess.ExpiresAt), dbNullTime(sess.RevokedAt))
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

func (s *sqlStore) insertRefreshToken(ctx context.Context, tx *sql.Tx, t RefreshToken) error {
	_, err := tx.ExecContext(ctx, s.d.bind(`INSERT INTO refresh_tokens
		(hash, session_id, created_at, rotated_at, successor_hash) VALUES (?, ?, ?, ?, ?)`),
		t.Hash, t.SessionID, dbTime(t.CreatedAt), dbNullTime(t.RotatedAt), dbBytes(t.SuccessorHash))
	return err
}

// RefreshTokenByHash returns the token with hash and its session.
func (s *sqlStore) RefreshTokenByHash(ctx context.Context, hash []byte) (RefreshToken, Session, error) {
	var (
		t                         RefreshToken
		sess                      Session
		tCreated, sAuth, sCreated int64
		sExpires                  int64
		tRotated, sRevoked        sql.NullInt64
		sClient                   sql.NullString
	)
	err := s.queryRow(ctx, `SELECT t.hash, t.session_id, t.created_at, t.rotated_at, t.successor_hash,
			s.id, s.user_id, s.auth_time, s.secret, s.client_id, s.created_at, s.expires_at, s.revoked_at
		FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
		WHERE t.hash = ?`, hash).Scan(
		&t.Hash, &t.SessionID, &tCreated, &tRotated, &t.SuccessorHash,
		&sess.ID, &sess.UserID, &sAuth, &sess.Secret, &sClient, &sCreated, &sExpires, &sRevoked)
	if err != nil {
		return RefreshToken{}, Session{}, fmt.Errorf("get refresh token: %w", s.d.mapErr(err))
	}
	t.CreatedAt, t.RotatedAt = goTime(tCreated), goNullTime(tRotated)
	sess.AuthTime, sess.CreatedAt, sess.ExpiresAt = goTime(sAuth), goTime(sCreated), goTime(sExpires)
	sess.RevokedAt = goNullTime(sRevoked)
	sess.ClientID = sClient.String
	if len(sess.Secret) == 0 {
		sess.Secret = nil // the drivers disagree on an empty blob
	}
	return t, sess, nil
}

// RotateRefreshToken marks old rotated and inserts next in one transaction.
// The conditional UPDATE is what makes a second rotation of old fail, even
// when two run at once. next.SessionID may be left empty; otherwise it must
// be old's session.
func (s *sqlStore) RotateRefreshToken(ctx context.Context, oldHash []byte, next RefreshToken, at time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var sessionID string
		err := tx.QueryRowContext(ctx, s.d.bind(`UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ?
			WHERE hash = ? AND rotated_at IS NULL RETURNING session_id`),
			dbTime(at), dbBytes(next.Hash), oldHash).Scan(&sessionID)
		if errors.Is(err, sql.ErrNoRows) {
			var one int
			err = tx.QueryRowContext(ctx, s.d.bind("SELECT 1 FROM refresh_tokens WHERE hash = ?"), oldHash).Scan(&one)
			if err == nil {
				return errAlreadyRotated
			}
			return err // ErrNoRows: unknown token
		}
		if err != nil {
			return err
		}
		if next.SessionID == "" {
			next.SessionID = sessionID
		}
		if next.SessionID != sessionID {
			return errors.New("successor names another session")
		}
		return s.insertRefreshToken(ctx, tx, next)
	})
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	return nil
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

// RevokeUserSessions revokes every not yet revoked session of userID.
func (s *sqlStore) RevokeUserSessions(ctx context.Context, userID string, at time.Time) error {
	if _, err := s.exec(ctx, "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", dbTime(at), userID); err != nil {
		return fmt.Errorf("revoke user sessions: %w", err)
	}
	return nil
}

// DeleteExpiredSessions deletes sessions with ExpiresAt before `before`;
// their refresh tokens go with them (ON DELETE CASCADE).
func (s *sqlStore) DeleteExpiredSessions(ctx context.Context, before time.Time) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM sessions WHERE expires_at < ?", dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(n), nil
}

// RevokedSessions returns the sessions revoked at or after since, oldest
// revocation first.
func (s *sqlStore) RevokedSessions(ctx context.Context, since time.Time) ([]RevokedSession, error) {
	rows, err := s.r.QueryContext(ctx, s.d.bind(`SELECT id, revoked_at FROM sessions
		WHERE revoked_at >= ? ORDER BY revoked_at, id`), dbTime(since))
	if err != nil {
		return nil, fmt.Errorf("list revoked sessions: %w", s.d.mapErr(err))
	}
	defer rows.Close()
	out := []RevokedSession{}
	for rows.Next() {
		var r RevokedSession
		var at int64
		if err := rows.Scan(&r.ID, &at); err != nil {
			return nil, fmt.Errorf("list revoked sessions: %w", s.d.mapErr(err))
		}
		r.RevokedAt = goTime(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked sessions: %w", s.d.mapErr(err))
	}
	return out, nil
}
