-- A login is counted as a failure before its password is checked, so that
-- concurrent attempts see each other; attempt names the row so that a
-- success (or a throttled attempt) takes back exactly its own.
ALTER TABLE login_failures ADD COLUMN attempt TEXT NOT NULL DEFAULT '';
