//! A whole library at one version: what every session receives (DESIGN §4).

use crate::entity::{ContextBlock, Project, SavedPrompt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The unit of sync: one per user today, keyed by its own id so shared libraries can come later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    pub id: Uuid,
    pub user_id: String,
    pub version: i64,
}

/// Every row of one library as of `version`, read in one transaction. Each list is ordered by
/// `(created_at, id)`, so two loads of the same version are byte-for-byte equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LibrarySnapshot {
    pub version: i64,
    pub projects: Vec<Project>,
    pub context_blocks: Vec<ContextBlock>,
    pub saved_prompts: Vec<SavedPrompt>,
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
}
