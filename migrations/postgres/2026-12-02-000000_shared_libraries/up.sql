-- Shared libraries (DESIGN §9): a library has a name and members with roles; a user's own
-- library (created on first use) is the one whose `default_for` is that user.
-- `libraries.user_id` becomes `default_for`, NULL for the libraries users create besides it.
-- Every existing library's user becomes its owner. Exactly one owner per library: a partial
-- unique index.

ALTER TABLE libraries RENAME COLUMN user_id TO default_for;
ALTER TABLE libraries ALTER COLUMN default_for DROP NOT NULL;
ALTER TABLE libraries ADD COLUMN name TEXT NOT NULL DEFAULT 'My library';

CREATE TABLE library_members (
    library_id  TEXT    NOT NULL REFERENCES libraries (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    added_at    BIGINT  NOT NULL,
    PRIMARY KEY (library_id, user_id)
);
CREATE UNIQUE INDEX library_members_one_owner ON library_members (library_id) WHERE role = 'owner';
CREATE INDEX library_members_by_user ON library_members (user_id);

INSERT INTO library_members (library_id, user_id, role, added_at)
SELECT id, default_for, 'owner', created_at FROM libraries;
