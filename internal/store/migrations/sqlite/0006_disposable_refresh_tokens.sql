-- A disposable refresh token names its session and carries the session's
-- tag, so the account core knows it as a token of that session even
-- without its row: once it is rotated out and is no longer the newest
-- rotated-out token of its session, RotateRefreshToken deletes its row.
-- Tokens issued before this version (0) stay until their session is
-- deleted: without their rows, their reuse could not be recognised.
ALTER TABLE refresh_tokens ADD COLUMN disposable INTEGER NOT NULL DEFAULT 0 CHECK (disposable IN (0, 1));

-- Serves that deletion: the rotated-out disposable tokens of one session,
-- at most one in the index at a time.
CREATE INDEX refresh_tokens_rotated_disposable_idx ON refresh_tokens (session_id)
WHERE rotated_at IS NOT NULL AND disposable;
