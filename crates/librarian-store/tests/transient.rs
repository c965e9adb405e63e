//! Transient database failures are `Error::Unavailable` (503, retry), never `Internal` (500):
//! a write stuck behind another transaction's lock past the database's own lock timeout (both
//! backends), and on real PostgreSQL a statement timeout (57014) and a deadlock (40P01). Each
//! test checks the message, so that a pass cannot come from the store's own query timeout, and
//! that the same write succeeds once the obstacle is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use librarian_core::{Error, Mutation, MutationOptions, NewContextBlock, NewProject};
use librarian_store::{Store, StoreConfig};
use librarian_testkit::{TestDb, both_backends};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The store's own query timeout: only a hang guard here, far above the database's timeouts.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn block(project: Option<Uuid>) -> Mutation {
    Mutation::CreateContextBlock(NewContextBlock {
        id: None,
        project_id: project,
        title: "b".into(),
        content: String::new(),
        tags: vec![],
    })
}

fn unavailable_message(r: Result<librarian_core::Committed, Error>) -> String {
    match r {
        Err(Error::Unavailable(msg)) => msg,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// PostgreSQL: `db`'s URL with server settings for the store's sessions (`-c name=value`) and
/// an application_name of its own, to find its backends in `pg_stat_activity`.
fn pg_url_with(db: &TestDb, settings: &[&str], app: &str) -> String {
    let mut url = url::Url::parse(db.url()).unwrap();
    let mut options: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "options")
        .map(|(_, v)| v.into_owned())
        .collect();
    options.extend(settings.iter().map(|s| format!("-c{s}")));
    let mut query: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k != "options" && k != "application_name")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // Spaces as %20: the connection string parser does not read `+` as a space.
    query.push(format!(
        "options={}",
        options.join(" ").replace('=', "%3D").replace(' ', "%20")
    ));
    query.push(format!("application_name={app}"));
    url.set_query(Some(&query.join("&")));
    url.to_string()
}

/// A store on `url` (`db` with other settings), after migrating `db` through its plain URL
/// (the settings would also bound the migration, which may wait for other tests' migrations).
async fn store_at(db: &TestDb, url: &str, connect_timeout: Duration) -> Store {
    drop(db.store().await);
    let mut config = StoreConfig::new(url);
    config.query_timeout = HANG_GUARD;
    config.connect_timeout = connect_timeout;
    Store::connect(&config).await.unwrap()
}

/// Waits until a backend of `app` waits for a lock.
async fn until_waiting_for_a_lock(db: &TestDb, app: &str) {
    let deadline = Instant::now() + HANG_GUARD;
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = '{app}' AND wait_event_type = 'Lock'"
    );
    while db.query_i64(&sql).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the store never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

