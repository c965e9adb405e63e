// Context blocks. Included once per backend by `ops/mod.rs` (see there for `run!`,
// `maybe_async!`, `Conn` and `RunQueryDsl`).

use super::projects::check_project_ref;
use super::{Conn, RunQueryDsl};
use crate::error::TxError;
use crate::models::{ContextBlockRow, tags_json};
use crate::ops::{check_version, mismatch};
use crate::schema::{context_blocks, saved_prompt_blocks, saved_prompts};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use librarian_core::{ContextBlock, ContextBlockPatch, Entity, EntityKind, Error, NewContextBlock};
use uuid::Uuid;

maybe_async! {
pub(super) fn find_context_block(
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
pub(super) fn create_context_block(
    conn: &mut Conn,
    lib: &str,
    new: &NewContextBlock,
    now: i64,
    version: i64,
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
        changed_in: version,
    };
    run!(diesel::insert_into(context_blocks::table).values(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
pub(super) fn update_context_block(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    patch: &ContextBlockPatch,
    if_version: Option<i64>,
    now: i64,
    version: i64,
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
    row.changed_in = version;
    run!(diesel::update(context_blocks::table.find((lib, &id_s))).set(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
/// Deletes a block and removes it from every prompt that used it (those prompts change, so
/// their row versions move on too).
pub(super) fn delete_context_block(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    if_version: Option<i64>,
    now: i64,
    version: i64,
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
            saved_prompts::changed_in.eq(version),
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
