-- Session secrets, API clients and single-use client assertion ids.

-- Sessions created before this migration get an empty secret: callers must
-- treat an empty Session.Secret as "this session has none" (and, for
-- example, make its holder log in again), never use it as a key. The
-- default only fills the existing rows; new rows must name a secret.
ALTER TABLE sessions ADD COLUMN secret bytea NOT NULL DEFAULT ''::bytea;
ALTER TABLE sessions ALTER COLUMN secret DROP DEFAULT;

-- Exactly one of secret (HS256 shared secret) and public_jwk (JSON) is set.
-- Clients are revoked, never deleted, except with their user.
CREATE TABLE api_clients (
    id         text   NOT NULL PRIMARY KEY,
    user_id    text   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text   NOT NULL,
    secret     bytea,
    public_jwk bytea,
    created_at bigint NOT NULL,
    revoked_at bigint,
    CONSTRAINT api_clients_one_key CHECK ((secret IS NULL) <> (public_jwk IS NULL))
);

-- Serves ListAPIClients: one user's clients, newest first, no sort step.
CREATE INDEX api_clients_listing_idx ON api_clients (user_id, created_at DESC, id DESC);

-- NULL when the session was not started by an API client.
ALTER TABLE sessions ADD COLUMN client_id text REFERENCES api_clients (id) ON DELETE CASCADE;

CREATE INDEX sessions_client_id_idx ON sessions (client_id) WHERE client_id IS NOT NULL;

-- A row lives until expires_at; UseClientAssertion replaces or deletes it
-- after that.
CREATE TABLE client_assertions (
    client_id  text   NOT NULL,
    jti        text   NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE INDEX client_assertions_expires_at_idx ON client_assertions (expires_at);

-- Serves DeleteLoginFailuresBefore.
CREATE INDEX login_failures_at_idx ON login_failures (at);
