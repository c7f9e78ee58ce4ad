-- The latest expiry of an access token issued for a session: a revoked
-- session stays on the revocation list, and in the table, until then,
-- whatever the access lifetime is now.
ALTER TABLE sessions ADD COLUMN access_expires_at bigint NOT NULL DEFAULT 0;
ALTER TABLE sessions ALTER COLUMN access_expires_at DROP DEFAULT;

-- Sessions from before this version did not record it. Their access
-- tokens were issued before expires_at with a lifetime no longer than the
-- session's own (the refresh lifetime is never shorter than the access
-- lifetime), so this bounds them.
UPDATE sessions SET access_expires_at = expires_at + (expires_at - created_at);

-- Serves the revocation list's first read and the cleanup of revoked
-- sessions.
CREATE INDEX sessions_revoked_access_idx ON sessions (access_expires_at) WHERE revoked_at IS NOT NULL;

-- Before this version, revoking an API client or disabling a user could
-- leave sessions live (clients revoked before their sessions were, a
-- disable interrupted between its two writes): they end now, as they
-- would have then.
UPDATE sessions s SET revoked_at = c.revoked_at FROM api_clients c
WHERE s.revoked_at IS NULL AND c.id = s.client_id AND c.revoked_at IS NOT NULL;
UPDATE sessions s SET revoked_at = u.disabled_at FROM users u
WHERE s.revoked_at IS NULL AND u.id = s.user_id AND u.disabled_at IS NOT NULL;
