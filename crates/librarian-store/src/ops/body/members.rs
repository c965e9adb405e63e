// Libraries as things users own and share (DESIGN §9): who may do what, the version bump every
// write starts with, the library list, and membership changes. Included once per backend by
// `ops/mod.rs` (see there for `run!`, `maybe_async!`, `Conn` and `RunQueryDsl`).
//
// Every write begins with `bump`, which takes the library row's lock (SQLite: the write lock),
// and only then checks the caller's membership: a removal that commits first is seen by the
// check, one that comes later waits for this write. So a write never commits after the
// removal of its author.

use super::{Conn, RunQueryDsl};
use crate::error::TxError;
use crate::models::{LibraryRow, MemberRow, parse_id, parse_role};
use crate::schema::{libraries, library_members};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use librarian_core::{Error, LibraryInfo, Role};

/// The refusal for a library that is missing or that `user` is not a member of (the same,
/// so that nothing reveals that a library exists).
pub(crate) fn no_library(lib: &str) -> TxError {
    match parse_id(lib) {
        Ok(id) => Error::NoSuchLibrary(id).into(),
        Err(e) => e.into(),
    }
}

maybe_async! {
/// Bumps the library's version by one (taking its row lock) and returns the new version.
pub(crate) fn bump(conn: &mut Conn, lib: &str, now: i64) -> Result<i64, TxError> {
    run!(diesel::update(libraries::table.find(lib))
        .set((
            libraries::version.eq(libraries::version + 1),
            libraries::updated_at.eq(now),
        ))
        .returning(libraries::version)
        .get_result(conn))
    .optional()?
    .ok_or_else(|| no_library(lib))
}
}

maybe_async! {
/// `user`'s role in the library, if they are a member.
pub(crate) fn role_of(conn: &mut Conn, lib: &str, user: &str) -> Result<Option<Role>, TxError> {
    let role: Option<String> = run!(library_members::table
        .find((lib, user))
        .select(library_members::role)
        .first(conn))
    .optional()?;
    Ok(role.as_deref().map(parse_role).transpose()?)
}
}

maybe_async! {
/// `user`'s role, or the 404 of a library they cannot see.
pub(crate) fn require_member(conn: &mut Conn, lib: &str, user: &str) -> Result<Role, TxError> {
    run!(role_of(conn, lib, user))?.ok_or_else(|| no_library(lib))
}
}

maybe_async! {
/// As [`require_member`], and the role must allow writes (403 for a viewer).
pub(crate) fn require_writer(conn: &mut Conn, lib: &str, user: &str) -> Result<Role, TxError> {
    let role = run!(require_member(conn, lib, user))?;
    if !role.can_write() {
        return Err(Error::Forbidden("a viewer cannot change this library".into()).into());
    }
    Ok(role)
}
}

maybe_async! {
/// As [`require_member`], and `user` must own the library (403 otherwise).
pub(crate) fn require_owner(conn: &mut Conn, lib: &str, user: &str, what: &str) -> Result<(), TxError> {
    match run!(require_member(conn, lib, user))? {
        Role::Owner => Ok(()),
        _ => Err(Error::Forbidden(format!("only the library's owner may {what}")).into()),
    }
}
}

maybe_async! {
/// The library's current version, with `user`'s role in it (404 for a non-member).
pub(crate) fn access(conn: &mut Conn, lib: &str, user: &str) -> Result<(Role, i64), TxError> {
    let role = run!(require_member(conn, lib, user))?;
    let version: i64 = run!(libraries::table.find(lib).select(libraries::version).first(conn))
        .optional()?
        .ok_or_else(|| no_library(lib))?;
    Ok((role, version))
}
}

maybe_async! {
/// One library as `user` sees it in the list.
pub(crate) fn library_info(conn: &mut Conn, lib: &str, user: &str) -> Result<LibraryInfo, TxError> {
    let role = run!(require_member(conn, lib, user))?;
    let row: LibraryRow = run!(libraries::table
        .find(lib)
        .select(LibraryRow::as_select())
        .first(conn))
    .optional()?
    .ok_or_else(|| no_library(lib))?;
    let owner: String = run!(library_members::table
        .filter(library_members::library_id.eq(lib))
        .filter(library_members::role.eq(Role::Owner.as_str()))
        .select(library_members::user_id)
        .first(conn))?;
    Ok(LibraryInfo {
        id: parse_id(&row.id)?,
        name: row.name,
        owner_id: owner,
        role,
        version: row.version,
    })
}
}

