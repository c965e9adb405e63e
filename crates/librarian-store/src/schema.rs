//! The one portable schema for both backends: ids as UUID text, times as epoch milliseconds,
//! tag lists as JSON text. It mirrors `migrations/{postgres,sqlite}`.

diesel::table! {
    libraries (id) {
        id -> Text,
        /// The user whose own library this is (created on first use); NULL for the others.
        default_for -> Nullable<Text>,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        name -> Text,
        /// The version of the last write that deleted rows (0: none since this was added).
        deleted_in -> BigInt,
    }
}

diesel::table! {
    library_members (library_id, user_id) {
        library_id -> Text,
        user_id -> Text,
        /// `owner` (exactly one per library), `editor` or `viewer`.
        role -> Text,
        added_at -> BigInt,
    }
}

diesel::table! {
    projects (library_id, id) {
        library_id -> Text,
        id -> Text,
        parent_id -> Nullable<Text>,
        name -> Text,
        description -> Text,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// The library version that last wrote the row.
        changed_in -> BigInt,
    }
}

diesel::table! {
    context_blocks (library_id, id) {
        library_id -> Text,
        id -> Text,
        project_id -> Nullable<Text>,
        title -> Text,
        content -> Text,
        tags -> Text,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// The library version that last wrote the row.
        changed_in -> BigInt,
    }
}

diesel::table! {
    saved_prompts (library_id, id) {
        library_id -> Text,
        id -> Text,
        project_id -> Nullable<Text>,
        title -> Text,
        content -> Text,
        tags -> Text,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// The library version that last wrote the row.
        changed_in -> BigInt,
    }
}

diesel::table! {
    saved_prompt_blocks (library_id, prompt_id, position) {
        library_id -> Text,
        prompt_id -> Text,
        position -> Integer,
        block_id -> Text,
    }
}

diesel::table! {
    idempotency_keys (library_id, key) {
        library_id -> Text,
        key -> Text,
        fingerprint -> Text,
        kind -> Text,
        entity_id -> Text,
        response -> Nullable<Text>,
        library_version -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// PostgreSQL only (SQLite keeps presence in memory): the instances and their heartbeat.
    presence_instances (instance_id) {
        instance_id -> Text,
        heartbeat_at -> BigInt,
    }
}

diesel::table! {
    /// PostgreSQL only: the sessions each instance holds open (DESIGN §9, presence).
    presence_sessions (session_id) {
        session_id -> Text,
        instance_id -> Text,
        library_id -> Text,
        user_id -> Text,
        seen_version -> Nullable<BigInt>,
        connected_at -> BigInt,
    }
}

// diesel's own bookkeeping table; only the column readiness checks need.
diesel::table! {
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

diesel::joinable!(library_members -> libraries (library_id));

diesel::allow_tables_to_appear_in_same_query!(
    libraries,
    library_members,
    projects,
    context_blocks,
    saved_prompts,
    saved_prompt_blocks,
    idempotency_keys,
    presence_instances,
    presence_sessions,
);
