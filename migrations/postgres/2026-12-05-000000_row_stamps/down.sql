DROP INDEX projects_load;
CREATE INDEX projects_load ON projects (library_id, created_at, id);
DROP INDEX context_blocks_load;
CREATE INDEX context_blocks_load ON context_blocks (library_id, created_at, id);
DROP INDEX saved_prompts_load;
CREATE INDEX saved_prompts_load ON saved_prompts (library_id, created_at, id);
