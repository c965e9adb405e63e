-- Presence across instances (DESIGN §9): each instance heartbeats its row; the sessions it
-- holds open are listed with it. A row whose instance stopped heartbeating is ignored and
-- then reaped by the live instances (docs/INSTANCES.md, "Presence"). Ephemeral by nature:
-- UNLOGGED spares the WAL (after a crash of PostgreSQL the tables come back empty, and the
-- instances write their sessions again at their next heartbeat).

CREATE UNLOGGED TABLE presence_instances (
    instance_id  TEXT    PRIMARY KEY,
    heartbeat_at BIGINT  NOT NULL
);

CREATE UNLOGGED TABLE presence_sessions (
    session_id   TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL REFERENCES presence_instances (instance_id) ON DELETE CASCADE,
    library_id   TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    seen_version BIGINT,
    connected_at BIGINT  NOT NULL
);
CREATE INDEX presence_sessions_library ON presence_sessions (library_id);
CREATE INDEX presence_sessions_instance ON presence_sessions (instance_id);
