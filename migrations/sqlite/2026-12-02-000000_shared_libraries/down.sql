-- Back to one library per user: the libraries that are nobody's default go, with their rows.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
DROP TABLE library_members;
DELETE FROM projects WHERE library_id IN (SELECT id FROM libraries WHERE default_for IS NULL);
DELETE FROM context_blocks WHERE library_id IN (SELECT id FROM libraries WHERE default_for IS NULL);
DELETE FROM saved_prompt_blocks WHERE library_id IN (SELECT id FROM libraries WHERE default_for IS NULL);
DELETE FROM saved_prompts WHERE library_id IN (SELECT id FROM libraries WHERE default_for IS NULL);
DELETE FROM idempotency_keys WHERE library_id IN (SELECT id FROM libraries WHERE default_for IS NULL);
CREATE TABLE libraries_old (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL UNIQUE,
    version     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
INSERT INTO libraries_old (id, user_id, version, created_at, updated_at)
SELECT id, default_for, version, created_at, updated_at FROM libraries WHERE default_for IS NOT NULL;
DROP TABLE libraries;
ALTER TABLE libraries_old RENAME TO libraries;
COMMIT;
PRAGMA foreign_keys = ON;
