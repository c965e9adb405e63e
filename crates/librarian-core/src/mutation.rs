//! What a client asks the server to change: the nine operations of DESIGN §4/§5, their bodies
//! (create: the entity's fields; update: a partial object) and what a committed one returns.

use crate::entity::{Entity, EntityKind};
use crate::field::Field;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Body of `project.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[serde(default)]
    pub id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parent_id: Option<Uuid>,
}

/// Body of `project.update`: absent = unchanged, `null` clears `parent_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Field<Uuid>,
}

/// Body of `context_block.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContextBlock {
    #[serde(default)]
    pub id: Option<Uuid>,
    #[serde(default)]
    pub project_id: Option<Uuid>,
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Body of `context_block.update`: absent = unchanged, `null` clears `project_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextBlockPatch {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<Uuid>)]
    pub project_id: Field<Uuid>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<String>)]
    pub title: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<String>)]
    pub content: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Field<Vec<String>>,
}

/// Body of `saved_prompt.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSavedPrompt {
    #[serde(default)]
    pub id: Option<Uuid>,
    #[serde(default)]
    pub project_id: Option<Uuid>,
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub context_block_ids: Vec<Uuid>,
}

/// Body of `saved_prompt.update`: absent = unchanged, `null` clears `project_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedPromptPatch {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<Uuid>)]
    pub project_id: Field<Uuid>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<String>)]
    pub title: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<String>)]
    pub content: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub context_block_ids: Field<Vec<Uuid>>,
}

/// The operation names of the WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Op {
    #[serde(rename = "project.create")]
    ProjectCreate,
    #[serde(rename = "project.update")]
    ProjectUpdate,
    #[serde(rename = "project.delete")]
    ProjectDelete,
    #[serde(rename = "context_block.create")]
    ContextBlockCreate,
    #[serde(rename = "context_block.update")]
    ContextBlockUpdate,
    #[serde(rename = "context_block.delete")]
    ContextBlockDelete,
    #[serde(rename = "saved_prompt.create")]
    SavedPromptCreate,
    #[serde(rename = "saved_prompt.update")]
    SavedPromptUpdate,
    #[serde(rename = "saved_prompt.delete")]
    SavedPromptDelete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::ProjectCreate => "project.create",
            Op::ProjectUpdate => "project.update",
            Op::ProjectDelete => "project.delete",
            Op::ContextBlockCreate => "context_block.create",
            Op::ContextBlockUpdate => "context_block.update",
            Op::ContextBlockDelete => "context_block.delete",
            Op::SavedPromptCreate => "saved_prompt.create",
            Op::SavedPromptUpdate => "saved_prompt.update",
            Op::SavedPromptDelete => "saved_prompt.delete",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One typed change to a library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", content = "args")]
pub enum Mutation {
    CreateProject(NewProject),
    UpdateProject { id: Uuid, patch: ProjectPatch },
    DeleteProject { id: Uuid },
    CreateContextBlock(NewContextBlock),
    UpdateContextBlock { id: Uuid, patch: ContextBlockPatch },
    DeleteContextBlock { id: Uuid },
    CreateSavedPrompt(NewSavedPrompt),
    UpdateSavedPrompt { id: Uuid, patch: SavedPromptPatch },
    DeleteSavedPrompt { id: Uuid },
}

impl Mutation {
    pub fn op(&self) -> Op {
        match self {
            Mutation::CreateProject(_) => Op::ProjectCreate,
            Mutation::UpdateProject { .. } => Op::ProjectUpdate,
            Mutation::DeleteProject { .. } => Op::ProjectDelete,
            Mutation::CreateContextBlock(_) => Op::ContextBlockCreate,
            Mutation::UpdateContextBlock { .. } => Op::ContextBlockUpdate,
            Mutation::DeleteContextBlock { .. } => Op::ContextBlockDelete,
            Mutation::CreateSavedPrompt(_) => Op::SavedPromptCreate,
            Mutation::UpdateSavedPrompt { .. } => Op::SavedPromptUpdate,
            Mutation::DeleteSavedPrompt { .. } => Op::SavedPromptDelete,
        }
    }

    pub fn kind(&self) -> EntityKind {
        match self {
            Mutation::CreateProject(_)
            | Mutation::UpdateProject { .. }
            | Mutation::DeleteProject { .. } => EntityKind::Project,
            Mutation::CreateContextBlock(_)
            | Mutation::UpdateContextBlock { .. }
            | Mutation::DeleteContextBlock { .. } => EntityKind::ContextBlock,
            Mutation::CreateSavedPrompt(_)
            | Mutation::UpdateSavedPrompt { .. }
            | Mutation::DeleteSavedPrompt { .. } => EntityKind::SavedPrompt,
        }
    }

    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Mutation::DeleteProject { .. }
                | Mutation::DeleteContextBlock { .. }
                | Mutation::DeleteSavedPrompt { .. }
        )
    }
}

/// Preconditions a client may attach to any mutation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutationOptions {
    /// `If-Match` / `if_version`: the row version the client last saw (update and delete).
    pub if_version: Option<i64>,
    /// `Idempotency-Key` / `mutation_id`: a retry with the same key returns the first result.
    pub idempotency_key: Option<String>,
}

/// What a committed mutation returns: the row as written (`None` after a delete) and the
/// library version its commit produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Committed {
    pub data: Option<Entity>,
    pub library_version: i64,
    /// The entity this mutation touched (also known after a delete).
    #[serde(skip)]
    pub kind: EntityKind,
    #[serde(skip)]
    pub id: Uuid,
    /// True when this is the stored answer to an earlier request with the same key.
    #[serde(skip)]
    pub replayed: bool,
}
