//! Embedded migrations (`migrations/postgres`, `migrations/sqlite`, same names) and the check
//! `/readyz` uses. Migrations run on a plain sync connection inside `spawn_blocking`:
//! diesel-async's own harness calls `block_in_place`, which panics on actix's current-thread
//! runtime.

use diesel::migration::MigrationSource;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub(crate) const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../../migrations/sqlite");

/// Advisory lock key held while migrating PostgreSQL, so that several instances starting at
/// once do not race each other ("lbrn" in ASCII).
pub(crate) const PG_MIGRATION_LOCK: i64 = 0x6c62_726e;

/// Versions of the embedded migrations, e.g. `20261126000000`.
pub(crate) fn embedded_versions<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
) -> Vec<String>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    MigrationSource::<DB>::migrations(source)
        .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default()
}
