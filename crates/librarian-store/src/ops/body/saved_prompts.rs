// Saved prompts and their ordered block references. Included once per backend by
// `ops/mod.rs` (see there for `run!`, `maybe_async!`, `Conn` and `RunQueryDsl`).

use super::projects::check_project_ref;
use super::{Conn, RunQueryDsl};
use crate::error::TxError;
use crate::models::{PromptBlockRow, SavedPromptRow, parse_id, tags_json};
use crate::ops::{check_version, mismatch};
use crate::schema::{context_blocks, saved_prompt_blocks, saved_prompts};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use librarian_core::{
    Entity, EntityKind, Error, FieldError, NewSavedPrompt, SavedPrompt, SavedPromptPatch,
};
use std::collections::HashSet;
use uuid::Uuid;

maybe_async! {
pub(super) fn find_saved_prompt(
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
pub(super) fn prompt_block_ids(conn: &mut Conn, lib: &str, prompt: &str) -> Result<Vec<Uuid>, TxError> {
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
pub(super) fn create_saved_prompt(
    conn: &mut Conn,
    lib: &str,
    new: &NewSavedPrompt,
    now: i64,
    version: i64,
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
        changed_in: version,
    };
    run!(diesel::insert_into(saved_prompts::table).values(&row).execute(conn))?;
    run!(write_prompt_blocks(conn, lib, &row.id, &new.context_block_ids))?;
    Ok(row.to_entity(new.context_block_ids.clone())?)
}
}

maybe_async! {
pub(super) fn update_saved_prompt(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    patch: &SavedPromptPatch,
    if_version: Option<i64>,
    now: i64,
    version: i64,
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
    row.changed_in = version;
    run!(diesel::update(saved_prompts::table.find((lib, &id_s))).set(&row).execute(conn))?;
    Ok(row.to_entity(block_ids)?)
}
}

maybe_async! {
pub(super) fn delete_saved_prompt(
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
