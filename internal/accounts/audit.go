package accounts

import (
	"context"
	"log/slog"
)

// The audit events: one log line each, written by Service.audit and
// nowhere else. Every line has audit=true, event, actor_id, subject_id,
// dialect, client_addr and request_id (empty when unknown), plus the
// event's own fields named here. None ever holds a password, a token, a
// refresh token or a client secret.
const (
	// EventUserCreated: an account was created (signup, `users create`).
	// Fields: role.
	EventUserCreated = "user_created"
	// EventLoginSucceeded: a session started. Fields: sid, method
	// (password, client_assertion), client_id.
	EventLoginSucceeded = "login_succeeded"
	// EventLoginFailed: a sign-in was refused. Fields: method, reason
	// (unknown_account, bad_password, disabled, throttled, or the client
	// assertion's reason), client_id. The subject is the account when it
	// exists; a name that matches no account is never logged (it may be a
	// password typed into the wrong field).
	EventLoginFailed = "login_failed"
	// EventRefreshReuse: a rotated-out refresh token was presented again.
	// Fields: sid.
	EventRefreshReuse = "refresh_reuse_detected"
	// EventSessionRevoked: sessions ended before their time. Fields:
	// reason (logout, reuse, user_disabled, role_changed, client_revoked),
	// sid (one session) or sessions (how many), client_id.
	EventSessionRevoked = "session_revoked"
	// EventClientCreated and EventClientRevoked: an API client was
	// registered or revoked. The subject is the client. Fields: user_id,
	// kind (created).
	EventClientCreated = "api_client_created"
	EventClientRevoked = "api_client_revoked"
	// EventUserRoleChanged: fields old_role, role. EventUserDisabled and
	// EventUserEnabled: no fields of their own.
	EventUserRoleChanged = "user_role_changed"
	EventUserDisabled    = "user_disabled"
	EventUserEnabled     = "user_enabled"
)

// Session revocation reasons (the reason of EventSessionRevoked).
const (
	RevokedLogout        = "logout"
	RevokedReuse         = "reuse"
	RevokedUserDisabled  = "user_disabled"
	RevokedRoleChanged   = "role_changed"
	RevokedClientRevoked = "client_revoked"
)

// auditMessages are the lines' messages, a sentence for people; programs
// filter on audit and event.
var auditMessages = map[string]string{
	EventUserCreated:     "account created",
	EventLoginSucceeded:  "sign-in succeeded",
	EventLoginFailed:     "sign-in failed",
	EventRefreshReuse:    "refresh token reuse detected",
	EventSessionRevoked:  "sessions revoked",
	EventClientCreated:   "API client created",
	EventClientRevoked:   "API client revoked",
	EventUserRoleChanged: "account role changed",
	EventUserDisabled:    "account disabled",
	EventUserEnabled:     "account enabled",
}

// auditRevoked writes the session_revoked line of a bulk revocation, when
// it revoked any.
func (s *Service) auditRevoked(ctx context.Context, actor, subject, reason string, n int, attrs ...slog.Attr) {
	if n == 0 {
		return
	}
	s.audit(ctx, EventSessionRevoked, actor, subject, append([]slog.Attr{slog.String("reason", reason), slog.Int("sessions", n)}, attrs...)...)
}

// audit writes the one line of an audit event. actor is who acted (a user
// id, or the context's actor such as "cli" when empty), subject what it
// acted on (a user or client id). Failures and detected attacks are
// warnings, the rest information.
func (s *Service) audit(ctx context.Context, event, actor, subject string, attrs ...slog.Attr) {
	level := slog.LevelInfo
	if event == EventLoginFailed || event == EventRefreshReuse {
		level = slog.LevelWarn
	}
	if actor == "" {
		actor = actorOf(ctx)
	}
	base := []slog.Attr{
		slog.Bool("audit", true),
		slog.String("event", event),
		slog.String("actor_id", actor),
		slog.String("subject_id", subject),
		slog.String("dialect", DialectOf(ctx)),
		slog.String("client_addr", clientAddrOf(ctx)),
		slog.String("request_id", requestIDOf(ctx)),
	}
	s.log.LogAttrs(context.WithoutCancel(ctx), level, auditMessages[event], append(base, attrs...)...)
}
