//! Librarian's persistence: one [`Store`] over a PostgreSQL or SQLite pool (the backend follows
//! the URL scheme). Every mutation is one write transaction that validates, writes, bumps its
//! library's version by exactly one and returns what it committed; a library loads in one read
//! transaction (REPEATABLE READ on PostgreSQL), so a snapshot is always consistent.

mod error;
pub mod listener;
mod migrate;
mod models;
mod ops;
pub mod presence;
mod schema;

use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
pub use error::is_library_gone;
use error::{TxError, db_error, pool_error};
use librarian_core::validate::validate_library_name;
use librarian_core::validate::{validate, validate_idempotency_key};
use librarian_core::{
    Committed, Entity, EntityKind, Error, Library, LibraryInfo, LibrarySnapshot, Limits, Member,
    Mutation, MutationOptions, Role,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Idempotency records deleted per statement by [`Store::purge_idempotency`].
pub const PURGE_BATCH: i64 = 1_000;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// How hard SQLite syncs a commit to disk (`PRAGMA synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// Each commit is fsynced: an acknowledged write survives a power loss.
    #[default]
    Full,
    /// Commits reach the OS but are fsynced only at checkpoints: an acknowledged write survives
    /// a crash of the process, not a power loss. Faster.
    Normal,
}

/// What changed in a library after version `since` (DESIGN §10), as read in one transaction
/// at `version`: every row written after `since` (created or updated; in load order) and the
/// members; when a write after `since` deleted rows, `ids`: every id each list (projects,
/// context blocks, saved prompts) has now, so that a caller holding the library at `since`
/// can tell which rows went. Writes that delete rows mark the library (`deleted_in`), so this
/// costs a scan of the ids only across a deletion.
#[derive(Debug, Clone)]
pub struct LibraryChanges {
    pub since: i64,
    pub version: i64,
    pub members: Vec<librarian_core::MemberRole>,
    pub projects: Vec<librarian_core::Project>,
    pub context_blocks: Vec<librarian_core::ContextBlock>,
    pub saved_prompts: Vec<librarian_core::SavedPrompt>,
    pub ids: Option<[Vec<Uuid>; 3]>,
}

/// What a [`Store`] needs to connect.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (relative or, with a third slash, absolute) or
    /// `postgres://…`.
    pub url: String,
    pub pool_size: usize,
    /// How long a request waits for a connection (or to open one) before it fails with
    /// [`Error::Unavailable`].
    pub connect_timeout: Duration,
    /// The longest one store operation may take, waiting for a connection included. Past it
    /// the operation fails with [`Error::Unavailable`] (a database that stopped answering
    /// must not hang requests). A write that times out while committing may still have
    /// committed: retries should carry an idempotency key.
    pub query_timeout: Duration,
    pub sqlite_sync: SqliteSync,
    pub limits: Limits,
}

impl StoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        StoreConfig {
            url: url.into(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
            sqlite_sync: SqliteSync::default(),
            limits: Limits::default(),
        }
    }
}

/// The library store. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

/// The name of the library every user gets on first use.
pub const DEFAULT_LIBRARY_NAME: &str = "My library";

struct Inner {
    pool: Pools,
    limits: Limits,
    url: String,
    query_timeout: Duration,
    /// SQLite: the lock file that keeps a second process off the same database.
    _instance_lock: Option<std::fs::File>,
    /// SQLite has one writer at a time; queueing writers here instead of in SQLite's busy
    /// handler (which sleeps and polls) keeps write latency flat under contention.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// SQLite writes that committed after their caller had given up (see [`Store::apply`]).
    late_commits: tokio::sync::broadcast::Sender<LateCommit>,
}

/// A write that committed after its caller had already been told it failed (it outlived the
/// query timeout): the sync core must still publish its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateCommit {
    pub library_id: Uuid,
    pub version: i64,
}

enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// Where a `sqlite://` URL points.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://").map(PathBuf::from)
}

/// Runs one store operation on this store's backend, bounded by the query timeout (waiting for
/// a connection included): the one place that matches on the pool and applies the timeout, in
/// the spirit of vaultwarden's `db_run!`.
///
/// - `db_run!(self, |ops, c| body)`: the same body on both backends. `ops` names the backend's
///   module (`ops::pg` or `ops::sqlite`), `c` its connection (`&mut AsyncPgConnection`, or
///   `&mut SqliteConnection` on a blocking thread, so the body's captures are moved); `body`
///   returns `Result<_, TxError>` and is awaited on PostgreSQL.
/// - `db_run!(self, postgres(pool) => expr, sqlite(pool) => expr)`: one expression of type
///   `Result<_, Error>` per backend, where the transaction or the SQL differs. Each arm runs
///   inside an `async` block: `?` and `return` leave the operation, not the caller.
macro_rules! db_run {
    ($store:expr, |$ops:ident, $c:ident| $body:expr) => {
        db_run!($store,
            postgres(pool) => {
                use crate::ops::pg as $ops;
                let mut conn = pool.get().await.map_err(pool_error)?;
                let $c: &mut AsyncPgConnection = &mut conn;
                $body.await.map_err(TxError::into_error)
            },
            sqlite(pool) => {
                let conn = pool.get().await.map_err(pool_error)?;
                sqlite_blocking(conn, move |$c| {
                    use crate::ops::sqlite as $ops;
                    $body
                })
                .await
                .map_err(TxError::into_error)
            },
        )
    };
    ($store:expr, postgres($pg:ident) => $on_pg:expr, sqlite($sq:ident) => $on_sqlite:expr $(,)?) => {
        $store
            .timed(async {
                match &$store.inner.pool {
                    Pools::Postgres($pg) => $on_pg,
                    Pools::Sqlite($sq) => $on_sqlite,
                }
            })
            .await
    };
}

/// One write transaction on this store's backend, as [`Store::apply`] runs them: on SQLite
/// queued behind the other writers in an immediate transaction; on PostgreSQL followed, inside
/// the transaction, by the NOTIFY of the version `$version` finds in the result (if any), so
/// that other instances hear of it on commit. `write_run!(self, lib, version_fn, |ops, c| body)`
/// where `body` is the same expression for both backends (awaited on PostgreSQL).
macro_rules! write_run {
    ($store:expr, $lib:ident, $version:expr, |$ops:ident, $c:ident| $body:expr) => {
        db_run!($store,
            postgres(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                conn.transaction(async move |$c| {
                    use crate::ops::pg as $ops;
                    let out = $body.await?;
                    if let Some(version) = ($version)(&out) {
                        notify($c, &$lib, version).await?;
                    }
                    Ok::<_, TxError>(out)
                })
                .await
                .map_err(TxError::into_error)
            },
            sqlite(pool) => {
                let writer = $store.inner.sqlite_writer.clone().lock_owned().await;
                let conn = pool.get().await.map_err(pool_error)?;
                sqlite_blocking(conn, move |$c| {
                    // Held until the write ends, even once nobody waits for it.
                    let _writer = writer;
                    use crate::ops::sqlite as $ops;
                    $c.immediate_transaction(|$c| $body)
                })
                .await
                .map_err(TxError::into_error)
            },
        )
    };
}

/// `pg_notify` of a library's new version, inside the transaction that made it.
async fn notify(c: &mut AsyncPgConnection, lib: &str, version: i64) -> Result<(), TxError> {
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(listener::CHANNEL)
            .bind::<diesel::sql_types::Text, _>(listener::payload(lib, version)),
        c,
    )
    .await?;
    Ok(())
}

