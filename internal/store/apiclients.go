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
// revoked client may have been compromised. The client row is written
// first, so a session being created for it (which locks that row to check
// it) either commits before and is revoked here, or waits and is refused.
// An unknown, foreign or already revoked client is ErrNotFound alike.
func (s *sqlStore) RevokeAPIClient(ctx context.Context, userID, id string, at time.Time) (int, error) {
	var revoked int64
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
		res, err = tx.ExecContext(ctx, s.d.bind("UPDATE sessions SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL"),
			dbTime(at), id)
		if err != nil {
			return err
		}
		revoked, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke api client: %w", err)
	}
	return int(revoked), nil
}

// errAssertionUsed is the conflict of presenting one client assertion twice.
var errAssertionUsed = fmt.Errorf("client assertion already used: %w", ErrConflict)

// UseClientAssertion records (clientID, jti) until expiresAt; now is the
// time of the write, which the caller reads just before it.
//
// The upsert is the whole race: of concurrent inserts of one key, the
// database lets one in and makes the others see its row, which they may
// replace only once it has expired. Expired rows are otherwise deleted by
// DeleteClientAssertions.
func (s *sqlStore) UseClientAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error {
	n, err := s.exec(ctx, `INSERT INTO client_assertions (client_id, jti, expires_at)
		VALUES (?, ?, ?)
		ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE client_assertions.expires_at <= ?`,
		clientID, jti, dbTime(expiresAt), dbTime(now))
	if err == nil && n == 0 {
		err = errAssertionUsed
	}
	if err != nil {
		return fmt.Errorf("use client assertion: %w", err)
	}
	return nil
}

// DeleteClientAssertions deletes at most limit records expired at now.
func (s *sqlStore) DeleteClientAssertions(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("delete client assertions: limit must be positive")
	}
	n, err := s.exec(ctx, `DELETE FROM client_assertions WHERE (client_id, jti) IN (
		SELECT client_id, jti FROM client_assertions WHERE expires_at <= ? LIMIT ?)`, dbTime(now), limit)
	if err != nil {
		return 0, fmt.Errorf("delete client assertions: %w", err)
	}
	return int(n), nil
}
