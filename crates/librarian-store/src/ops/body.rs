// Included twice by `ops/mod.rs` (see there): `run!` and `maybe_async!` come from the including
// module, as do `Conn` and the right `RunQueryDsl`.

use super::{creates_cycle, replayed};
use crate::error::TxError;
use crate::models::{
    ContextBlockRow, IdempotencyRow, LibraryRow, ProjectRow, PromptBlockRow, SavedPromptRow, parse_id,
    tags_json,
};
use crate::schema::{
    context_blocks, idempotency_keys, libraries, projects, saved_prompt_blocks, saved_prompts,
};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use librarian_core::{
    Committed, ContextBlock, ContextBlockPatch, Entity, EntityKind, Error, FieldError, LibrarySnapshot,
    Mutation, MutationOptions, NewContextBlock, NewProject, NewSavedPrompt, Project, ProjectPatch,
    SavedPrompt, SavedPromptPatch,
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

maybe_async! {
/// Applies one mutation inside the caller's write transaction and returns what it committed.
pub(crate) fn apply(
    conn: &mut Conn,
    lib: &str,
    m: &Mutation,
    opts: &MutationOptions,
    fingerprint: Option<&str>,
    now: i64,
) -> Result<Committed, TxError> {
    // Bumping the library row first takes its row lock (SQLite: the write lock), which
    // serializes every write to this library and makes the checks below race-free.
    let version: i64 = run!(diesel::update(libraries::table.find(lib))
        .set((
            libraries::version.eq(libraries::version + 1),
            libraries::updated_at.eq(now),
        ))
        .returning(libraries::version)
        .get_result(conn))
    .optional()?
    .ok_or_else(|| Error::Internal(format!("library {lib} does not exist")))?;

    let idempotency = opts.idempotency_key.as_deref().zip(fingerprint);
    if let Some((key, fp)) = idempotency {
        let prior: Option<IdempotencyRow> = run!(idempotency_keys::table
            .find((lib, key))
            .select(IdempotencyRow::as_select())
            .first(conn))
        .optional()?;
        if let Some(prior) = prior {
            if prior.fingerprint != fp {
                return Err(Error::IdempotencyKeyReused.into());
            }
            return Err(TxError::Replay(Box::new(replayed(&prior)?)));
        }
    }

    let v = opts.if_version;
    let (id, data) = match m {
        Mutation::CreateProject(new) => {
            let p = run!(create_project(conn, lib, new, now))?;
            (p.id, Some(Entity::Project(p)))
        }
        Mutation::UpdateProject { id, patch } => {
            let p = run!(update_project(conn, lib, *id, patch, v, now))?;
            (p.id, Some(Entity::Project(p)))
        }
        Mutation::DeleteProject { id } => {
            run!(delete_project(conn, lib, *id, v, now))?;
            (*id, None)
        }
        Mutation::CreateContextBlock(new) => {
            let b = run!(create_context_block(conn, lib, new, now))?;
            (b.id, Some(Entity::ContextBlock(b)))
        }
        Mutation::UpdateContextBlock { id, patch } => {
            let b = run!(update_context_block(conn, lib, *id, patch, v, now))?;
            (b.id, Some(Entity::ContextBlock(b)))
        }
        Mutation::DeleteContextBlock { id } => {
            run!(delete_context_block(conn, lib, *id, v, now))?;
            (*id, None)
        }
        Mutation::CreateSavedPrompt(new) => {
            let p = run!(create_saved_prompt(conn, lib, new, now))?;
            (p.id, Some(Entity::SavedPrompt(p)))
        }
        Mutation::UpdateSavedPrompt { id, patch } => {
            let p = run!(update_saved_prompt(conn, lib, *id, patch, v, now))?;
            (p.id, Some(Entity::SavedPrompt(p)))
        }
        Mutation::DeleteSavedPrompt { id } => {
            run!(delete_saved_prompt(conn, lib, *id, v))?;
            (*id, None)
        }
    };

    let committed = Committed {
        data,
        library_version: version,
        kind: m.kind(),
        id,
        replayed: false,
    };
    if let Some((key, fp)) = idempotency {
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
            library_version: version,
            created_at: now,
        };
        run!(diesel::insert_into(idempotency_keys::table).values(&record).execute(conn))?;
    }
    Ok(committed)
}
}