impl Store {
    /// Builds the pool for `config.url`. Connections open lazily, so this succeeds even while
    /// the database is down (requests then fail with [`Error::Unavailable`]); for SQLite it
    /// creates the file's directory.
    pub async fn connect(config: &StoreConfig) -> Result<Store, Error> {
        let url = config.url.clone();
        let mut instance_lock = None;
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let named = with_application_name(&url, "librarian");
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(named);
            Pools::Postgres(build_pool(manager, config)?)
        } else if let Some(path) = sqlite_path(&url) {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            instance_lock = Some(lock_instance(&path)?);
            let file = path.to_string_lossy().into_owned();
            let sync = match config.sqlite_sync {
                SqliteSync::Full => "FULL",
                SqliteSync::Normal => "NORMAL",
            };
            let busy_ms = config.connect_timeout.as_millis();
            let mut manager_config = ManagerConfig::<SqliteConn>::default();
            manager_config.custom_setup = Box::new(move |_url| {
                let file = file.clone();
                Box::pin(async move {
                    let mut conn = SqliteConn::establish(&file).await?;
                    conn.batch_execute(&format!(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
                         PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON;"
                    ))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                })
            });
            let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                url.clone(),
                manager_config,
            );
            Pools::Sqlite(build_pool(manager, config)?)
        } else {
            return Err(Error::invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        };
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                limits: config.limits.clone(),
                url,
                query_timeout: config.query_timeout,
                _instance_lock: instance_lock,
                sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
                late_commits: tokio::sync::broadcast::channel(1024).0,
            }),
        })
    }

    /// Writes that committed after their caller timed out (SQLite: a write on its blocking
    /// thread cannot be cancelled). A lagging receiver misses some; reconciliation heals those.
    pub fn late_commits(&self) -> tokio::sync::broadcast::Receiver<LateCommit> {
        self.inner.late_commits.subscribe()
    }

    pub fn backend(&self) -> Backend {
        match self.inner.pool {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// PostgreSQL: starts the LISTEN connection (see [`listener`]) and returns its events.
    /// `None` on SQLite, which is one instance with in-process events.
    pub fn spawn_listener(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<listener::ListenerEvent>> {
        if self.backend() != Backend::Postgres {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let url = with_application_name(&self.inner.url, "librarian-listener");
        tokio::spawn(listener::listen(url, tx));
        Some(rx)
    }

    /// The current versions of these libraries (those missing are left out).
    pub async fn library_versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, Error> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let rows = db_run!(self, |ops, c| ops::library_versions(c, &ids))?;
        rows.into_iter()
            .map(|(id, v)| Ok((models::parse_id(&id)?, v)))
            .collect()
    }

    /// Applies pending migrations; returns how many ran. Safe to call from several instances
    /// at once (PostgreSQL: under an advisory lock) and as often as you like. Bounded like every
    /// operation by the query timeout (a database that stalls, or another instance stuck
    /// holding the migration lock, is an error, not a hang); a long migration needs a longer
    /// `database.query_timeout_ms` for its `librarian migrate`.
    pub async fn migrate(&self) -> Result<usize, Error> {
        use diesel_migrations::MigrationHarness;
        let limit_ms = self.inner.query_timeout.as_millis();
        let ran = db_run!(self,
            postgres(_pool) => {
                let url = self.inner.url.clone();
                // Sync diesel on a thread of its own, which cannot be cancelled: past the
                // timeout it is abandoned (the statement timeout ends a wait or statement on
                // PostgreSQL's side too). Not `spawn_blocking`: the runtime would wait for it
                // at exit, and `librarian migrate` would hang on a stalled database after all.
                let (done, outcome) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("librarian-migrate".into())
                    .spawn(move || {
                        let _ = done.send(migrate_postgres(&url, limit_ms));
                    })
                    .map_err(|e| Error::Internal(format!("cannot start the migration: {e}")))?;
                outcome
                    .await
                    .unwrap_or_else(|_| Err(Error::Internal("the migration thread died".into())))
            },
            sqlite(pool) => {
                // Queued like every writer, and held until the migration ends even if nobody
                // waits for it any more.
                let writer = self.inner.sqlite_writer.clone().lock_owned().await;
                let conn = pool.get().await.map_err(pool_error)?;
                sqlite_blocking(conn, move |c| {
                    let ran = c
                        .run_pending_migrations(migrate::SQLITE_MIGRATIONS)
                        .map(|v| v.len())
                        .map_err(|e| Error::Internal(format!("migration failed: {e}")));
                    // A script that runs its own transaction with foreign keys off
                    // (metadata.toml) may have stopped inside it: the pool must get the
                    // connection back as it hands it out.
                    if ran.is_err() {
                        let _ = diesel::connection::SimpleConnection::batch_execute(c, "ROLLBACK");
                    }
                    let _ = diesel::connection::SimpleConnection::batch_execute(
                        c,
                        "PRAGMA foreign_keys = ON",
                    );
                    drop(writer);
                    Ok(ran?)
                })
                .await
                .map_err(TxError::into_error)
            },
        );
        ran.map_err(|e| match e {
            Error::Unavailable(why) => Error::Unavailable(format!("migrations not applied: {why}")),
            other => other,
        })
    }

    /// Ok when the database answers and every embedded migration has been applied, within the
    /// query timeout like every operation (a load balancer must not wait on a stalled database).
    pub async fn ready(&self) -> Result<(), Error> {
        let applied = db_run!(self, |ops, c| ops::applied_migrations(c))?;
        let expected = match self.backend() {
            Backend::Postgres => migrate::embedded_versions::<Pg>(&migrate::PG_MIGRATIONS),
            Backend::Sqlite => migrate::embedded_versions::<Sqlite>(&migrate::SQLITE_MIGRATIONS),
        };
        let missing: Vec<&String> = expected.iter().filter(|v| !applied.contains(v)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "migrations not applied: {missing:?}"
            )))
        }
    }

    /// The user's own library (`default_for` them, they its owner), created (empty, version 0)
    /// on first use.
    pub async fn library_for_user(&self, user_id: &str) -> Result<Library, Error> {
        let now = librarian_core::Timestamp::now().millis();
        let new = models::LibraryRow {
            id: Uuid::now_v7().to_string(),
            name: DEFAULT_LIBRARY_NAME.to_owned(),
            default_for: Some(user_id.to_owned()),
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let user = user_id.to_owned();
        let row = db_run!(self, |ops, c| ops::library_for_user(c, &user, &new))?;
        Ok(Library {
            id: models::parse_id(&row.id)?,
            user_id: user_id.to_owned(),
            version: row.version,
        })
    }

    /// The members of a library, by user id.
    pub async fn members(&self, library_id: Uuid) -> Result<Vec<librarian_core::Member>, Error> {
        let lib = library_id.to_string();
        let rows = db_run!(self, |ops, c| ops::members(c, &lib, None))?;
        rows.into_iter()
            .map(models::MemberRow::into_member)
            .collect()
    }

    /// [`Store::members`] for `user` (`NoSuchLibrary` unless a member, checked in the same
    /// read).
    pub async fn members_as(&self, library_id: Uuid, user: &str) -> Result<Vec<Member>, Error> {
        let (lib, user) = (library_id.to_string(), user.to_owned());
        let rows = db_run!(self, |ops, c| ops::members(c, &lib, Some(&user)))?;
        rows.into_iter()
            .map(models::MemberRow::into_member)
            .collect()
    }

    /// Validates and applies one mutation to a library in one transaction: the rows, the
    /// library version bump and the idempotency record commit together or not at all.
    /// `user` must be a member who may write (404 for a non-member, 403 for a viewer), checked
    /// in the same transaction after the library's row lock is taken, so that a write never
    /// commits after its author's removal.
    pub async fn apply(
        &self,
        library_id: Uuid,
        user: &str,
        mutation: Mutation,
        opts: MutationOptions,
    ) -> Result<Committed, Error> {
        validate(&mutation, &self.inner.limits)?;
        if let Some(key) = &opts.idempotency_key {
            validate_idempotency_key(key, &self.inner.limits)?;
        }
        let fingerprint = opts
            .idempotency_key
            .as_ref()
            .map(|_| fingerprint(&mutation, opts.if_version));
        let now = librarian_core::Timestamp::now().millis();
        let lib = library_id.to_string();
        let user = user.to_owned();
        db_run!(self,
            postgres(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                conn.transaction(async move |c| {
                    let committed = ops::pg::apply(
                        c,
                        &lib,
                        &user,
                        &mutation,
                        &opts,
                        fingerprint.as_deref(),
                        now,
                    )
                    .await?;
                    // Delivered by PostgreSQL on commit only, to every listening instance.
                    notify(c, &lib, committed.library_version).await?;
                    Ok(committed)
                })
                .await
                .or_else(TxError::into_result)
            },
            sqlite(pool) => {
                let writer = self.inner.sqlite_writer.clone().lock_owned().await;
                let conn = pool.get().await.map_err(pool_error)?;
                let late = self.inner.late_commits.clone();
                sqlite_blocking_or(
                    conn,
                    move |c| {
                        // Held until the write ends, even once nobody waits for it.
                        let _writer = writer;
                        c.immediate_transaction(|c| {
                            ops::sqlite::apply(
                                c,
                                &lib,
                                &user,
                                &mutation,
                                &opts,
                                fingerprint.as_deref(),
                                now,
                            )
                        })
                    },
                    // The caller gave up (query timeout), yet the write committed: announce it.
                    move |result| {
                        if let Ok(committed) = result {
                            tracing::warn!(%library_id, version = committed.library_version,
                                "a write committed after its request had timed out");
                            let _ = late.send(LateCommit {
                                library_id,
                                version: committed.library_version,
                            });
                        }
                    },
                )
                .await
                .or_else(TxError::into_result)
            },
        )
    }

    /// Deletes the idempotency records older than `older_than` and returns how many went, in
    /// batches of [`PURGE_BATCH`] rows (each one statement bounded by the query timeout), so
    /// that writers wait at most for one batch. A key purged is forgotten: a retry carrying it
    /// is applied anew.
    pub async fn purge_idempotency(&self, older_than: Duration) -> Result<u64, Error> {
        let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let cutoff = librarian_core::Timestamp::now()
            .millis()
            .saturating_sub(age);
        let mut purged = 0_u64;
        loop {
            let deleted = db_run!(self,
                postgres(pool) => {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    ops::pg::purge_idempotency(&mut conn, cutoff, PURGE_BATCH)
                        .await
                        .map_err(TxError::into_error)
                },
                sqlite(pool) => {
                    // Queued like every writer; held until the batch is done even if this
                    // future is dropped at the timeout, so it never races the next writer.
                    let writer = self.inner.sqlite_writer.clone().lock_owned().await;
                    let conn = pool.get().await.map_err(pool_error)?;
                    sqlite_blocking(conn, move |c| {
                        let deleted = ops::sqlite::purge_idempotency(c, cutoff, PURGE_BATCH);
                        drop(writer);
                        deleted
                    })
                    .await
                    .map_err(TxError::into_error)
                },
            )?;
            purged += deleted as u64;
            if (deleted as i64) < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    /// One row of a library for `user` (`NotFound` also for another library's rows;
    /// `NoSuchLibrary` unless `user` is a member).
    pub async fn get(
        &self,
        library_id: Uuid,
        user: &str,
        kind: EntityKind,
        id: Uuid,
    ) -> Result<Entity, Error> {
        let (lib, user) = (library_id.to_string(), user.to_owned());
        db_run!(self, |ops, c| ops::get(c, &lib, &user, kind, id))
    }

    /// The whole library at its current version, read in one transaction (for the sync core,
    /// which serves it to members only). `NoSuchLibrary` once it is gone.
    pub async fn load_library(&self, library_id: Uuid) -> Result<LibrarySnapshot, Error> {
        self.load(library_id, None).await
    }

    /// What changed in the library after version `since`, read in one transaction (see
    /// [`LibraryChanges`]). What the sync core reloads with, so that an edit of one row of a
    /// large library reads that row, not all of them.
    pub async fn load_changes(
        &self,
        library_id: Uuid,
        since: i64,
    ) -> Result<LibraryChanges, Error> {
        let lib = library_id.to_string();
        db_run!(self,
            postgres(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                conn.build_transaction()
                    .repeatable_read()
                    .read_only()
                    .run(async move |c| ops::pg::load_changes(c, &lib, since).await)
                    .await
                    .map_err(TxError::into_error)
            },
            sqlite(pool) => {
                let conn = pool.get().await.map_err(pool_error)?;
                sqlite_blocking(conn, move |c| {
                    c.transaction(|c| ops::sqlite::load_changes(c, &lib, since))
                })
                .await
                .map_err(TxError::into_error)
            },
        )
    }

    /// [`Store::load_library`] for `user`: `NoSuchLibrary` unless a member, checked in the
    /// same read transaction.
    pub async fn load_library_as(
        &self,
        library_id: Uuid,
        user: &str,
    ) -> Result<LibrarySnapshot, Error> {
        self.load(library_id, Some(user.to_owned())).await
    }

    async fn load(&self, library_id: Uuid, user: Option<String>) -> Result<LibrarySnapshot, Error> {
        let lib = library_id.to_string();
        db_run!(self,
            postgres(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                conn.build_transaction()
                    .repeatable_read()
                    .read_only()
                    .run(async move |c| match &user {
                        Some(user) => ops::pg::load_as(c, &lib, user).await,
                        None => ops::pg::load(c, &lib).await,
                    })
                    .await
                    .map_err(TxError::into_error)
            },
            sqlite(pool) => {
                let conn = pool.get().await.map_err(pool_error)?;
                // A deferred transaction reads one WAL snapshot from its first SELECT on.
                sqlite_blocking(conn, move |c| {
                    c.transaction(|c| match &user {
                        Some(user) => ops::sqlite::load_as(c, &lib, user),
                        None => ops::sqlite::load(c, &lib),
                    })
                })
                .await
                .map_err(TxError::into_error)
            },
        )
    }

    // ---- libraries and members (DESIGN §9) ----------------------------------------------

    /// `user`'s role in the library and its current version, read together (`NoSuchLibrary`
    /// unless a member).
    pub async fn access(&self, library_id: Uuid, user: &str) -> Result<(Role, i64), Error> {
        let (lib, user) = (library_id.to_string(), user.to_owned());
        db_run!(self, |ops, c| ops::access(c, &lib, &user))
    }

    /// Every library `user` is a member of: their default one (created on first use) first,
    /// then the others by name.
    pub async fn libraries(&self, user: &str) -> Result<Vec<LibraryInfo>, Error> {
        self.library_for_user(user).await?;
        let user = user.to_owned();
        db_run!(self, |ops, c| ops::libraries_of(c, &user))
    }

    /// One library as `user` sees it listed (`NoSuchLibrary` unless a member).
    pub async fn library_info(&self, library_id: Uuid, user: &str) -> Result<LibraryInfo, Error> {
        let (lib, user) = (library_id.to_string(), user.to_owned());
        db_run!(self, |ops, c| ops::library_info(c, &lib, &user))
    }

    /// A new, empty library owned by `user`.
    pub async fn create_library(&self, user: &str, name: &str) -> Result<LibraryInfo, Error> {
        validate_library_name(name, &self.inner.limits)?;
        let now = librarian_core::Timestamp::now().millis();
        let id = Uuid::now_v7();
        let row = models::LibraryRow {
            id: id.to_string(),
            name: name.to_owned(),
            default_for: None,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let owner = user.to_owned();
        db_run!(self,
            postgres(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                conn.transaction(async move |c| ops::pg::create_library(c, &row, &owner).await)
                    .await
                    .map_err(TxError::into_error)
            },
            sqlite(pool) => {
                let writer = self.inner.sqlite_writer.clone().lock_owned().await;
                let conn = pool.get().await.map_err(pool_error)?;
                sqlite_blocking(conn, move |c| {
                    let _writer = writer;
                    c.immediate_transaction(|c| ops::sqlite::create_library(c, &row, &owner))
                })
                .await
                .map_err(TxError::into_error)
            },
        )?;
        self.library_info(id, user).await
    }

    /// Renames a library (its owner only; 403 for other members). Not a change of what the
    /// library holds: its version stays.
    pub async fn rename_library(
        &self,
        library_id: Uuid,
        user: &str,
        name: &str,
    ) -> Result<LibraryInfo, Error> {
        validate_library_name(name, &self.inner.limits)?;
        let now = librarian_core::Timestamp::now().millis();
        let (lib, owner, name) = (library_id.to_string(), user.to_owned(), name.to_owned());
        write_run!(self, lib, |_: &()| None, |ops, c| ops::rename_library(
            c, &lib, &owner, &name, now
        ))?;
        self.library_info(library_id, user).await
    }

    /// Deletes a library and everything in it (its owner only; not a user's default library).
    /// Answers the version its deletion is announced as: every session on it ends.
    pub async fn delete_library(&self, library_id: Uuid, user: &str) -> Result<i64, Error> {
        let now = librarian_core::Timestamp::now().millis();
        let (lib, owner) = (library_id.to_string(), user.to_owned());
        write_run!(self, lib, |v: &i64| Some(*v), |ops, c| ops::delete_library(
            c, &lib, &owner, now
        ))
    }

    /// Gives `target` a role in the library (its owner only). Answers the member, whether
    /// they were added (not changed), and the library version the change produced.
    pub async fn put_member(
        &self,
        library_id: Uuid,
        user: &str,
        target: &str,
        role: Role,
    ) -> Result<(Member, bool, i64), Error> {
        let now = librarian_core::Timestamp::now().millis();
        let (lib, owner, target) = (library_id.to_string(), user.to_owned(), target.to_owned());
        let (row, added, version) = write_run!(
            self,
            lib,
            |out: &(models::MemberRow, bool, i64)| Some(out.2),
            |ops, c| ops::put_member(c, &lib, &owner, &target, role, now)
        )?;
        Ok((row.into_member()?, added, version))
    }

    /// Removes `target` from the library (its owner, or `target` themself leaving). Answers
    /// the library version the removal produced: no session of `target` on the library gets
    /// a snapshot at or after it.
    pub async fn remove_member(
        &self,
        library_id: Uuid,
        user: &str,
        target: &str,
    ) -> Result<i64, Error> {
        let now = librarian_core::Timestamp::now().millis();
        let (lib, actor, target) = (library_id.to_string(), user.to_owned(), target.to_owned());
        write_run!(self, lib, |v: &i64| Some(*v), |ops, c| ops::remove_member(
            c, &lib, &actor, &target, now
        ))
    }
}

impl Store {
    async fn timed<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let limit = self.inner.query_timeout;
        tokio::time::timeout(limit, op).await.unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "the database did not answer within {} ms (database.query_timeout_ms)",
                limit.as_millis()
            )))
        })
    }
}

