DROP INDEX projects_changed;
DROP INDEX context_blocks_changed;
DROP INDEX saved_prompts_changed;
ALTER TABLE projects DROP COLUMN changed_in;
ALTER TABLE context_blocks DROP COLUMN changed_in;
ALTER TABLE saved_prompts DROP COLUMN changed_in;
ALTER TABLE libraries DROP COLUMN deleted_in;
