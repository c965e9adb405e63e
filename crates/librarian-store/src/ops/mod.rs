//! The SQL of every store operation, written once and compiled twice: as async functions over
//! `AsyncPgConnection`, and as sync functions over `SqliteConnection` that the store runs inside
//! `spawn_blocking` (sync diesel on SQLite allows multi-row inserts and loads 2–3× faster than
//! going through `SyncConnectionWrapper`'s async API).
//!
//! The bodies live in `body/`, one file per entity (`library.rs`: the write transaction's frame,
//! idempotency records, loads and library rows; `projects.rs`, `context_blocks.rs`,
//! `saved_prompts.rs`). `pg` and `sqlite` each include every file into a submodule of the
//! same name. Inside them, `run!(expr)` means "the result of this query" (`expr.await` on
//! PostgreSQL, `expr` on SQLite), and `maybe_async! { fn … }` declares a function that is
//! `async` on PostgreSQL only; `Conn` and the right `RunQueryDsl` come from the including module.
//! Everything else is ordinary diesel. Helpers that run no SQL are here, compiled once.

use crate::error::TxError;
use crate::models::{ContextBlockRow, ProjectRow, SavedPromptRow};
use librarian_core::{Committed, ContextBlock, Entity, EntityKind, Error, Project, SavedPrompt};
use std::collections::HashMap;

/// One backend's share of `body/`: a submodule per file (which see the including module's
/// `run!`, `maybe_async!`, `Conn` and `RunQueryDsl`), and the operations the store calls.
macro_rules! bodies {
    () => {
        mod library {
            include!("body/library.rs");
        }
        mod members {
            include!("body/members.rs");
        }
        mod projects {
            include!("body/projects.rs");
        }
        mod context_blocks {
            include!("body/context_blocks.rs");
        }
        mod saved_prompts {
            include!("body/saved_prompts.rs");
        }
        pub(crate) use library::{
            applied_migrations, apply, get, library_for_user, library_versions, load, load_as,
            load_changes, members, purge_idempotency,
        };
        pub(crate) use members::{
            access, create_library, delete_library, libraries_of, library_info, put_member,
            remove_member, rename_library,
        };
    };
}

pub(crate) mod pg {
    macro_rules! run {
        ($e:expr) => {
            $e.await
        };
    }
    macro_rules! maybe_async {
        ($(#[$m:meta])* $v:vis fn $($rest:tt)*) => { $(#[$m])* $v async fn $($rest)* };
    }
    use diesel_async::RunQueryDsl;
    type Conn = diesel_async::AsyncPgConnection;
    bodies!();
}

pub(crate) mod sqlite {
    macro_rules! run {
        ($e:expr) => {
            $e
        };
    }
    macro_rules! maybe_async {
        ($($t:tt)*) => { $($t)* };
    }
    use diesel::RunQueryDsl;
    type Conn = diesel::SqliteConnection;
    bodies!();
}

/// Ids per `IN (…)` query: far below SQLite's limit on bound parameters.
const FETCH_CHUNK: usize = 500;

/// The rows of a load as entities, each prompt with its blocks (`refs`: prompt id, block id,
/// in position order).
type Entities = (Vec<Project>, Vec<ContextBlock>, Vec<SavedPrompt>);

fn entities(
    projects: &[ProjectRow],
    blocks: &[ContextBlockRow],
    prompts: &[SavedPromptRow],
    refs: Vec<(String, String)>,
) -> Result<Entities, Error> {
    let mut by_prompt: HashMap<String, Vec<uuid::Uuid>> = HashMap::new();
    for (prompt_id, block_id) in refs {
        by_prompt
            .entry(prompt_id)
            .or_default()
            .push(crate::models::parse_id(&block_id)?);
    }
    Ok((
        projects
            .iter()
            .map(ProjectRow::to_entity)
            .collect::<Result<_, _>>()?,
        blocks
            .iter()
            .map(ContextBlockRow::to_entity)
            .collect::<Result<_, _>>()?,
        prompts
            .iter()
            .map(|p| p.to_entity(by_prompt.remove(&p.id).unwrap_or_default()))
            .collect::<Result<_, _>>()?,
    ))
}

/// True when making `new_parent` the parent of `id` would put `id` among its own ancestors.
/// `parents` maps every project of the library to its parent.
fn creates_cycle(parents: &HashMap<String, Option<String>>, new_parent: &str, id: &str) -> bool {
    let mut cursor = Some(new_parent);
    // The walk is bounded by the number of projects, even if the stored tree were broken.
    for _ in 0..=parents.len() {
        match cursor {
            None => return false,
            Some(c) if c == id => return true,
            Some(c) => cursor = parents.get(c).and_then(|p| p.as_deref()),
        }
    }
    true
}

fn kind_from_str(s: &str) -> Result<EntityKind, Error> {
    match s {
        "project" => Ok(EntityKind::Project),
        "context_block" => Ok(EntityKind::ContextBlock),
        "saved_prompt" => Ok(EntityKind::SavedPrompt),
        other => Err(Error::Internal(format!(
            "unknown stored entity kind {other:?}"
        ))),
    }
}

fn check_version(expected: Option<i64>, actual: i64) -> bool {
    expected.is_none_or(|e| e == actual)
}

/// The 412 refusal of a stale `If-Match`, carrying the row as it is.
fn mismatch(expected: Option<i64>, current: Entity) -> TxError {
    Error::VersionMismatch {
        expected: expected.unwrap_or_default(),
        current: Box::new(current),
    }
    .into()
}

/// A reference to a row the library does not have.
fn no_such(field: &str, kind: EntityKind, id: &str) -> TxError {
    Error::invalid(
        field,
        format!("no such {}: {id}", kind.as_str().replace('_', " ")),
    )
    .into()
}

/// Rebuilds the first answer to an idempotency key from its stored record.
fn replayed(row: &crate::models::IdempotencyRow) -> Result<Committed, Error> {
    let kind = kind_from_str(&row.kind)?;
    let data = row
        .response
        .as_deref()
        .map(|json| Entity::from_json(kind, json))
        .transpose()
        .map_err(|e| Error::Internal(format!("stored idempotent reply is unreadable: {e}")))?;
    Ok(Committed {
        data,
        library_version: row.library_version,
        kind,
        id: crate::models::parse_id(&row.entity_id)?,
        replayed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_detection_walks_all_ancestors() {
        let parents: HashMap<String, Option<String>> = [
            ("a".to_owned(), None),
            ("b".to_owned(), Some("a".to_owned())),
            ("c".to_owned(), Some("b".to_owned())),
        ]
        .into_iter()
        .collect();
        assert!(creates_cycle(&parents, "c", "a"));
        assert!(creates_cycle(&parents, "b", "b"));
        assert!(!creates_cycle(&parents, "a", "c"));
        assert!(!creates_cycle(&parents, "b", "c"));
    }
}
