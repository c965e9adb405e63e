// The library as a whole: the write transaction's frame (version bump, idempotency records,
// dispatch to the entity modules), loads, single-row reads and library rows. Included once per
// backend by `ops/mod.rs` (see there for `run!`, `maybe_async!`, `Conn` and `RunQueryDsl`).

use super::context_blocks::{
    create_context_block, delete_context_block, find_context_block, update_context_block,
};
use super::projects::{create_project, delete_project, find_project, update_project};
use super::saved_prompts::{
    create_saved_prompt, delete_saved_prompt, find_saved_prompt, prompt_block_ids,
    update_saved_prompt,
};
use super::{Conn, RunQueryDsl};
use super::members::{bump, no_library, require_member, require_writer, role_of};
use crate::error::TxError;
use crate::models::{
    ContextBlockRow, IdempotencyRow, LibraryRow, MemberRow, ProjectRow, SavedPromptRow, parse_id,
    parse_role,
};
use crate::ops::{FETCH_CHUNK, entities, replayed};
use crate::schema::{
    context_blocks, idempotency_keys, libraries, library_members, projects, saved_prompt_blocks,
    saved_prompts,
};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use librarian_core::{
    Committed, Entity, EntityKind, Error, LibrarySnapshot, Mutation, MutationOptions,
};
use uuid::Uuid;

maybe_async! {
/// Applies one mutation inside the caller's write transaction and returns what it committed.
pub(crate) fn apply(
    conn: &mut Conn,
    lib: &str,
    user: &str,
    m: &Mutation,
    opts: &MutationOptions,
    fingerprint: Option<&str>,
    now: i64,
) -> Result<Committed, TxError> {
    // Bumping the library row first takes its row lock (SQLite: the write lock), which
    // serializes every write to this library and makes the checks below race-free, the
    // author's membership first (see members.rs).
    let version = run!(bump(conn, lib, now))?;
    run!(require_writer(conn, lib, user))?;

    let idempotency = opts.idempotency_key.as_deref().zip(fingerprint);
    if let Some((key, fp)) = idempotency {
        run!(check_idempotency_key(conn, lib, key, fp))?;
    }

    let v = opts.if_version;
    let (id, data) = match m {
        Mutation::CreateProject(new) => {
            let p = run!(create_project(conn, lib, new, now, version))?;
            (p.id, Some(Entity::Project(p)))
        }
        Mutation::UpdateProject { id, patch } => {
            let p = run!(update_project(conn, lib, *id, patch, v, now, version))?;
            (p.id, Some(Entity::Project(p)))
        }
        Mutation::DeleteProject { id } => {
            run!(delete_project(conn, lib, *id, v, now, version))?;
            (*id, None)
        }
        Mutation::CreateContextBlock(new) => {
            let b = run!(create_context_block(conn, lib, new, now, version))?;
            (b.id, Some(Entity::ContextBlock(b)))
        }
        Mutation::UpdateContextBlock { id, patch } => {
            let b = run!(update_context_block(conn, lib, *id, patch, v, now, version))?;
            (b.id, Some(Entity::ContextBlock(b)))
        }
        Mutation::DeleteContextBlock { id } => {
            run!(delete_context_block(conn, lib, *id, v, now, version))?;
            (*id, None)
        }
        Mutation::CreateSavedPrompt(new) => {
            let p = run!(create_saved_prompt(conn, lib, new, now, version))?;
            (p.id, Some(Entity::SavedPrompt(p)))
        }
        Mutation::UpdateSavedPrompt { id, patch } => {
            let p = run!(update_saved_prompt(conn, lib, *id, patch, v, now, version))?;
            (p.id, Some(Entity::SavedPrompt(p)))
        }
        Mutation::DeleteSavedPrompt { id } => {
            run!(delete_saved_prompt(conn, lib, *id, v))?;
            (*id, None)
        }
    };

    if matches!(
        m,
        Mutation::DeleteProject { .. }
            | Mutation::DeleteContextBlock { .. }
            | Mutation::DeleteSavedPrompt { .. }
    ) {
        // What tells a reload across this version to look for deleted rows (load_changes).
        run!(diesel::update(libraries::table.find(lib))
            .set(libraries::deleted_in.eq(version))
            .execute(conn))?;
    }

    let committed = Committed {
        data,
        library_version: version,
        kind: m.kind(),
        id,
        replayed: false,
    };
    if let Some((key, fp)) = idempotency {
        run!(record_idempotency_key(conn, lib, key, fp, &committed, now))?;
    }
    Ok(committed)
}
}

