//! Test helpers shared by every crate's tests: a fresh database per test on both backends
//! ([`TestDb`]), a macro that runs one test body on each backend ([`both_backends!`]), and the
//! real `librarian` binary started on port 0 ([`server::TestServer`]).
//!
//! PostgreSQL tests run when `LIBRARIAN_TEST_DATABASE_URL` is set (each test gets its own
//! schema in that database, dropped afterwards). Without it they are skipped, and the test
//! binary says so once on stderr; with `LIBRARIAN_TEST_REQUIRE_POSTGRES=1` (set by `.ci/run`) a
//! skip is a failure instead.

// Test-only code: a helper that cannot do its job should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod jwks;
pub mod proxy;
pub mod server;
pub mod ws;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use librarian_store::{Store, StoreConfig};
use std::io::Write;
use std::sync::Once;
use tempfile::TempDir;

pub use actix_rt;
pub use librarian_store;

pub const DATABASE_URL_VAR: &str = "LIBRARIAN_TEST_DATABASE_URL";
pub const REQUIRE_POSTGRES_VAR: &str = "LIBRARIAN_TEST_REQUIRE_POSTGRES";

/// A database that exists for one test.
pub struct TestDb {
    url: String,
    /// SQLite: the directory of the file. Removed on drop.
    dir: Option<TempDir>,
    /// PostgreSQL: (admin url, schema). The schema is dropped on drop.
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("librarian.db").display());
        TestDb {
            url,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh schema in the PostgreSQL database named by `LIBRARIAN_TEST_DATABASE_URL`, or
    /// `None` (the test is skipped) when it is not set.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin) = std::env::var(DATABASE_URL_VAR) else {
            if std::env::var(REQUIRE_POSTGRES_VAR).is_ok_and(|v| v == "1") {
                panic!("{REQUIRE_POSTGRES_VAR}=1 but {DATABASE_URL_VAR} is not set");
            }
            static SKIPPED: Once = Once::new();
            SKIPPED.call_once(|| {
                // Straight to stderr: the test harness captures eprintln! of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped ({DATABASE_URL_VAR} is not set)"
                );
            });
            return None;
        };
        Some(Self::postgres_at(&admin).await)
    }

    /// A fresh schema in the PostgreSQL database at `admin` (dropped with the `TestDb`).
    pub async fn postgres_at(admin: &str) -> TestDb {
        let admin = admin.to_owned();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {DATABASE_URL_VAR}: {e}"));
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create test schema");
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
        TestDb {
            url,
            dir: None,
            pg: Some((admin, schema)),
        }
    }

    /// The URL to give the server or a [`StoreConfig`].
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// PostgreSQL: runs a query that returns one BIGINT (e.g. a count) and returns it.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        assert!(self.is_postgres(), "query_i64 is for PostgreSQL");
        let mut conn = AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect");
        diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                "({sql})"
            ))),
            &mut conn,
        )
        .await
        .expect("query")
    }

    /// PostgreSQL: the server address of the database, to put a [`proxy::TcpProxy`] before it.
    pub fn postgres_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        let url = url::Url::parse(&self.url)
            .ok()
            .filter(|_| self.is_postgres())?;
        let host = url.host_str()?;
        (host, url.port().unwrap_or(5432))
            .to_socket_addrs()
            .ok()?
            .next()
    }

    /// This database's URL, but reached through `addr` (a proxy).
    pub fn url_through(&self, addr: std::net::SocketAddr) -> String {
        let mut url = url::Url::parse(&self.url).expect("database url");
        url.set_ip_host(addr.ip()).expect("set host");
        url.set_port(Some(addr.port())).expect("set port");
        url.to_string()
    }

    /// Runs raw SQL on this database from a connection of its own (to inject failures, hold
    /// locks, or change data behind the server's back).
    pub async fn execute(&self, sql: &str) {
        if self.is_postgres() {
            let mut conn = AsyncPgConnection::establish(&self.url)
                .await
                .expect("connect");
            conn.batch_execute(sql).await.expect("execute SQL");
        } else {
            use diesel::connection::SimpleConnection;
            let path = librarian_store::sqlite_path(&self.url).expect("sqlite url");
            let sql = sql.to_owned();
            tokio::task::spawn_blocking(move || {
                let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(
                    &path.to_string_lossy(),
                )
                .expect("open SQLite");
                conn.batch_execute("PRAGMA busy_timeout = 5000")
                    .and_then(|()| conn.batch_execute(&sql))
                    .expect("execute SQL");
            })
            .await
            .expect("SQL task");
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        self.store_with(StoreConfig::new(&self.url)).await
    }

    pub async fn store_with(&self, config: StoreConfig) -> Store {
        let store = Store::connect(&config).await.expect("connect test store");
        store.migrate().await.expect("migrate test store");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, schema)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                    let _ = conn
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
        drop(self.dir.take());
    }
}

/// A small deterministic generator for randomized tests, so a failure can be replayed.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number in `0..n`.
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Like [`both_backends!`], inside an actix `System` (for tests that start actors).
#[macro_export]
macro_rules! both_backends_actix {
    ($( $(#[$meta:meta])* async fn $name:ident($db:ident) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[$crate::actix_rt::test]
                async fn sqlite() {
                    let $db = $crate::TestDb::sqlite();
                    $body
                }

                #[$crate::actix_rt::test]
                async fn postgres() {
                    let Some($db) = $crate::TestDb::postgres().await else { return };
                    $body
                }
            }
        )*
    };
}

/// Runs each test body once per backend, as `<name>::sqlite` and `<name>::postgres`:
///
/// ```text
/// both_backends! {
///     async fn versions_are_per_user(db) { let store = db.store().await; /* … */ }
/// }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($( $(#[$meta:meta])* async fn $name:ident($db:ident) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $db = $crate::TestDb::sqlite();
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some($db) = $crate::TestDb::postgres().await else { return };
                    $body
                }
            }
        )*
    };
}
