-- Times are bigint Unix microseconds, UTC, as in the SQLite schema, so both
-- backends share their queries.

CREATE TABLE users (
    id            text     NOT NULL PRIMARY KEY,
    email         text     NOT NULL CONSTRAINT users_email_key UNIQUE,
    username      text     NOT NULL CONSTRAINT users_username_key UNIQUE,
    name          text     NOT NULL,
    password_hash text     NOT NULL,
    role          integer  NOT NULL DEFAULT 1,
    created_at    bigint   NOT NULL,
    disabled_at   bigint
);

CREATE TABLE sessions (
    id         text   NOT NULL PRIMARY KEY,
    user_id    text   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  bigint NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    revoked_at bigint
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    hash           bytea  NOT NULL PRIMARY KEY,
    session_id     text   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at     bigint NOT NULL,
    rotated_at     bigint,
    successor_hash bytea
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE ideas (
    id         text     NOT NULL PRIMARY KEY,
    user_id    text     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    text     NOT NULL,
    impact     integer  NOT NULL,
    ease       integer  NOT NULL,
    confidence integer  NOT NULL,
    score_sum  integer  NOT NULL GENERATED ALWAYS AS (impact + ease + confidence) STORED,
    created_at bigint   NOT NULL
);

-- Serves ListIdeas: one user's ideas in listing order, no sort step.
CREATE INDEX ideas_listing_idx ON ideas (user_id, score_sum DESC, created_at DESC, id DESC);

CREATE TABLE login_failures (
    key text   NOT NULL,
    at  bigint NOT NULL
);

CREATE INDEX login_failures_key_at_idx ON login_failures (key, at);