// ---- idempotency ----------------------------------------------------------------------------

maybe_async! {
/// A key seen before ends the transaction: with its stored answer (`TxError::Replay`, which
/// rolls back the version bump) or, for another request, with `IdempotencyKeyReused`.
fn check_idempotency_key(conn: &mut Conn, lib: &str, key: &str, fp: &str) -> Result<(), TxError> {
    let prior: Option<IdempotencyRow> = run!(idempotency_keys::table
        .find((lib, key))
        .select(IdempotencyRow::as_select())
        .first(conn))
    .optional()?;
    match prior {
        None => Ok(()),
        Some(prior) if prior.fingerprint != fp => Err(Error::IdempotencyKeyReused.into()),
        Some(prior) => Err(TxError::Replay(Box::new(replayed(&prior)?))),
    }
}
}

maybe_async! {
/// Stores the first answer to a key, in the mutation's own transaction.
fn record_idempotency_key(
    conn: &mut Conn,
    lib: &str,
    key: &str,
    fp: &str,
    committed: &Committed,
    now: i64,
) -> Result<(), TxError> {
    let response = committed
        .data
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Internal(format!("cannot encode reply: {e}")))?;
    let record = IdempotencyRow {
        library_id: lib.to_owned(),
        key: key.to_owned(),
        fingerprint: fp.to_owned(),
        kind: committed.kind.as_str().to_owned(),
        entity_id: committed.id.to_string(),
        response,
        library_version: committed.library_version,
        created_at: now,
    };
    run!(diesel::insert_into(idempotency_keys::table).values(&record).execute(conn))?;
    Ok(())
}
}

// ---- reads ----------------------------------------------------------------------------------

maybe_async! {
/// The whole library, inside the caller's read transaction; `NoSuchLibrary` once it is gone.
pub(crate) fn load(conn: &mut Conn, lib: &str) -> Result<LibrarySnapshot, TxError> {
    let version: i64 = run!(libraries::table
        .find(lib)
        .select(libraries::version)
        .first(conn))
    .optional()?
    .ok_or_else(|| no_library(lib))?;
    let members = run!(load_members(conn, lib))?;
    let project_rows: Vec<ProjectRow> = run!(projects::table
        .filter(projects::library_id.eq(lib))
        .order((projects::created_at, projects::id))
        .select(ProjectRow::as_select())
        .load(conn))?;
    let block_rows: Vec<ContextBlockRow> = run!(context_blocks::table
        .filter(context_blocks::library_id.eq(lib))
        .order((context_blocks::created_at, context_blocks::id))
        .select(ContextBlockRow::as_select())
        .load(conn))?;
    let prompt_rows: Vec<SavedPromptRow> = run!(saved_prompts::table
        .filter(saved_prompts::library_id.eq(lib))
        .order((saved_prompts::created_at, saved_prompts::id))
        .select(SavedPromptRow::as_select())
        .load(conn))?;
    let refs: Vec<(String, String)> = run!(saved_prompt_blocks::table
        .filter(saved_prompt_blocks::library_id.eq(lib))
        .order((saved_prompt_blocks::prompt_id, saved_prompt_blocks::position))
        .select((saved_prompt_blocks::prompt_id, saved_prompt_blocks::block_id))
        .load(conn))?;
    let (projects, context_blocks, saved_prompts) =
        entities(&project_rows, &block_rows, &prompt_rows, refs)?;
    Ok(LibrarySnapshot { projects, context_blocks, saved_prompts, members, version })
}
}

maybe_async! {
/// The whole library for `user` (404 unless a member), inside the caller's read transaction.
pub(crate) fn load_as(conn: &mut Conn, lib: &str, user: &str) -> Result<LibrarySnapshot, TxError> {
    run!(require_member(conn, lib, user))?;
    run!(load(conn, lib))
}
}

