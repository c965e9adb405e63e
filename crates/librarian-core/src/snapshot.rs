//! A whole library at one version: what every session receives (DESIGN §4).

use crate::entity::{ContextBlock, Project, SavedPrompt};
use crate::member::{MemberRole, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The unit of sync: a user's own library (created on first use), or another one they were
/// given access to (DESIGN §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    pub id: Uuid,
    pub user_id: String,
    pub version: i64,
}

/// A library as `GET /libraries` lists it for one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LibraryInfo {
    pub id: Uuid,
    pub name: String,
    pub owner_id: String,
    /// The caller's role in it.
    pub role: Role,
    pub version: i64,
}

/// Every row of one library as of `version`, read in one transaction. Each list is ordered by
/// `(created_at, id)` (members by user id), so two loads of the same version are byte-for-byte
/// equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LibrarySnapshot {
    pub projects: Vec<Project>,
    pub context_blocks: Vec<ContextBlock>,
    pub saved_prompts: Vec<SavedPrompt>,
    /// Who may open this library, by user id (absent from servers before shared libraries).
    #[serde(default)]
    #[schema(required = true)]
    pub members: Vec<MemberRole>,
    /// Last in the canonical JSON, so that the bytes before the first changed row are the
    /// same from one version to the next and their hash can be resumed (DESIGN §10 digest).
    pub version: i64,
}

impl LibrarySnapshot {
    /// Number of rows of all kinds.
    pub fn len(&self) -> usize {
        self.projects.len() + self.context_blocks.len() + self.saved_prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn project(&self, id: Uuid) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    pub fn context_block(&self, id: Uuid) -> Option<&ContextBlock> {
        self.context_blocks.iter().find(|b| b.id == id)
    }

    pub fn saved_prompt(&self, id: Uuid) -> Option<&SavedPrompt> {
        self.saved_prompts.iter().find(|p| p.id == id)
    }

    /// `user_id`'s role in this library at this version, if a member (members are sorted).
    pub fn role_of(&self, user_id: &str) -> Option<Role> {
        crate::member::role_in(&self.members, user_id)
    }
}
