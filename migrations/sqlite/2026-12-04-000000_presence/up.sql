-- Presence across instances (DESIGN §9). SQLite is one instance and keeps presence in memory;
-- the tables exist so that both backends share one schema (crates/librarian-store/src/schema.rs).

CREATE TABLE presence_instances (
    instance_id  TEXT    PRIMARY KEY,
    heartbeat_at BIGINT  NOT NULL
);

CREATE TABLE presence_sessions (
    session_id   TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL REFERENCES presence_instances (instance_id) ON DELETE CASCADE,
    library_id   TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    seen_version BIGINT,
    connected_at BIGINT  NOT NULL
);
CREATE INDEX presence_sessions_library ON presence_sessions (library_id);
CREATE INDEX presence_sessions_instance ON presence_sessions (instance_id);