maybe_async! {
/// What changed in the library since version `since` (DESIGN §10): the rows written after it
/// (their `changed_in` index, not a scan of the library), the members, and when a write after
/// `since` deleted rows, every id the library has now (to tell which). All in the caller's
/// read transaction.
pub(crate) fn load_changes(conn: &mut Conn, lib: &str, since: i64) -> Result<crate::LibraryChanges, TxError> {
    let (version, deleted_in): (i64, i64) = run!(libraries::table
        .find(lib)
        .select((libraries::version, libraries::deleted_in))
        .first(conn))
    .optional()?
    .ok_or_else(|| no_library(lib))?;
    let project_rows: Vec<ProjectRow> = run!(projects::table
        .filter(projects::library_id.eq(lib))
        .filter(projects::changed_in.gt(since))
        .order((projects::created_at, projects::id))
        .select(ProjectRow::as_select())
        .load(conn))?;
    let block_rows: Vec<ContextBlockRow> = run!(context_blocks::table
        .filter(context_blocks::library_id.eq(lib))
        .filter(context_blocks::changed_in.gt(since))
        .order((context_blocks::created_at, context_blocks::id))
        .select(ContextBlockRow::as_select())
        .load(conn))?;
    let prompt_rows: Vec<SavedPromptRow> = run!(saved_prompts::table
        .filter(saved_prompts::library_id.eq(lib))
        .filter(saved_prompts::changed_in.gt(since))
        .order((saved_prompts::created_at, saved_prompts::id))
        .select(SavedPromptRow::as_select())
        .load(conn))?;
    let mut refs: Vec<(String, String)> = Vec::new();
    let prompt_ids: Vec<&str> = prompt_rows.iter().map(|p| p.id.as_str()).collect();
    for chunk in prompt_ids.chunks(FETCH_CHUNK) {
        refs.extend(run!(saved_prompt_blocks::table
            .filter(saved_prompt_blocks::library_id.eq(lib))
            .filter(saved_prompt_blocks::prompt_id.eq_any(chunk))
            .order((saved_prompt_blocks::prompt_id, saved_prompt_blocks::position))
            .select((saved_prompt_blocks::prompt_id, saved_prompt_blocks::block_id))
            .load::<(String, String)>(conn))?);
    }
    let ids = if deleted_in > since {
        let read = |ids: Vec<String>| ids.iter().map(|id| parse_id(id)).collect::<Result<Vec<Uuid>, Error>>();
        Some([
            read(run!(projects::table.filter(projects::library_id.eq(lib)).select(projects::id).load(conn))?)?,
            read(run!(context_blocks::table.filter(context_blocks::library_id.eq(lib)).select(context_blocks::id).load(conn))?)?,
            read(run!(saved_prompts::table.filter(saved_prompts::library_id.eq(lib)).select(saved_prompts::id).load(conn))?)?,
        ])
    } else {
        None
    };
    let (projects, context_blocks, saved_prompts) =
        entities(&project_rows, &block_rows, &prompt_rows, refs)?;
    Ok(crate::LibraryChanges {
        since,
        version,
        members: run!(load_members(conn, lib))?,
        projects,
        context_blocks,
        saved_prompts,
        ids,
    })
}
}

maybe_async! {
/// The library's members, by user id.
fn load_members(conn: &mut Conn, lib: &str) -> Result<Vec<librarian_core::MemberRole>, TxError> {
    let member_rows: Vec<(String, String)> = run!(library_members::table
        .filter(library_members::library_id.eq(lib))
        .order(library_members::user_id)
        .select((library_members::user_id, library_members::role))
        .load(conn))?;
    Ok(member_rows
        .into_iter()
        .map(|(user_id, role)| {
            Ok(librarian_core::MemberRole { role: parse_role(&role)?, user_id })
        })
        .collect::<Result<_, Error>>()?)
}
}

maybe_async! {
/// One row of a library for `user` (404 unless a member), or `NotFound`.
pub(crate) fn get(conn: &mut Conn, lib: &str, user: &str, kind: EntityKind, id: Uuid) -> Result<Entity, TxError> {
    run!(require_member(conn, lib, user))?;
    let id_s = id.to_string();
    let not_found = || TxError::from(Error::NotFound { kind, id });
    Ok(match kind {
        EntityKind::Project => {
            let row = run!(find_project(conn, lib, &id_s))?.ok_or_else(not_found)?;
            Entity::Project(row.to_entity()?)
        }
        EntityKind::ContextBlock => {
            let row = run!(find_context_block(conn, lib, &id_s))?.ok_or_else(not_found)?;
            Entity::ContextBlock(row.to_entity()?)
        }
        EntityKind::SavedPrompt => {
            let row = run!(find_saved_prompt(conn, lib, &id_s))?.ok_or_else(not_found)?;
            let block_ids = run!(prompt_block_ids(conn, lib, &id_s))?;
            Entity::SavedPrompt(row.to_entity(block_ids)?)
        }
    })
}
}

