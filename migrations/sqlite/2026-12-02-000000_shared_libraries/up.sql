-- Shared libraries (DESIGN §9): a library has a name and members with roles; a user's own
-- library (created on first use) is the one whose `default_for` is that user.
-- `libraries.user_id` becomes `default_for`, NULL for the libraries users create besides it.
-- Every existing library's user becomes its owner. Exactly one owner per library: a partial
-- unique index.
--
-- SQLite cannot drop NOT NULL, so `libraries` is rebuilt (SQLite's documented procedure):
-- with foreign keys off, so that dropping the old table neither cascades to nor breaks the
-- rows that reference it (their REFERENCES libraries (id) name the new table after the
-- rename), and in one transaction of the script's own (metadata.toml).

PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE libraries_new (
    id          TEXT    PRIMARY KEY,
    default_for TEXT    UNIQUE,
    version     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    name        TEXT    NOT NULL DEFAULT 'My library'
);
INSERT INTO libraries_new (id, default_for, version, created_at, updated_at)
SELECT id, user_id, version, created_at, updated_at FROM libraries;
DROP TABLE libraries;
ALTER TABLE libraries_new RENAME TO libraries;

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

COMMIT;
PRAGMA foreign_keys = ON;
