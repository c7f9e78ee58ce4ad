package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
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

// UserByEmail returns the user with email (lower-case).
func (s *sqlStore) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE email = ?", email))
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", s.d.mapErr(err))
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

// SetUserRole changes the role of user id.
func (s *sqlStore) SetUserRole(ctx context.Context, id string, role Role) error {
	n, err := s.exec(ctx, "UPDATE users SET role = ? WHERE id = ?", int(role), id)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set user role: %w", err)
	}
	return nil
}

// SetUserDisabled disables user id at `at`, or enables it when at is nil.
func (s *sqlStore) SetUserDisabled(ctx context.Context, id string, at *time.Time) error {
	n, err := s.exec(ctx, "UPDATE users SET disabled_at = ? WHERE id = ?", dbNullTime(at), id)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	return nil
}
