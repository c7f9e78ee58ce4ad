-- Serves RevokedSessions: the replicated list of revoked session ids that
-- every replica polls to refuse their access tokens within seconds.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at);
