//! The three kinds of rows a library holds, as clients see them (DESIGN §2 and §4).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Project,
    ContextBlock,
    SavedPrompt,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Project => "project",
            EntityKind::ContextBlock => "context_block",
            EntityKind::SavedPrompt => "saved_prompt",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A folder. Projects nest through `parent_id`; the tree never has a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
// Exact fields: the untagged `Entity` (and its `oneOf` in the API description) then matches
// exactly one kind.
#[serde(deny_unknown_fields)]
pub struct Project {
    pub id: Uuid,
    #[schema(required = true)]
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A reusable text snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
// Exact fields: the untagged `Entity` (and its `oneOf` in the API description) then matches
// exactly one kind.
#[serde(deny_unknown_fields)]
pub struct ContextBlock {
    pub id: Uuid,
    #[schema(required = true)]
    pub project_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub tags: Vec<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A saved prompt, built from an ordered list of context blocks of the same library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
// Exact fields: the untagged `Entity` (and its `oneOf` in the API description) then matches
// exactly one kind.
#[serde(deny_unknown_fields)]
pub struct SavedPrompt {
    pub id: Uuid,
    #[schema(required = true)]
    pub project_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub tags: Vec<String>,
    pub context_block_ids: Vec<Uuid>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Any one row; serialized untagged, exactly as the row itself. (Read back untagged too: a
/// prompt is the only kind with `context_block_ids`, a project the only one with `name`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Entity {
    SavedPrompt(SavedPrompt),
    ContextBlock(ContextBlock),
    Project(Project),
}

impl Entity {
    pub fn kind(&self) -> EntityKind {
        match self {
            Entity::Project(_) => EntityKind::Project,
            Entity::ContextBlock(_) => EntityKind::ContextBlock,
            Entity::SavedPrompt(_) => EntityKind::SavedPrompt,
        }
    }

    pub fn id(&self) -> Uuid {
        match self {
            Entity::Project(p) => p.id,
            Entity::ContextBlock(b) => b.id,
            Entity::SavedPrompt(p) => p.id,
        }
    }

    pub fn version(&self) -> i64 {
        match self {
            Entity::Project(p) => p.version,
            Entity::ContextBlock(b) => b.version,
            Entity::SavedPrompt(p) => p.version,
        }
    }

    /// Reads back an entity of a known kind (e.g. a stored idempotent reply).
    pub fn from_json(kind: EntityKind, json: &str) -> Result<Entity, serde_json::Error> {
        Ok(match kind {
            EntityKind::Project => Entity::Project(serde_json::from_str(json)?),
            EntityKind::ContextBlock => Entity::ContextBlock(serde_json::from_str(json)?),
            EntityKind::SavedPrompt => Entity::SavedPrompt(serde_json::from_str(json)?),
        })
    }
}
