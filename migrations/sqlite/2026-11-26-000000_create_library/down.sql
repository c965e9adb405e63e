DROP TABLE idempotency_keys;
DROP TABLE saved_prompt_blocks;
DROP TABLE saved_prompts;
DROP TABLE context_blocks;
DROP TABLE projects;
DROP TABLE libraries;