/// Names this process's connections (`application_name=<name>-<pid>`) unless the URL already
/// does, so that operators (and tests) can tell them apart in `pg_stat_activity`.
pub fn with_application_name(url: &str, name: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(k, _)| k == "application_name") => {
            parsed.query_pairs_mut().append_pair(
                "application_name",
                &format!("{name}-{}", std::process::id()),
            );
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Takes an exclusive lock next to the SQLite file, held as long as the store lives: SQLite is
/// one instance, and a second process on the same file is refused with a clear message.
fn lock_instance(path: &std::path::Path) -> Result<std::fs::File, Error> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Unavailable(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Unavailable(format!(
            "another librarian process is already serving {}: SQLite supports one instance \
             (use PostgreSQL to run several)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    config: &StoreConfig,
) -> Result<Pool<C>, Error>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the connection pool: {e}")))
}

/// Runs sync diesel code on a pooled SQLite connection's blocking thread, from a task of its
/// own, so that the caller may stop waiting (the query timeout) without stopping the work, which
/// then ends in the background and gives its connection back to the pool. (Dropping
/// diesel-async's blocking future before it is done would block the dropping thread until the
/// work ends, and panic on a current-thread runtime such as actix's.)
async fn sqlite_blocking<R: Send + 'static>(
    conn: Object<SqliteConn>,
    task: impl FnOnce(&mut SqliteConnection) -> Result<R, TxError> + Send + 'static,
) -> Result<R, TxError> {
    sqlite_blocking_or(conn, task, drop).await
}

/// [`sqlite_blocking`], where `unheard` gets the result if the caller stopped waiting for it
/// (its future was dropped, e.g. by the query timeout) while the work ran on.
async fn sqlite_blocking_or<R: Send + 'static>(
    mut conn: Object<SqliteConn>,
    task: impl FnOnce(&mut SqliteConnection) -> Result<R, TxError> + Send + 'static,
    unheard: impl FnOnce(Result<R, TxError>) + Send + 'static,
) -> Result<R, TxError> {
    let (done, outcome) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(result) = done.send(sqlite_run(&mut conn, task).await) {
            unheard(result);
        }
    });
    outcome
        .await
        .unwrap_or_else(|_| Err(Error::Internal("the SQLite task vanished".into()).into()))
}

