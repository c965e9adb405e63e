//! Row structs of the portable schema and their conversion to the domain types of
//! `librarian-core`. A row that cannot be converted back (a malformed id or tag list) is a
//! broken invariant, reported as `Error::Internal`.

use crate::schema::{
    context_blocks, idempotency_keys, libraries, library_members, projects, saved_prompt_blocks,
    saved_prompts,
};
use diesel::prelude::*;
use librarian_core::{ContextBlock, Error, Member, Project, Role, SavedPrompt, Timestamp};
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = libraries, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct LibraryRow {
    pub id: String,
    pub default_for: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub name: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = library_members, primary_key(library_id, user_id))]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct MemberRow {
    pub library_id: String,
    pub user_id: String,
    pub role: String,
    pub added_at: i64,
}

/// A role as stored in `library_members.role`.
pub(crate) fn parse_role(role: &str) -> Result<Role, Error> {
    Role::parse(role).ok_or_else(|| Error::Internal(format!("unknown stored role {role:?}")))
}

impl MemberRow {
    pub fn into_member(self) -> Result<Member, Error> {
        Ok(Member {
            role: parse_role(&self.role)?,
            user_id: self.user_id,
            added_at: Timestamp(self.added_at),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = projects, primary_key(library_id, id), treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ProjectRow {
    pub library_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub description: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The library version that last wrote the row (DESIGN §10: what an incremental reload
    /// reads).
    pub changed_in: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = context_blocks, primary_key(library_id, id), treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ContextBlockRow {
    pub library_id: String,
    pub id: String,
    pub project_id: Option<String>,
    pub title: String,
    pub content: String,
    pub tags: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The library version that last wrote the row (DESIGN §10: what an incremental reload
    /// reads).
    pub changed_in: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = saved_prompts, primary_key(library_id, id), treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct SavedPromptRow {
    pub library_id: String,
    pub id: String,
    pub project_id: Option<String>,
    pub title: String,
    pub content: String,
    pub tags: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The library version that last wrote the row (DESIGN §10: what an incremental reload
    /// reads).
    pub changed_in: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = saved_prompt_blocks)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct PromptBlockRow {
    pub library_id: String,
    pub prompt_id: String,
    pub position: i32,
    pub block_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct IdempotencyRow {
    pub library_id: String,
    pub key: String,
    pub fingerprint: String,
    pub kind: String,
    pub entity_id: String,
    pub response: Option<String>,
    pub library_version: i64,
    pub created_at: i64,
}

pub(crate) fn parse_id(s: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|e| Error::Internal(format!("stored id {s:?} is not a UUID: {e}")))
}

fn parse_opt_id(s: Option<&str>) -> Result<Option<Uuid>, Error> {
    s.map(parse_id).transpose()
}

pub(crate) fn parse_tags(s: &str) -> Result<Vec<String>, Error> {
    serde_json::from_str(s)
        .map_err(|e| Error::Internal(format!("stored tags {s:?} are not a JSON list: {e}")))
}

pub(crate) fn tags_json(tags: &[String]) -> String {
    // Serializing a list of strings cannot fail.
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned())
}

impl ProjectRow {
    pub fn to_entity(&self) -> Result<Project, Error> {
        Ok(Project {
            id: parse_id(&self.id)?,
            parent_id: parse_opt_id(self.parent_id.as_deref())?,
            name: self.name.clone(),
            description: self.description.clone(),
            version: self.version,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

impl ContextBlockRow {
    pub fn to_entity(&self) -> Result<ContextBlock, Error> {
        Ok(ContextBlock {
            id: parse_id(&self.id)?,
            project_id: parse_opt_id(self.project_id.as_deref())?,
            title: self.title.clone(),
            content: self.content.clone(),
            tags: parse_tags(&self.tags)?,
            version: self.version,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

impl SavedPromptRow {
    pub fn to_entity(&self, context_block_ids: Vec<Uuid>) -> Result<SavedPrompt, Error> {
        Ok(SavedPrompt {
            id: parse_id(&self.id)?,
            project_id: parse_opt_id(self.project_id.as_deref())?,
            title: self.title.clone(),
            content: self.content.clone(),
            tags: parse_tags(&self.tags)?,
            context_block_ids,
            version: self.version,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}
