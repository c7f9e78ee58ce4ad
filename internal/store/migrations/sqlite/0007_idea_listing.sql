-- A counter per user that every change of the user's ideas moves on, in the
-- same transaction: ListIdeas keeps where deep pages begin in memory, and
-- this version says, for any replica, whether what it keeps still holds.
CREATE TABLE idea_versions (
    user_id TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
) STRICT;

CREATE TRIGGER ideas_version_insert AFTER INSERT ON ideas BEGIN
    INSERT INTO idea_versions (user_id, version) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER ideas_version_update AFTER UPDATE ON ideas BEGIN
    INSERT INTO idea_versions (user_id, version) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER ideas_version_delete AFTER DELETE ON ideas BEGIN
    INSERT INTO idea_versions (user_id, version) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
END;