/// Runs sync diesel code on a pooled SQLite connection's blocking thread. The caller must see it
/// through (see [`sqlite_blocking`]).
async fn sqlite_run<R: Send + 'static>(
    conn: &mut Object<SqliteConn>,
    task: impl FnOnce(&mut SqliteConnection) -> Result<R, TxError> + Send + 'static,
) -> Result<R, TxError> {
    conn.spawn_blocking(move |c| Ok(task(c)))
        .await
        .map_err(TxError::Db)?
}

/// Applies PostgreSQL's pending migrations on a sync connection of its own, under the advisory
/// lock that keeps instances from migrating at once, each statement (the lock wait included)
/// bounded by `statement_timeout_ms`.
fn migrate_postgres(url: &str, statement_timeout_ms: u128) -> Result<usize, Error> {
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_migrations::MigrationHarness;
    let mut conn =
        <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(url)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
    diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
        .execute(&mut conn)
        .map_err(db_error)?;
    diesel::sql_query(format!(
        "SELECT pg_advisory_lock({})",
        migrate::PG_MIGRATION_LOCK
    ))
    .execute(&mut conn)
    .map_err(db_error)?;
    let ran = conn
        .run_pending_migrations(migrate::PG_MIGRATIONS)
        .map(|v| v.len())
        .map_err(|e| Error::Internal(format!("migration failed: {e}")));
    // The lock also goes away with the connection; unlocking is a courtesy.
    let _ = diesel::sql_query(format!(
        "SELECT pg_advisory_unlock({})",
        migrate::PG_MIGRATION_LOCK
    ))
    .execute(&mut conn);
    ran
}

/// Identifies a request for idempotency: the same key with a different request is refused.
fn fingerprint(m: &Mutation, if_version: Option<i64>) -> String {
    let body = serde_json::to_string(&(m, if_version)).unwrap_or_default();
    let digest = Sha256::digest(body.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