// ---- library rows ---------------------------------------------------------------------------

maybe_async! {
/// The user's own library row, inserted from `new` (with them as its owner) when the user has
/// none yet.
pub(crate) fn library_for_user(
    conn: &mut Conn,
    user: &str,
    new: &LibraryRow,
) -> Result<LibraryRow, TxError> {
    let by_user = || {
        libraries::table
            .filter(libraries::default_for.eq(user))
            .select(LibraryRow::as_select())
    };
    let row = match run!(by_user().first(conn)).optional()? {
        Some(row) => row,
        None => {
            // Two first requests of one user may race here: one insert wins, both read it back.
            run!(diesel::insert_into(libraries::table)
                .values(new)
                .on_conflict(libraries::default_for)
                .do_nothing()
                .execute(conn))?;
            run!(by_user().first(conn))?
        }
    };
    // The row and its owner are two statements: a concurrent first request may have inserted
    // the row and not yet its owner. Returning then would let the caller load the library
    // without its owner among the members (a WebSocket session on it would be revoked), so
    // whoever gets here first inserts the owner (the others change nothing).
    if run!(role_of(conn, &row.id, user))?.is_some() {
        return Ok(row);
    }
    run!(diesel::insert_into(library_members::table)
        .values(MemberRow {
            library_id: row.id.clone(),
            user_id: user.to_owned(),
            role: "owner".to_owned(),
            added_at: row.created_at,
        })
        .on_conflict((library_members::library_id, library_members::user_id))
        .do_nothing()
        .execute(conn))?;
    Ok(row)
}
}

maybe_async! {
/// The members of a library, by user id; with `user`, only if they are one of them (404).
pub(crate) fn members(conn: &mut Conn, lib: &str, user: Option<&str>) -> Result<Vec<MemberRow>, TxError> {
    if let Some(user) = user {
        run!(require_member(conn, lib, user))?;
    }
    Ok(run!(library_members::table
        .filter(library_members::library_id.eq(lib))
        .order(library_members::user_id)
        .select(MemberRow::as_select())
        .load(conn))?)
}
}

maybe_async! {
/// The current versions of the given libraries (for reconciliation).
pub(crate) fn library_versions(conn: &mut Conn, ids: &[String]) -> Result<Vec<(String, i64)>, TxError> {
    Ok(run!(libraries::table
        .filter(libraries::id.eq_any(ids))
        .select((libraries::id, libraries::version))
        .load::<(String, i64)>(conn))?)
}
}

maybe_async! {
/// Deletes up to `batch` of the oldest idempotency records created before `cutoff` (epoch ms)
/// and returns how many went. One short statement per batch keeps locks and WAL growth small.
pub(crate) fn purge_idempotency(conn: &mut Conn, cutoff: i64, batch: i64) -> Result<usize, TxError> {
    // Row values and LIMIT in a subquery read the same on both backends; the two numbers are
    // ours, not input, so they are written into the SQL instead of bound (whose placeholders
    // differ: `$1` against `?`).
    Ok(run!(diesel::sql_query(format!(
        "DELETE FROM idempotency_keys WHERE (library_id, key) IN \
         (SELECT library_id, key FROM idempotency_keys WHERE created_at < {cutoff} \
          ORDER BY created_at LIMIT {batch})"
    ))
    .execute(conn))?)
}
}

// ---- schema ---------------------------------------------------------------------------------

maybe_async! {
/// The versions of the migrations applied to this database (for readiness).
pub(crate) fn applied_migrations(conn: &mut Conn) -> Result<Vec<String>, TxError> {
    use crate::schema::__diesel_schema_migrations::dsl::{__diesel_schema_migrations, version};
    Ok(run!(__diesel_schema_migrations.select(version).load(conn))?)
}
}
