// Projects. Included once per backend by `ops/mod.rs` (see there for `run!`, `maybe_async!`,
// `Conn` and `RunQueryDsl`).

use super::{Conn, RunQueryDsl};
use crate::error::TxError;
use crate::models::ProjectRow;
use crate::ops::{check_version, creates_cycle, mismatch, no_such};
use crate::schema::{context_blocks, projects, saved_prompts};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use librarian_core::{Entity, EntityKind, Error, NewProject, Project, ProjectPatch};
use std::collections::HashMap;
use uuid::Uuid;

maybe_async! {
pub(super) fn find_project(conn: &mut Conn, lib: &str, id: &str) -> Result<Option<ProjectRow>, TxError> {
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
pub(super) fn check_project_ref(
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
pub(super) fn create_project(conn: &mut Conn, lib: &str, new: &NewProject, now: i64, version: i64) -> Result<Project, TxError> {
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
        changed_in: version,
    };
    run!(diesel::insert_into(projects::table).values(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
pub(super) fn update_project(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    patch: &ProjectPatch,
    if_version: Option<i64>,
    now: i64,
    version: i64,
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
    row.changed_in = version;
    run!(diesel::update(projects::table.find((lib, &id_s))).set(&row).execute(conn))?;
    Ok(row.to_entity()?)
}
}

maybe_async! {
/// Deletes a project after moving its projects, blocks and prompts to its parent.
pub(super) fn delete_project(
    conn: &mut Conn,
    lib: &str,
    id: Uuid,
    if_version: Option<i64>,
    now: i64,
    version: i64,
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
        projects::changed_in.eq(version),
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
        context_blocks::changed_in.eq(version),
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
        saved_prompts::changed_in.eq(version),
    ))
    .execute(conn))?;
    run!(diesel::delete(projects::table.find((lib, &id_s))).execute(conn))?;
    Ok(())
}
}
