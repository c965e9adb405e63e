//! Upgrading a database that holds data, on both backends: a database at the first migration
//! (one library per user), with rows, migrated to shared libraries (DESIGN §9), keeps every
//! library and row, makes each library's user its owner, and still enforces its foreign keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_core::{Mutation, MutationOptions, NewProject, Role};
use librarian_testkit::{TestDb, both_backends};
use uuid::Uuid;

const FIRST_PG: &str =
    include_str!("../../../migrations/postgres/2026-11-26-000000_create_library/up.sql");
const FIRST_SQLITE: &str =
    include_str!("../../../migrations/sqlite/2026-11-26-000000_create_library/up.sql");

/// The database as the first release left it: its schema, diesel's record of it, and rows.
async fn at_first_migration(db: &TestDb, alice: Uuid, project: Uuid) {
    let schema = if db.is_postgres() {
        FIRST_PG
    } else {
        FIRST_SQLITE
    };
    db.execute(&format!(
        "{schema}
         CREATE TABLE __diesel_schema_migrations (
             version VARCHAR(50) PRIMARY KEY NOT NULL,
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO __diesel_schema_migrations (version) VALUES ('20261126000000');
         INSERT INTO libraries (id, user_id, version, created_at, updated_at)
             VALUES ('{alice}', 'alice', 3, 1000, 2000);
         INSERT INTO projects (library_id, id, parent_id, name, description, version, created_at, updated_at)
             VALUES ('{alice}', '{project}', NULL, 'Writing', '', 1, 1500, 1500);"
    ))
    .await;
}

both_backends! {
    async fn a_database_with_data_is_migrated_to_shared_libraries(db) {
        let (alice, project) = (Uuid::now_v7(), Uuid::now_v7());
        at_first_migration(&db, alice, project).await;
        let store = db.store().await; // runs the pending migration
        store.ready().await.unwrap();

        // Alice's library is still hers, with its version and rows; she owns it.
        let library = store.library_for_user("alice").await.unwrap();
        assert_eq!((library.id, library.version), (alice, 3));
        let snapshot = store.load_library(alice).await.unwrap();
        assert_eq!(snapshot.version, 3);
        assert_eq!(snapshot.projects.len(), 1);
        assert_eq!(snapshot.projects[0].id, project);
        let members = store.members(alice).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!((members[0].user_id.as_str(), members[0].role), ("alice", Role::Owner));
        assert_eq!(members[0].added_at.millis(), 1000);

        // Writes go on.
        let committed = store
            .apply(
                alice,
                "alice",
                Mutation::CreateProject(NewProject {
                    id: None,
                    name: "Mail".into(),
                    description: String::new(),
                    parent_id: Some(project),
                }),
                MutationOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(committed.library_version, 4);
        // The rebuilt table (SQLite) is what the other tables' foreign keys point at: deleting
        // the library (foreign keys on) takes its rows and members with it, instead of failing.
        // (The test's own SQLite connection has foreign keys off unless asked.)
        let on = if db.is_postgres() { "" } else { "PRAGMA foreign_keys = ON;" };
        db.execute(&format!("{on} DELETE FROM libraries WHERE id = '{alice}'"))
            .await;
        assert!(store.members(alice).await.unwrap().is_empty());
        let anew = store.library_for_user("alice").await.unwrap();
        assert_ne!(anew.id, alice);
        assert!(store.load_library(anew.id).await.unwrap().projects.is_empty());

        // A new user gets their own library, and owns it.
        let bob = store.library_for_user("bob").await.unwrap();
        assert_ne!(bob.id, alice);
        let members = store.members(bob.id).await.unwrap();
        assert_eq!((members[0].user_id.as_str(), members[0].role), ("bob", Role::Owner));
    }
}
