//! Migrations are bounded by the query timeout like every store operation: a database that
//! cannot be got at (PostgreSQL behind a connection that accepts and never answers; SQLite
//! write-locked by another process) fails `migrate` with a clear error instead of hanging.
//! The connect timeout (SQLite: its busy timeout) is set far beyond the test's hang guard, so
//! that only the query timeout can end the wait in time. (On SQLite the stuck work goes on in
//! the background until the lock is released; the caller is answered at once.)
//!
//! The tests run on current-thread runtimes, like actix's in `librarian serve` and `migrate`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_core::Error;
use librarian_store::{Store, StoreConfig};
use std::time::Duration;

/// The test's hang guard, far above the query timeout and far below the connect timeout.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn config(url: &str) -> StoreConfig {
    let mut config = StoreConfig::new(url);
    config.query_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_secs(600);
    config
}

async fn migrate_fails_unavailable(store: &Store) -> String {
    match tokio::time::timeout(HANG_GUARD, store.migrate())
        .await
        .expect("migrate must give up, not hang")
    {
        Err(Error::Unavailable(msg)) => msg,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

mod a_migration_that_cannot_get_at_the_database_fails_within_the_query_timeout {
    use super::*;
    use librarian_testkit::TestDb;
    use librarian_testkit::proxy::TcpProxy;

    #[tokio::test]
    async fn postgres() {
        let Some(db) = TestDb::postgres().await else {
            return;
        };
        let proxy = TcpProxy::start(db.postgres_addr().unwrap()).await;
        proxy.stall();
        let store = Store::connect(&config(&db.url_through(proxy.addr)))
            .await
            .unwrap();
        let msg = migrate_fails_unavailable(&store).await;
        assert!(msg.contains("migrations not applied"), "{msg}");
        assert!(msg.contains("query_timeout_ms"), "{msg}");
        // And once the database answers again, it migrates.
        proxy.restore().await;
        assert!(store.migrate().await.unwrap() > 0);
        store.ready().await.unwrap();
    }

    #[tokio::test]
    async fn sqlite() {
        let db = TestDb::sqlite();
        let path = librarian_store::sqlite_path(db.url()).unwrap();
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            use diesel::connection::SimpleConnection;
            let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(
                &path.to_string_lossy(),
            )
            .unwrap();
            conn.batch_execute("PRAGMA journal_mode = WAL; BEGIN EXCLUSIVE")
                .unwrap();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            conn.batch_execute("ROLLBACK").unwrap();
        });
        locked_rx.await.unwrap();
        let store = Store::connect(&config(db.url())).await.unwrap();
        let msg = migrate_fails_unavailable(&store).await;
        assert!(msg.contains("migrations not applied"), "{msg}");
        assert!(msg.contains("query_timeout_ms"), "{msg}");
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        // The abandoned migration finishes once the lock is gone.
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while store.ready().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "never migrated");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
