DROP TABLE presence_sessions;
DROP TABLE presence_instances;
