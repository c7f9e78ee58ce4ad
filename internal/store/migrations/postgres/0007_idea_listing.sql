-- A counter per user that every change of the user's ideas moves on, in the
-- same transaction: ListIdeas keeps where deep pages begin in memory, and
-- this version says, for any replica, whether what it keeps still holds.
CREATE TABLE idea_versions (
    user_id text   NOT NULL PRIMARY KEY,
    version bigint NOT NULL
);

CREATE FUNCTION ideas_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    uid text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        uid := OLD.user_id;
    ELSE
        uid := NEW.user_id;
    END IF;
    INSERT INTO idea_versions AS v (user_id, version) VALUES (uid, 1)
        ON CONFLICT (user_id) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER ideas_version AFTER INSERT OR UPDATE OR DELETE ON ideas
    FOR EACH ROW EXECUTE FUNCTION ideas_bump_version();