maybe_async! {
/// Every library `user` is a member of: their default one first, then by name (and id).
pub(crate) fn libraries_of(conn: &mut Conn, user: &str) -> Result<Vec<LibraryInfo>, TxError> {
    let mine: Vec<(String, LibraryRow)> = run!(library_members::table
        .inner_join(libraries::table)
        .filter(library_members::user_id.eq(user))
        .select((library_members::role, LibraryRow::as_select()))
        .load(conn))?;
    let ids: Vec<&str> = mine.iter().map(|(_, l)| l.id.as_str()).collect();
    let owners: Vec<(String, String)> = run!(library_members::table
        .filter(library_members::library_id.eq_any(&ids))
        .filter(library_members::role.eq(Role::Owner.as_str()))
        .select((library_members::library_id, library_members::user_id))
        .load(conn))?;
    let owners: std::collections::HashMap<String, String> = owners.into_iter().collect();
    let mut list = mine
        .into_iter()
        .map(|(role, row)| {
            let is_default = row.default_for.as_deref() == Some(user);
            let info = LibraryInfo {
                id: parse_id(&row.id)?,
                owner_id: owners.get(&row.id).cloned().unwrap_or_default(),
                name: row.name,
                role: parse_role(&role)?,
                version: row.version,
            };
            Ok((!is_default, info))
        })
        .collect::<Result<Vec<_>, TxError>>()?;
    list.sort_by(|(a_other, a), (b_other, b)| {
        (a_other, &a.name, a.id).cmp(&(b_other, &b.name, b.id))
    });
    Ok(list.into_iter().map(|(_, info)| info).collect())
}
}

maybe_async! {
/// A new library owned by `user`.
pub(crate) fn create_library(conn: &mut Conn, row: &LibraryRow, user: &str) -> Result<(), TxError> {
    run!(diesel::insert_into(libraries::table).values(row).execute(conn))?;
    run!(diesel::insert_into(library_members::table)
        .values(MemberRow {
            library_id: row.id.clone(),
            user_id: user.to_owned(),
            role: Role::Owner.as_str().to_owned(),
            added_at: row.created_at,
        })
        .execute(conn))?;
    Ok(())
}
}

maybe_async! {
/// Renames the library (owner only). Not a change of its content: the version stays.
pub(crate) fn rename_library(conn: &mut Conn, lib: &str, user: &str, name: &str, now: i64) -> Result<(), TxError> {
    run!(require_owner(conn, lib, user, "rename it"))?;
    run!(diesel::update(libraries::table.find(lib))
        .set((libraries::name.eq(name), libraries::updated_at.eq(now)))
        .execute(conn))?;
    Ok(())
}
}

maybe_async! {
/// Deletes the library and everything in it (owner only; not a user's default library).
/// Answers the version its deletion is announced as (one above the last).
pub(crate) fn delete_library(conn: &mut Conn, lib: &str, user: &str, now: i64) -> Result<i64, TxError> {
    let version = run!(bump(conn, lib, now))?;
    run!(require_owner(conn, lib, user, "delete it"))?;
    let default_for: Option<String> = run!(libraries::table
        .find(lib)
        .select(libraries::default_for)
        .first(conn))?;
    if default_for.is_some() {
        return Err(Error::Conflict(
            "a user's default library cannot be deleted (its rows can)".into(),
        )
        .into());
    }
    // Rows, members and idempotency records go with it (ON DELETE CASCADE).
    run!(diesel::delete(libraries::table.find(lib)).execute(conn))?;
    Ok(version)
}
}

maybe_async! {
/// Gives `target` the role `role` (owner only). Answers the member, whether they are new,
/// and the library version the change produced.
pub(crate) fn put_member(
    conn: &mut Conn,
    lib: &str,
    user: &str,
    target: &str,
    role: Role,
    now: i64,
) -> Result<(MemberRow, bool, i64), TxError> {
    let version = run!(bump(conn, lib, now))?;
    run!(require_owner(conn, lib, user, "manage its members"))?;
    if role == Role::Owner {
        return Err(Error::invalid("role", "must be \"editor\" or \"viewer\" (a library has one owner)").into());
    }
    let existing: Option<MemberRow> = run!(library_members::table
        .find((lib, target))
        .select(MemberRow::as_select())
        .first(conn))
    .optional()?;
    match existing {
        Some(member) if member.role == Role::Owner.as_str() => Err(Error::Conflict(
            "the owner's role cannot change".into(),
        )
        .into()),
        Some(mut member) => {
            run!(diesel::update(library_members::table.find((lib, target)))
                .set(library_members::role.eq(role.as_str()))
                .execute(conn))?;
            member.role = role.as_str().to_owned();
            Ok((member, false, version))
        }
        None => {
            let member = MemberRow {
                library_id: lib.to_owned(),
                user_id: target.to_owned(),
                role: role.as_str().to_owned(),
                added_at: now,
            };
            run!(diesel::insert_into(library_members::table).values(&member).execute(conn))?;
            Ok((member, true, version))
        }
    }
}
}

maybe_async! {
/// Removes `target` from the library: the owner may remove anyone but themself, any member
/// may remove themself (leave). Answers the library version the removal produced.
pub(crate) fn remove_member(conn: &mut Conn, lib: &str, user: &str, target: &str, now: i64) -> Result<i64, TxError> {
    let version = run!(bump(conn, lib, now))?;
    let role = run!(require_member(conn, lib, user))?;
    if user != target && role != Role::Owner {
        return Err(Error::Forbidden("only the library's owner may remove other members".into()).into());
    }
    match run!(role_of(conn, lib, target))? {
        None => Err(Error::NoSuchMember(target.to_owned()).into()),
        Some(Role::Owner) => Err(Error::Conflict(
            "the owner cannot be removed (delete the library instead)".into(),
        )
        .into()),
        Some(_) => {
            run!(diesel::delete(library_members::table.find((lib, target))).execute(conn))?;
            Ok(version)
        }
    }
}
}
