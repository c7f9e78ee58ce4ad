-- Times are INTEGER Unix microseconds, UTC.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL CONSTRAINT users_email_key UNIQUE,
    username      TEXT    NOT NULL CONSTRAINT users_username_key UNIQUE,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
) STRICT;

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    hash           BLOB    NOT NULL PRIMARY KEY,
    session_id     TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    rotated_at     INTEGER,
    successor_hash BLOB
) STRICT;

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE ideas (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    TEXT    NOT NULL,
    impact     INTEGER NOT NULL,
    ease       INTEGER NOT NULL,
    confidence INTEGER NOT NULL,
    score_sum  INTEGER NOT NULL GENERATED ALWAYS AS (impact + ease + confidence) STORED,
    created_at INTEGER NOT NULL
) STRICT;

-- Serves ListIdeas: one user's ideas in listing order, no sort step.
CREATE INDEX ideas_listing_idx ON ideas (user_id, score_sum DESC, created_at DESC, id DESC);

CREATE TABLE login_failures (
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
) STRICT;

CREATE INDEX login_failures_key_at_idx ON login_failures (key, at);