maybe_async! {
/// The whole library, inside the caller's read transaction.
pub(crate) fn load(conn: &mut Conn, lib: &str) -> Result<LibrarySnapshot, TxError> {
    let version: i64 = run!(libraries::table
        .find(lib)
        .select(libraries::version)
        .first(conn))
    .optional()?
    .unwrap_or(0);
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

    let mut by_prompt: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (prompt_id, block_id) in refs {
        by_prompt.entry(prompt_id).or_default().push(parse_id(&block_id)?);
    }
    Ok(LibrarySnapshot {
        version,
        projects: project_rows
            .iter()
            .map(ProjectRow::to_entity)
            .collect::<Result<_, _>>()?,
        context_blocks: block_rows
            .iter()
            .map(ContextBlockRow::to_entity)
            .collect::<Result<_, _>>()?,
        saved_prompts: prompt_rows
            .iter()
            .map(|p| p.to_entity(by_prompt.remove(&p.id).unwrap_or_default()))
            .collect::<Result<_, _>>()?,
    })
}
}

fn check_version(expected: Option<i64>, actual: i64) -> bool {
    expected.is_none_or(|e| e == actual)
}

fn mismatch(expected: Option<i64>, current: Entity) -> TxError {
    Error::VersionMismatch {
        expected: expected.unwrap_or_default(),
        current: Box::new(current),
    }
    .into()
}

fn no_such(field: &str, kind: EntityKind, id: &str) -> TxError {
    Error::invalid(field, format!("no such {}: {id}", kind.as_str().replace('_', " "))).into()
}

// ---- projects -------------------------------------------------------------------------------

maybe_async! {
fn find_project(conn: &mut Conn, lib: &str, id: &str) -> Result<Option<ProjectRow>, TxError> {
    Ok(run!(projects::table
        .find((lib, id))
        .select(ProjectRow::as_select())
        .first(conn))
    .optional()?)
}
}

maybe_async! {
fn project_exists(conn: &mut Conn, lib: &str, id: &str) -> Result<bool, TxError> {
    Ok(run!(projects::table
        .find((lib, id))
        .select(projects::id)
        .first::<String>(conn))
    .optional()?
    .is_some())
}
}

maybe_async! {
/// Checks an optional `project_id`/`parent_id` reference inside the library.
fn check_project_ref(
    conn: &mut Conn,
    lib: &str,
    field: &str,
    id: Option<&str>,
) -> Result<(), TxError> {
    match id {
        Some(id) if !run!(project_exists(conn, lib, id))? => {
            Err(no_such(field, EntityKind::Project, id))
        }
        _ => Ok(()),
    }
}
}

