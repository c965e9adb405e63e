-- One library per user today; every row is keyed by (library_id, id) so that ids are scoped to
-- a library (another user's row with the same id is invisible, never a conflict) and every
-- reference is checked inside the same library by a composite foreign key.
-- Ids are UUID text, timestamps are milliseconds since the epoch, tags are a JSON array:
-- the same column types on PostgreSQL and SQLite keep one portable schema.rs.

CREATE TABLE libraries (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL UNIQUE,
    version     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- Deleting a project: the store first moves its projects, blocks and prompts to its parent, in
-- the same transaction. The foreign keys below have no ON DELETE action on purpose: should any
-- code path forget to move them, the delete fails instead of losing or orphaning rows.
CREATE TABLE projects (
    library_id  TEXT    NOT NULL REFERENCES libraries (id) ON DELETE CASCADE,
    id          TEXT    NOT NULL,
    parent_id   TEXT,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (library_id, id),
    FOREIGN KEY (library_id, parent_id) REFERENCES projects (library_id, id),
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX projects_load ON projects (library_id, created_at, id);
CREATE INDEX projects_parent ON projects (library_id, parent_id);

CREATE TABLE context_blocks (
    library_id  TEXT    NOT NULL REFERENCES libraries (id) ON DELETE CASCADE,
    id          TEXT    NOT NULL,
    project_id  TEXT,
    title       TEXT    NOT NULL,
    content     TEXT    NOT NULL DEFAULT '',
    tags        TEXT    NOT NULL DEFAULT '[]',
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (library_id, id),
    FOREIGN KEY (library_id, project_id) REFERENCES projects (library_id, id)
);
CREATE INDEX context_blocks_load ON context_blocks (library_id, created_at, id);
CREATE INDEX context_blocks_project ON context_blocks (library_id, project_id);

CREATE TABLE saved_prompts (
    library_id  TEXT    NOT NULL REFERENCES libraries (id) ON DELETE CASCADE,
    id          TEXT    NOT NULL,
    project_id  TEXT,
    title       TEXT    NOT NULL,
    content     TEXT    NOT NULL DEFAULT '',
    tags        TEXT    NOT NULL DEFAULT '[]',
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (library_id, id),
    FOREIGN KEY (library_id, project_id) REFERENCES projects (library_id, id)
);
CREATE INDEX saved_prompts_load ON saved_prompts (library_id, created_at, id);
CREATE INDEX saved_prompts_project ON saved_prompts (library_id, project_id);

-- A prompt's ordered block references. Deleting a block removes it from every prompt
-- (ON DELETE CASCADE); deleting a prompt removes its references.
CREATE TABLE saved_prompt_blocks (
    library_id  TEXT    NOT NULL,
    prompt_id   TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    block_id    TEXT    NOT NULL,
    PRIMARY KEY (library_id, prompt_id, position),
    FOREIGN KEY (library_id, prompt_id) REFERENCES saved_prompts (library_id, id) ON DELETE CASCADE,
    FOREIGN KEY (library_id, block_id) REFERENCES context_blocks (library_id, id) ON DELETE CASCADE
);
CREATE INDEX saved_prompt_blocks_block ON saved_prompt_blocks (library_id, block_id);

-- The first answer to each idempotency key, written in the mutation's own transaction.
CREATE TABLE idempotency_keys (
    library_id      TEXT    NOT NULL REFERENCES libraries (id) ON DELETE CASCADE,
    key             TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    response        TEXT,
    library_version BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (library_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