both_backends! {
    async fn a_write_behind_a_lock_past_the_lock_timeout_is_unavailable(db) {
        if db.is_postgres() {
            let app = format!("lock-{}", Uuid::new_v4().simple());
            let store = store_at(&db, &pg_url_with(&db, &["lock_timeout=100"], &app), HANG_GUARD).await;
            let lib = store.library_for_user("alice").await.unwrap().id;
            let mut holder = AsyncPgConnection::establish(db.url()).await.unwrap();
            holder
                .batch_execute(&format!(
                    "BEGIN; SELECT id FROM libraries WHERE id = '{lib}' FOR UPDATE"
                ))
                .await
                .unwrap();
            let msg = unavailable_message(store.apply(lib, "alice", block(None), MutationOptions::default()).await);
            assert!(msg.contains("lock timeout"), "{msg}");
            holder.batch_execute("ROLLBACK").await.unwrap();
            let ok = store.apply(lib, "alice", block(None), MutationOptions::default()).await.unwrap();
            assert_eq!(ok.library_version, 1, "the refused write left nothing behind");
        } else {
            // SQLite's lock timeout is its busy_timeout, set from the connect timeout. Right
            // after the migrating store closed, its WAL checkpoint may hold the file for longer
            // than 100 ms on a loaded machine: the setup retries until the file is free.
            let store = store_at(&db, db.url(), Duration::from_millis(100)).await;
            let deadline = Instant::now() + HANG_GUARD;
            let lib = loop {
                match store.library_for_user("alice").await {
                    Ok(library) => break library.id,
                    Err(Error::Unavailable(_)) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let path = librarian_store::sqlite_path(db.url()).unwrap();
            let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                use diesel::connection::SimpleConnection;
                let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(
                    &path.to_string_lossy(),
                )
                .unwrap();
                conn.batch_execute("BEGIN IMMEDIATE").unwrap();
                locked_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                conn.batch_execute("ROLLBACK").unwrap();
            });
            locked_rx.await.unwrap();
            let msg = unavailable_message(store.apply(lib, "alice", block(None), MutationOptions::default()).await);
            assert!(msg.contains("locked"), "{msg}");
            release_tx.send(()).unwrap();
            holder.join().unwrap();
            let ok = store.apply(lib, "alice", block(None), MutationOptions::default()).await.unwrap();
            assert_eq!(ok.library_version, 1, "the refused write left nothing behind");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_statement_timeout_is_unavailable() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = format!("stmt-{}", Uuid::new_v4().simple());
    let store = store_at(
        &db,
        &pg_url_with(&db, &["statement_timeout=100"], &app),
        HANG_GUARD,
    )
    .await;
    let lib = store.library_for_user("alice").await.unwrap().id;
    let mut holder = AsyncPgConnection::establish(db.url()).await.unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM libraries WHERE id = '{lib}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let msg = unavailable_message(
        store
            .apply(lib, "alice", block(None), MutationOptions::default())
            .await,
    );
    assert!(msg.contains("statement timeout"), "{msg}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    let ok = store
        .apply(lib, "alice", block(None), MutationOptions::default())
        .await
        .unwrap();
    assert_eq!(ok.library_version, 1);
}

/// The store's write holds its library row and waits for a project row the test holds; the
/// test then asks for the library row. PostgreSQL breaks the cycle by failing the store's
/// write: the one that waited first runs the check first (the test's session checks late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_deadlock_is_unavailable() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = format!("deadlock-{}", Uuid::new_v4().simple());
    let store = store_at(&db, &pg_url_with(&db, &[], &app), HANG_GUARD).await;
    let lib = store.library_for_user("alice").await.unwrap().id;
    let project = store
        .apply(
            lib,
            "alice",
            Mutation::CreateProject(NewProject {
                id: None,
                name: "p".into(),
                description: String::new(),
                parent_id: None,
            }),
            MutationOptions::default(),
        )
        .await
        .unwrap()
        .id;
    let mut holder = AsyncPgConnection::establish(db.url()).await.unwrap();
    // So that the store's session, not this one, finds the deadlock (superuser only; without
    // it both wait the default 1 s and the store's session, waiting first, still checks first).
    let _ = holder.batch_execute("SET deadlock_timeout = '20s'").await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM projects WHERE library_id = '{lib}' AND id = '{project}' \
             FOR UPDATE"
        ))
        .await
        .unwrap();
    // The block's foreign key check needs a share lock on the project row.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .apply(
                    lib,
                    "alice",
                    block(Some(project)),
                    MutationOptions::default(),
                )
                .await
        })
    };
    until_waiting_for_a_lock(&db, &app).await;
    holder
        .batch_execute(&format!(
            "UPDATE libraries SET updated_at = updated_at WHERE id = '{lib}'"
        ))
        .await
        .expect("the store's write is the one cancelled");
    let msg = unavailable_message(writer.await.unwrap());
    assert!(msg.contains("deadlock"), "{msg}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    let ok = store
        .apply(
            lib,
            "alice",
            block(Some(project)),
            MutationOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(ok.library_version, 2);
}
