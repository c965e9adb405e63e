//! Presence across instances on PostgreSQL (DESIGN §9). Each instance keeps its own sessions in
//! memory and writes them here (at most every 100 ms per library, by the presence actor), then
//! notifies `librarian_presence` with `"<library_id> <instance_id>"`; the other instances read
//! the library's rows again. Each instance heartbeats its `presence_instances` row; rows of an
//! instance whose heartbeat is older than the expiry are ignored by readers and deleted by the
//! next live instance's heartbeat ([`Store::presence_heartbeat`]), which answers the libraries
//! that lost sessions so that their presence is announced again.
//!
//! Times are PostgreSQL's clock (`clock_timestamp()`), so instances need not agree on theirs.
//! On SQLite (one instance) every operation here is a no-op.

use crate::error::{TxError, pool_error};
use crate::{Pools, Store, listener, models::parse_id};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use librarian_core::protocol::PresenceSession;
use librarian_core::{Error, Timestamp};
use uuid::Uuid;

/// PostgreSQL's clock, in epoch milliseconds.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// One session to write for this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    pub session_id: Uuid,
    pub user_id: String,
    pub seen_version: Option<i64>,
    pub connected_at: Timestamp,
}

#[derive(diesel::QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = Text)]
    session_id: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    seen_version: Option<i64>,
    #[diesel(sql_type = BigInt)]
    connected_at: i64,
}

#[derive(diesel::QueryableByName)]
struct LibraryIdRow {
    #[diesel(sql_type = Text)]
    library_id: String,
}

#[derive(diesel::QueryableByName)]
struct InsertedRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    inserted: bool,
}

impl Store {
    /// Whether presence is shared through the database (PostgreSQL), or kept in memory.
    pub fn presence_is_shared(&self) -> bool {
        matches!(self.inner.pool, Pools::Postgres(_))
    }

    async fn presence_conn(
        &self,
    ) -> Result<Option<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>>, Error>
    {
        match &self.inner.pool {
            Pools::Postgres(pool) => Ok(Some(pool.get().await.map_err(pool_error)?)),
            Pools::Sqlite(_) => Ok(None),
        }
    }