maybe_async! {
fn create_project(conn: &mut Conn, lib: &str, new: &NewProject, now: i64) -> Result<Project, TxError> {
    let id = new.id.unwrap_or_else(Uuid::now_v7);
    let id_s = id.to_string();
    if run!(project_exists(conn, lib, &id_s))? {
        return Err(Error::AlreadyExists { kind: EntityKind::Project, id }.into());
    }
    let parent = new.parent_id.map(|p| p.to_string());
    run!(check_project_ref(conn, lib, "parent_id", parent.as_deref()))?;
    let row = ProjectRow {
        library_id: lib.to_owned(),
        id: id_s,
        parent_id: parent,
        name: new.name.clone(),
        description: new.description.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    run!(diesel::insert_into(projects::table).values(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
fn update_project(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    patch: &ProjectPatch,
    if_version: Option<i64>,
    now: i64,
) -> Result<Project, TxError> {
    let id_s = id.to_string();
    let mut row = run!(find_project(conn, lib, &id_s))?
        .ok_or(Error::NotFound { kind: EntityKind::Project, id })?;
    if !check_version(if_version, row.version) {
        return Err(mismatch(if_version, Entity::Project(row.to_entity()?)));
    }
    if let Some(parent) = patch.parent_id.as_update() {
        let parent = parent.map(Uuid::to_string);
        if let Some(p) = parent.as_deref() {
            let parents: HashMap<String, Option<String>> = run!(projects::table
                .filter(projects::library_id.eq(lib))
                .select((projects::id, projects::parent_id))
                .load::<(String, Option<String>)>(conn))?
            .into_iter()
            .collect();
            if !parents.contains_key(p) {
                return Err(no_such("parent_id", EntityKind::Project, p));
            }
            if creates_cycle(&parents, p, &id_s) {
                return Err(Error::invalid(
                    "parent_id",
                    format!("project {p} is inside this project: that would make a cycle"),
                )
                .into());
            }
        }
        row.parent_id = parent;
    }
    if let Some(name) = patch.name.as_set() {
        row.name = name.clone();
    }
    if let Some(description) = patch.description.as_set() {
        row.description = description.clone();
    }
    row.version += 1;
    row.updated_at = now;
    run!(diesel::update(projects::table.find((lib, &id_s))).set(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
/// Deletes a project after moving its projects, blocks and prompts to its parent.
fn delete_project(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    if_version: Option<i64>,
    now: i64,
) -> Result<(), TxError> {
    let id_s = id.to_string();
    let row = run!(find_project(conn, lib, &id_s))?
        .ok_or(Error::NotFound { kind: EntityKind::Project, id })?;
    if !check_version(if_version, row.version) {
        return Err(mismatch(if_version, Entity::Project(row.to_entity()?)));
    }
    let parent = row.parent_id.as_deref();
    run!(diesel::update(
        projects::table
            .filter(projects::library_id.eq(lib))
            .filter(projects::parent_id.eq(&id_s)),
    )
    .set((
        projects::parent_id.eq(parent),
        projects::version.eq(projects::version + 1),
        projects::updated_at.eq(now),
    ))
    .execute(conn))?;
    run!(diesel::update(
        context_blocks::table
            .filter(context_blocks::library_id.eq(lib))
            .filter(context_blocks::project_id.eq(&id_s)),
    )
    .set((
        context_blocks::project_id.eq(parent),
        context_blocks::version.eq(context_blocks::version + 1),
        context_blocks::updated_at.eq(now),
    ))
    .execute(conn))?;
    run!(diesel::update(
        saved_prompts::table
            .filter(saved_prompts::library_id.eq(lib))
            .filter(saved_prompts::project_id.eq(&id_s)),
    )
    .set((
        saved_prompts::project_id.eq(parent),
        saved_prompts::version.eq(saved_prompts::version + 1),
        saved_prompts::updated_at.eq(now),
    ))
    .execute(conn))?;
    run!(diesel::delete(projects::table.find((lib, &id_s))).execute(conn))?;
    Ok(())
}
}

// ---- context blocks -------------------------------------------------------------------------

maybe_async! {
fn find_context_block(
    conn: &mut Conn,
    lib: &str,
    id: &str,
) -> Result<Option<ContextBlockRow>, TxError> {
    Ok(run!(context_blocks::table
        .find((lib, id))
        .select(ContextBlockRow::as_select())
        .first(conn))
    .optional()?)
}
}

maybe_async! {
fn create_context_block(
    conn: &mut Conn,
    lib: &str,
    new: &NewContextBlock,
    now: i64,
) -> Result<ContextBlock, TxError> {
    let id = new.id.unwrap_or_else(Uuid::now_v7);
    let id_s = id.to_string();
    if run!(find_context_block(conn, lib, &id_s))?.is_some() {
        return Err(Error::AlreadyExists { kind: EntityKind::ContextBlock, id }.into());
    }
    let project = new.project_id.map(|p| p.to_string());
    run!(check_project_ref(conn, lib, "project_id", project.as_deref()))?;
    let row = ContextBlockRow {
        library_id: lib.to_owned(),
        id: id_s,
        project_id: project,
        title: new.title.clone(),
        content: new.content.clone(),
        tags: tags_json(&new.tags),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    run!(diesel::insert_into(context_blocks::table).values(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
fn update_context_block(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    patch: &ContextBlockPatch,
    if_version: Option<i64>,
    now: i64,
) -> Result<ContextBlock, TxError> {
    let id_s = id.to_string();
    let mut row = run!(find_context_block(conn, lib, &id_s))?
        .ok_or(Error::NotFound { kind: EntityKind::ContextBlock, id })?;
    if !check_version(if_version, row.version) {
        return Err(mismatch(if_version, Entity::ContextBlock(row.to_entity()?)));
    }
    if let Some(project) = patch.project_id.as_update() {
        let project = project.map(Uuid::to_string);
        run!(check_project_ref(conn, lib, "project_id", project.as_deref()))?;
        row.project_id = project;
    }
    if let Some(title) = patch.title.as_set() {
        row.title = title.clone();
    }
    if let Some(content) = patch.content.as_set() {
        row.content = content.clone();
    }
    if let Some(tags) = patch.tags.as_set() {
        row.tags = tags_json(tags);
    }
    row.version += 1;
    row.updated_at = now;
    run!(diesel::update(context_blocks::table.find((lib, &id_s))).set(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
/// Deletes a block and removes it from every prompt that used it (those prompts change, so
/// their row versions move on too).
fn delete_context_block(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    if_version: Option<i64>,
    now: i64,
) -> Result<(), TxError> {
    let id_s = id.to_string();
    let row = run!(find_context_block(conn, lib, &id_s))?
        .ok_or(Error::NotFound { kind: EntityKind::ContextBlock, id })?;
    if !check_version(if_version, row.version) {
        return Err(mismatch(if_version, Entity::ContextBlock(row.to_entity()?)));
    }
    let users: Vec<String> = run!(saved_prompt_blocks::table
        .filter(saved_prompt_blocks::library_id.eq(lib))
        .filter(saved_prompt_blocks::block_id.eq(&id_s))
        .select(saved_prompt_blocks::prompt_id)
        .distinct()
        .load(conn))?;
    if !users.is_empty() {
        run!(diesel::update(
            saved_prompts::table
                .filter(saved_prompts::library_id.eq(lib))
                .filter(saved_prompts::id.eq_any(&users)),
        )
        .set((
            saved_prompts::version.eq(saved_prompts::version + 1),
            saved_prompts::updated_at.eq(now),
        ))
        .execute(conn))?;
        run!(diesel::delete(
            saved_prompt_blocks::table
                .filter(saved_prompt_blocks::library_id.eq(lib))
                .filter(saved_prompt_blocks::block_id.eq(&id_s)),
        )
        .execute(conn))?;
    }
    run!(diesel::delete(context_blocks::table.find((lib, &id_s))).execute(conn))?;
    Ok(())
}
}

// ---- saved prompts --------------------------------------------------------------------------

maybe_async! {
fn find_saved_prompt(
    conn: &mut Conn,
    lib: &str,
    id: &str,
) -> Result<Option<SavedPromptRow>, TxError> {
    Ok(run!(saved_prompts::table
        .find((lib, id))
        .select(SavedPromptRow::as_select())
        .first(conn))
    .optional()?)
}
}

maybe_async! {
fn prompt_block_ids(conn: &mut Conn, lib: &str, prompt: &str) -> Result<Vec<Uuid>, TxError> {
    let ids: Vec<String> = run!(saved_prompt_blocks::table
        .filter(saved_prompt_blocks::library_id.eq(lib))
        .filter(saved_prompt_blocks::prompt_id.eq(prompt))
        .order(saved_prompt_blocks::position)
        .select(saved_prompt_blocks::block_id)
        .load(conn))?;
    Ok(ids.iter().map(|s| parse_id(s)).collect::<Result<_, _>>()?)
}
}

maybe_async! {
/// Every id must name a block of this library; each missing one is reported at its index.
fn check_block_refs(conn: &mut Conn, lib: &str, ids: &[Uuid]) -> Result<(), TxError> {
    if ids.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let found: HashSet<String> = run!(context_blocks::table
        .filter(context_blocks::library_id.eq(lib))
        .filter(context_blocks::id.eq_any(&wanted))
        .select(context_blocks::id)
        .load::<String>(conn))?
    .into_iter()
    .collect();
    let missing: Vec<FieldError> = wanted
        .iter()
        .enumerate()
        .filter(|(_, id)| !found.contains(*id))
        .map(|(i, id)| {
            FieldError::new(format!("context_block_ids[{i}]"), format!("no such context block: {id}"))
        })
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(Error::Invalid(missing).into()) }
}
}

maybe_async! {
fn write_prompt_blocks(conn: &mut Conn, lib: &str, prompt: &str, ids: &[Uuid]) -> Result<(), TxError> {
    run!(diesel::delete(
        saved_prompt_blocks::table
            .filter(saved_prompt_blocks::library_id.eq(lib))
            .filter(saved_prompt_blocks::prompt_id.eq(prompt)),
    )
    .execute(conn))?;
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<PromptBlockRow> = ids
        .iter()
        .zip(0_i32..)
        .map(|(id, position)| PromptBlockRow {
            library_id: lib.to_owned(),
            prompt_id: prompt.to_owned(),
            position,
            block_id: id.to_string(),
        })
        .collect();
    run!(diesel::insert_into(saved_prompt_blocks::table).values(&rows).execute(conn))?;
    Ok(())
}
}

maybe_async! {
fn create_saved_prompt(
    conn: &mut Conn,
    lib: &str,
    new: &NewSavedPrompt,
    now: i64,
) -> Result<SavedPrompt, TxError> {
    let id = new.id.unwrap_or_else(Uuid::now_v7);
    let id_s = id.to_string();
    if run!(find_saved_prompt(conn, lib, &id_s))?.is_some() {
        return Err(Error::AlreadyExists { kind: EntityKind::SavedPrompt, id }.into());
    }
    let project = new.project_id.map(|p| p.to_string());
    run!(check_project_ref(conn, lib, "project_id", project.as_deref()))?;
    run!(check_block_refs(conn, lib, &new.context_block_ids))?;
    let row = SavedPromptRow {
        library_id: lib.to_owned(),
        id: id_s,
        project_id: project,
        title: new.title.clone(),
        content: new.content.clone(),
        tags: tags_json(&new.tags),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    run!(diesel::insert_into(saved_prompts::table).values(&row).execute(conn))?;
    run!(write_prompt_blocks(conn, lib, &row.id, &new.context_block_ids))?;
    Ok(row.to_entity(new.context_block_ids.clone())?)
}
}

maybe_async! {
fn update_saved_prompt(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    patch: &SavedPromptPatch,
    if_version: Option<i64>,
    now: i64,
) -> Result<SavedPrompt, TxError> {
    let id_s = id.to_string();
    let mut row = run!(find_saved_prompt(conn, lib, &id_s))?
        .ok_or(Error::NotFound { kind: EntityKind::SavedPrompt, id })?;
    let mut block_ids = run!(prompt_block_ids(conn, lib, &id_s))?;
    if !check_version(if_version, row.version) {
        return Err(mismatch(if_version, Entity::SavedPrompt(row.to_entity(block_ids)?)));
    }
    if let Some(project) = patch.project_id.as_update() {
        let project = project.map(Uuid::to_string);
        run!(check_project_ref(conn, lib, "project_id", project.as_deref()))?;
        row.project_id = project;
    }
    if let Some(ids) = patch.context_block_ids.as_set() {
        run!(check_block_refs(conn, lib, ids))?;
        run!(write_prompt_blocks(conn, lib, &id_s, ids))?;
        block_ids = ids.clone();
    }
    if let Some(title) = patch.title.as_set() {
        row.title = title.clone();
    }
    if let Some(content) = patch.content.as_set() {
        row.content = content.clone();
    }
    if let Some(tags) = patch.tags.as_set() {
        row.tags = tags_json(tags);
    }
    row.version += 1;
    row.updated_at = now;
    run!(diesel::update(saved_prompts::table.find((lib, &id_s))).set(&row).execute(conn))?;
    Ok(row.to_entity(block_ids)?)
}
}

maybe_async! {
fn delete_saved_prompt(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    if_version: Option<i64>,
) -> Result<(), TxError> {
    let id_s = id.to_string();
    let row = run!(find_saved_prompt(conn, lib, &id_s))?
        .ok_or(Error::NotFound { kind: EntityKind::SavedPrompt, id })?;
    if !check_version(if_version, row.version) {
        let block_ids = run!(prompt_block_ids(conn, lib, &id_s))?;
        return Err(mismatch(if_version, Entity::SavedPrompt(row.to_entity(block_ids)?)));
    }
    // Its block references go with it (ON DELETE CASCADE).
    run!(diesel::delete(saved_prompts::table.find((lib, &id_s))).execute(conn))?;
    Ok(())
}
}

// ---- libraries ------------------------------------------------------------------------------

maybe_async! {
/// The user's library row, inserted from `new` when the user has none yet.
pub(crate) fn library_for_user(
    conn: &mut Conn,
    user: &str,
    new: &LibraryRow,
) -> Result<LibraryRow, TxError> {
    let by_user = || {
        libraries::table
            .filter(libraries::user_id.eq(user))
            .select(LibraryRow::as_select())
    };
    if let Some(row) = run!(by_user().first(conn)).optional()? {
        return Ok(row);
    }
    // Two first requests of one user may race here: one insert wins, both read it back.
    run!(diesel::insert_into(libraries::table)
        .values(new)
        .on_conflict(libraries::user_id)
        .do_nothing()
        .execute(conn))?;
    Ok(run!(by_user().first(conn))?)
}
}

maybe_async! {
/// One row of a library, or `NotFound`.
pub(crate) fn get(conn: &mut Conn, lib: &str, kind: EntityKind, id: Uuid) -> Result<Entity, TxError> {
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

maybe_async! {
/// The current versions of the given libraries (for reconciliation).
pub(crate) fn library_versions(conn: &mut Conn, ids: &[String]) -> Result<Vec<(String, i64)>, TxError> {
    Ok(run!(libraries::table
        .filter(libraries::id.eq_any(ids))
        .select((libraries::id, libraries::version))
        .load::<(String, i64)>(conn))?)
}
}
