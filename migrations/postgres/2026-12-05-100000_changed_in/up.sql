-- Incremental reloads (DESIGN §10): each row remembers the library version that last wrote it,
-- so a reload after version N reads only the rows with changed_in > N (this index), not every
-- row's stamp. Rows written before this migration keep 0: any reload already holds them. The
-- library remembers the version of its last deletion: only a reload across one reads every id.
ALTER TABLE libraries ADD COLUMN deleted_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN changed_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE context_blocks ADD COLUMN changed_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE saved_prompts ADD COLUMN changed_in BIGINT NOT NULL DEFAULT 0;
CREATE INDEX projects_changed ON projects (library_id, changed_in);
CREATE INDEX context_blocks_changed ON context_blocks (library_id, changed_in);
CREATE INDEX saved_prompts_changed ON saved_prompts (library_id, changed_in);
