-- Incremental reloads (DESIGN §10) read every row's stamp (id, version, updated_at) in load
-- order: the load indexes cover those columns, so the scan never touches the rows' content.
DROP INDEX projects_load;
CREATE INDEX projects_load ON projects (library_id, created_at, id, version, updated_at);
DROP INDEX context_blocks_load;
CREATE INDEX context_blocks_load ON context_blocks (library_id, created_at, id, version, updated_at);
DROP INDEX saved_prompts_load;
CREATE INDEX saved_prompts_load ON saved_prompts (library_id, created_at, id, version, updated_at);
