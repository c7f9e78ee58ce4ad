package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const userColumns = "id, email, username, name, password_hash, role, created_at, disabled_at"

func scanUser(sc scanner) (User, error) {
	var (
		u         User
		createdAt int64
		disabled  sql.NullInt64
	)
	err := sc.Scan(&u.ID, &u.Email, &u.Username, &u.Name, &u.PasswordHash, &u.Role, &createdAt, &disabled)
	u.CreatedAt = goTime(createdAt)
	u.DisabledAt = goNullTime(disabled)
	return u, err
}

// CreateUser inserts u. A zero Role is stored as RoleMember.
func (s *sqlStore) CreateUser(ctx context.Context, u User) error {
	if u.Role == 0 {
		u.Role = RoleMember
	}
	_, err := s.exec(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		u.ID, u.Email, u.Username, u.Name, u.PasswordHash, int(u.Role), dbTime(u.CreatedAt), dbNullTime(u.DisabledAt))
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// UserByID returns the user with id.
func (s *sqlStore) UserByID(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return User{}, fmt.Errorf("get user by id: %w", s.d.mapErr(err))
	}
	return u, nil
}

// UserByLogin prefers a username match should login be one user's username
// and another's email.
func (s *sqlStore) UserByLogin(ctx context.Context, login string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userColumns+` FROM users
		WHERE username = ? OR email = ?
		ORDER BY CASE WHEN username = ? THEN 0 ELSE 1 END
		LIMIT 1`, login, login, login))
	if err != nil {
		return User{}, fmt.Errorf("get user by login: %w", s.d.mapErr(err))
	}
	return u, nil
}

// ListUsers returns every user, oldest first.
func (s *sqlStore) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", s.d.mapErr(err))
	}
	defer rows.Close()
	users := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", s.d.mapErr(err))
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", s.d.mapErr(err))
	}
	return users, nil
}

// UpdateUser changes user id and revokes its sessions as u says, in one
// transaction: the users row is written first, so a session being created
// (which locks that row to check it) either commits before and is revoked
// here, or waits and sees the change.
func (s *sqlStore) UpdateUser(ctx context.Context, id string, u UserUpdate) (int, error) {
	if u.DisabledAt != nil && u.Enable {
		return 0, errors.New("update user: disable and enable at once")
	}
	var revoked int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		set, args := "id = id", []any{}
		if u.Role != 0 {
			set, args = set+", role = ?", append(args, int(u.Role))
		}
		switch {
		case u.DisabledAt != nil:
			set, args = set+", disabled_at = ?", append(args, dbTime(*u.DisabledAt))
		case u.Enable:
			set += ", disabled_at = NULL"
		}
		res, err := tx.ExecContext(ctx, s.d.bind("UPDATE users SET "+set+" WHERE id = ?"), append(args, id)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		if u.RevokeSessionsAt == nil {
			return nil
		}
		res, err = tx.ExecContext(ctx, s.d.bind("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"),
			dbTime(*u.RevokeSessionsAt), id)
		if err != nil {
			return err
		}
		revoked, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("update user: %w", err)
	}
	return int(revoked), nil
}