    /// Refreshes this instance's heartbeat and deletes the rows of instances silent for longer
    /// than `expiry_ms`. Answers whether this instance's row had to be created (it is new, or
    /// it was reaped while this instance was stalled: its sessions must be written again) and
    /// the libraries whose sessions were reaped (each notified already).
    pub async fn presence_heartbeat(
        &self,
        instance: Uuid,
        expiry_ms: i64,
    ) -> Result<(bool, Vec<Uuid>), Error> {
        let work = async {
            let Some(mut conn) = self.presence_conn().await? else {
                return Ok((false, Vec::new()));
            };
            let instance = instance.to_string();
            conn.transaction(async |c| {
                let inserted: InsertedRow = diesel::sql_query(format!(
                    "INSERT INTO presence_instances (instance_id, heartbeat_at) VALUES ($1, {NOW_MS}) \
                     ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at \
                     RETURNING (xmax = 0) AS inserted"
                ))
                .bind::<Text, _>(&instance)
                .get_result(c)
                .await?;
                let reaped: Vec<LibraryIdRow> = diesel::sql_query(format!(
                    "DELETE FROM presence_sessions s USING presence_instances i \
                     WHERE s.instance_id = i.instance_id AND i.heartbeat_at < {NOW_MS} - $1 \
                     RETURNING s.library_id"
                ))
                .bind::<BigInt, _>(expiry_ms)
                .load(c)
                .await?;
                diesel::sql_query(format!(
                    "DELETE FROM presence_instances WHERE heartbeat_at < {NOW_MS} - $1"
                ))
                .bind::<BigInt, _>(expiry_ms)
                .execute(c)
                .await?;
                let libraries = notify_each(c, reaped, &instance).await?;
                Ok::<_, TxError>((inserted.inserted, libraries))
            })
            .await
            .map_err(TxError::into_error)
        };
        let (inserted, libraries) = self.timed(work).await?;
        let ids = libraries
            .iter()
            .map(|l| parse_id(l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((inserted, ids))
    }

    /// Writes this instance's sessions of one library (`upsert`) and drops those that ended
    /// (`gone`), then notifies the other instances, in one transaction.
    pub async fn presence_write(
        &self,
        instance: Uuid,
        library_id: Uuid,
        upsert: &[PresenceRow],
        gone: &[Uuid],
    ) -> Result<(), Error> {
        let work = async {
            let Some(mut conn) = self.presence_conn().await? else {
                return Ok(());
            };
            let (instance, library) = (instance.to_string(), library_id.to_string());
            conn.transaction(async |c| {
                for row in upsert {
                    diesel::sql_query(
                        "INSERT INTO presence_sessions \
                         (session_id, instance_id, library_id, user_id, seen_version, connected_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (session_id) DO UPDATE SET seen_version = EXCLUDED.seen_version",
                    )
                    .bind::<Text, _>(row.session_id.to_string())
                    .bind::<Text, _>(&instance)
                    .bind::<Text, _>(&library)
                    .bind::<Text, _>(&row.user_id)
                    .bind::<Nullable<BigInt>, _>(row.seen_version)
                    .bind::<BigInt, _>(row.connected_at.millis())
                    .execute(c)
                    .await?;
                }
                for session in gone {
                    diesel::sql_query("DELETE FROM presence_sessions WHERE session_id = $1")
                        .bind::<Text, _>(session.to_string())
                        .execute(c)
                        .await?;
                }
                notify_presence(c, &library, &instance).await?;
                Ok::<_, TxError>(())
            })
            .await
            .map_err(TxError::into_error)
        };
        self.timed(work).await
    }

    /// The sessions of one library held by the other live instances.
    pub async fn presence_read(
        &self,
        instance: Uuid,
        library_id: Uuid,
        expiry_ms: i64,
    ) -> Result<Vec<PresenceSession>, Error> {
        let work = async {
            let Some(mut conn) = self.presence_conn().await? else {
                return Ok(Vec::new());
            };
            diesel::sql_query(format!(
                "SELECT s.session_id, s.user_id, s.seen_version, s.connected_at \
                 FROM presence_sessions s JOIN presence_instances i USING (instance_id) \
                 WHERE s.library_id = $1 AND s.instance_id <> $2 \
                 AND i.heartbeat_at >= {NOW_MS} - $3"
            ))
            .bind::<Text, _>(library_id.to_string())
            .bind::<Text, _>(instance.to_string())
            .bind::<BigInt, _>(expiry_ms)
            .load::<SessionRow>(&mut conn)
            .await
            .map_err(|e| TxError::from(e).into_error())
        };
        self.timed(work)
            .await?
            .into_iter()
            .map(|r| {
                Ok(PresenceSession {
                    session_id: parse_id(&r.session_id)?,
                    user_id: r.user_id,
                    seen_version: r.seen_version,
                    connected_at: Timestamp(r.connected_at),
                })
            })
            .collect()
    }

    /// This instance stops: its rows go, and the libraries it served are told.
    pub async fn presence_leave(&self, instance: Uuid) -> Result<(), Error> {
        let work = async {
            let Some(mut conn) = self.presence_conn().await? else {
                return Ok(());
            };
            let instance = instance.to_string();
            conn.transaction(async |c| {
                let libraries: Vec<LibraryIdRow> = diesel::sql_query(
                    "DELETE FROM presence_sessions WHERE instance_id = $1 RETURNING library_id",
                )
                .bind::<Text, _>(&instance)
                .load(c)
                .await?;
                diesel::sql_query("DELETE FROM presence_instances WHERE instance_id = $1")
                    .bind::<Text, _>(&instance)
                    .execute(c)
                    .await?;
                notify_each(c, libraries, &instance).await?;
                Ok::<_, TxError>(())
            })
            .await
            .map_err(TxError::into_error)
        };
        self.timed(work).await
    }
}

/// Notifies each library of `rows` once (they repeat: one row per session); answers them.
async fn notify_each(
    c: &mut AsyncPgConnection,
    rows: Vec<LibraryIdRow>,
    instance: &str,
) -> Result<Vec<String>, TxError> {
    let mut libraries: Vec<String> = rows.into_iter().map(|r| r.library_id).collect();
    libraries.sort_unstable();
    libraries.dedup();
    for library in &libraries {
        notify_presence(c, library, instance).await?;
    }
    Ok(libraries)
}

async fn notify_presence(
    c: &mut AsyncPgConnection,
    library: &str,
    instance: &str,
) -> Result<(), TxError> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(listener::PRESENCE_CHANNEL)
        .bind::<Text, _>(format!("{library} {instance}"))
        .execute(c)
        .await?;
    Ok(())
}
