package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const apiClientColumns = "id, user_id, name, secret, public_jwk, created_at, revoked_at"

func scanAPIClient(sc scanner) (APIClient, error) {
	var (
		c         APIClient
		createdAt int64
		revoked   sql.NullInt64
	)
	err := sc.Scan(&c.ID, &c.UserID, &c.Name, &c.Secret, &c.PublicJWK, &createdAt, &revoked)
	c.CreatedAt = goTime(createdAt)
	c.RevokedAt = goNullTime(revoked)
	return c, err
}

// CreateAPIClient inserts c; an unknown c.UserID is ErrNotFound.
func (s *sqlStore) CreateAPIClient(ctx context.Context, c APIClient) error {
	// The table's CHECK says the same, but its violation would reach the
	// caller unclassified.
	if (len(c.Secret) == 0) == (len(c.PublicJWK) == 0) {
		return errors.New("create api client: want exactly one of secret and public key")
	}
	_, err := s.exec(ctx, "INSERT INTO api_clients ("+apiClientColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.UserID, c.Name, dbNonEmptyBytes(c.Secret), dbNonEmptyBytes(c.PublicJWK),
		dbTime(c.CreatedAt), dbNullTime(c.RevokedAt))
	if err != nil {
		return fmt.Errorf("create api client: %w", err)
	}
	return nil
}

// APIClientByID returns the client with id.
func (s *sqlStore) APIClientByID(ctx context.Context, id string) (APIClient, error) {
	c, err := scanAPIClient(s.queryRow(ctx, "SELECT "+apiClientColumns+" FROM api_clients WHERE id = ?", id))
	if err != nil {
		return APIClient{}, fmt.Errorf("get api client: %w", s.d.mapErr(err))
	}
	return c, nil
}

// ListAPIClients returns userID's clients, newest first (then by id), as
// api_clients_listing_idx holds them.
func (s *sqlStore) ListAPIClients(ctx context.Context, userID string) ([]APIClient, error) {
	rows, err := s.r.QueryContext(ctx, s.d.bind("SELECT "+apiClientColumns+` FROM api_clients
		WHERE user_id = ?
		ORDER BY created_at DESC, id DESC`), userID)
	if err != nil {
		return nil, fmt.Errorf("list api clients: %w", s.d.mapErr(err))
	}
	defer rows.Close()
	clients := []APIClient{}
	for rows.Next() {
		c, err := scanAPIClient(rows)
		if err != nil {
			return nil, fmt.Errorf("list api clients: %w", s.d.mapErr(err))
		}
		clients = append(clients, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api clients: %w", s.d.mapErr(err))
	}
	return clients, nil
}

// RevokeAPIClient revokes client id if userID owns it and it is live, and
// with it, in the same transaction, every live session it started: a
// revoked client may have been compromised. An unknown, foreign or already
// revoked client is ErrNotFound alike.
func (s *sqlStore) RevokeAPIClient(ctx context.Context, userID, id string, at time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.bind("UPDATE api_clients SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL"),
			dbTime(at), id, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, s.d.bind("UPDATE sessions SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL"),
			dbTime(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke api client: %w", err)
	}
	return nil
}

// errAssertionUsed is the conflict of presenting one client assertion twice.
var errAssertionUsed = fmt.Errorf("client assertion already used: %w", ErrConflict)

// assertionCleanupBatch bounds the expired assertion ids one
// UseClientAssertion deletes. Each call adds one row, so deleting up to this
// many keeps the table near its live size without a separate sweeper.
const assertionCleanupBatch = 100

// UseClientAssertion records (clientID, jti) until expiresAt.
//
// The upsert is the whole race: of concurrent inserts of one key, the
// database lets one in and makes the others see its row, which they may
// replace only once it has expired. The cleanup runs after it and skips the
// row just written, so a call never waits on another's cleanup.
func (s *sqlStore) UseClientAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.bind(`INSERT INTO client_assertions (client_id, jti, expires_at)
			VALUES (?, ?, ?)
			ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
			WHERE client_assertions.expires_at <= ?`),
			clientID, jti, dbTime(expiresAt), dbTime(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return errAssertionUsed
		}
		_, err = tx.ExecContext(ctx, s.d.bind(`DELETE FROM client_assertions WHERE (client_id, jti) IN (
			SELECT client_id, jti FROM client_assertions
			WHERE expires_at <= ? AND NOT (client_id = ? AND jti = ?)
			LIMIT ?`+s.d.skipLocked+`)`),
			dbTime(now), clientID, jti, assertionCleanupBatch)
		return err
	})
	if err != nil {
		return fmt.Errorf("use client assertion: %w", err)
	}
	return nil
}
