-- Back to one library per user: the libraries that are nobody's default go, with their rows.
DROP TABLE library_members;
DELETE FROM libraries WHERE default_for IS NULL;
ALTER TABLE libraries DROP COLUMN name;
ALTER TABLE libraries ALTER COLUMN default_for SET NOT NULL;
ALTER TABLE libraries RENAME COLUMN default_for TO user_id;
