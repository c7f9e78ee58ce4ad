package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/store"
)

// The operators' account commands (`ideapool users ...`). Each changes the
// user and revokes what the change invalidates in one transaction; who
// acted comes from the context (WithActor).

// DisableUser disables the account named login (a username or an email)
// and revokes every session of it: their refresh tokens stop at once, their
// access tokens within a poll of the revocation list. It returns the user
// and how many sessions it revoked.
func (s *Service) DisableUser(ctx context.Context, login string) (store.User, int, error) {
	u, err := s.userByLogin(ctx, login)
	if err != nil {
		return store.User{}, 0, err
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	n, err := s.store.UpdateUser(ctx, u.ID, store.UserUpdate{DisabledAt: &at, RevokeSessionsAt: &at})
	if err != nil {
		return store.User{}, 0, fmt.Errorf("disable user: %w", err)
	}
	s.syncAfterRevoking(ctx, n)
	u.DisabledAt = &at
	s.audit(ctx, EventUserDisabled, "", u.ID)
	s.auditRevoked(ctx, "", u.ID, RevokedUserDisabled, n)
	return u, n, nil
}

// EnableUser enables the account named login again. Its sessions stay
// revoked: it signs in anew.
func (s *Service) EnableUser(ctx context.Context, login string) (store.User, error) {
	u, err := s.userByLogin(ctx, login)
	if err != nil {
		return store.User{}, err
	}
	if _, err := s.store.UpdateUser(ctx, u.ID, store.UserUpdate{Enable: true}); err != nil {
		return store.User{}, fmt.Errorf("enable user: %w", err)
	}
	u.DisabledAt = nil
	s.audit(ctx, EventUserEnabled, "", u.ID)
	return u, nil
}

// SetRole gives the account named login a role. A change revokes the
// user's sessions: their tokens carry the old role in their groups claim,
// and a demoted admin must not keep acting as one. Setting the role it
// already has changes nothing. It returns the user and how many sessions
// it revoked.
func (s *Service) SetRole(ctx context.Context, login string, role store.Role) (store.User, int, error) {
	if role != store.RoleMember && role != store.RoleAdmin {
		return store.User{}, 0, apperr.InvalidFields(map[string]string{"role": "must be 1 (member) or 2 (admin)"})
	}
	u, err := s.userByLogin(ctx, login)
	if err != nil {
		return store.User{}, 0, err
	}
	if u.Role == role {
		return u, 0, nil
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	n, err := s.store.UpdateUser(ctx, u.ID, store.UserUpdate{Role: role, RevokeSessionsAt: &at})
	if err != nil {
		return store.User{}, 0, fmt.Errorf("set role: %w", err)
	}
	s.syncAfterRevoking(ctx, n)
	old := u.Role
	u.Role = role
	s.audit(ctx, EventUserRoleChanged, "", u.ID, slog.Int("old_role", int(old)), slog.Int("role", int(role)))
	s.auditRevoked(ctx, "", u.ID, RevokedRoleChanged, n)
	return u, n, nil
}

func (s *Service) userByLogin(ctx context.Context, login string) (store.User, error) {
	u, err := s.store.UserByLogin(ctx, NormalizeEmail(login))
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, apperr.Newf(apperr.NotFound, "no user with username or email %q", login)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("find user: %w", err)
	}
	return u, nil
}
