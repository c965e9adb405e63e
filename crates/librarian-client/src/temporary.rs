//! Temporary blocks: local drafts merged into the view, never sent to the server.

use crate::ClientError;
use librarian_core::{ContextBlock, LibrarySnapshot, Project, SavedPrompt};
use uuid::Uuid;

/// Identifies a temporary block within its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TempId(pub Uuid);

/// A block that exists only in this client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TempBlock {
    pub project_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Temporary {
    blocks: Vec<(TempId, TempBlock)>,
}

impl Temporary {
    pub fn add(&mut self, block: TempBlock) -> TempId {
        let id = TempId(Uuid::new_v4());
        self.blocks.push((id, block));
        id
    }

    pub fn edit(&mut self, id: TempId, block: TempBlock) -> Result<(), ClientError> {
        let slot = self
            .blocks
            .iter_mut()
            .find(|(i, _)| *i == id)
            .ok_or(ClientError::NoSuchTemporaryBlock)?;
        slot.1 = block;
        Ok(())
    }

    pub fn get(&self, id: TempId) -> Result<TempBlock, ClientError> {
        self.blocks
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| b.clone())
            .ok_or(ClientError::NoSuchTemporaryBlock)
    }

    pub fn remove(&mut self, id: TempId) -> Result<TempBlock, ClientError> {
        let at = self
            .blocks
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or(ClientError::NoSuchTemporaryBlock)?;
        Ok(self.blocks.remove(at).1)
    }

    pub fn list(&self) -> Vec<(TempId, TempBlock)> {
        self.blocks.clone()
    }
}

/// One block as shown: a saved one, or a temporary one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewBlock {
    Saved(ContextBlock),
    Temporary(TempId, TempBlock),
}

impl ViewBlock {
    pub fn is_temporary(&self) -> bool {
        matches!(self, ViewBlock::Temporary(..))
    }

    pub fn title(&self) -> &str {
        match self {
            ViewBlock::Saved(b) => &b.title,
            ViewBlock::Temporary(_, b) => &b.title,
        }
    }
}

/// The library as a client shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// The snapshot's version, `None` before the first snapshot.
    pub version: Option<i64>,
    pub projects: Vec<Project>,
    /// Saved blocks in snapshot order, then temporary blocks in the order they were added.
    pub context_blocks: Vec<ViewBlock>,
    pub saved_prompts: Vec<SavedPrompt>,
}

impl View {
    pub(crate) fn merge(
        snapshot: Option<&LibrarySnapshot>,
        temporary: &[(TempId, TempBlock)],
    ) -> View {
        let mut view = View::default();
        if let Some(s) = snapshot {
            view.version = Some(s.version);
            view.projects = s.projects.clone();
            view.saved_prompts = s.saved_prompts.clone();
            view.context_blocks = s
                .context_blocks
                .iter()
                .cloned()
                .map(ViewBlock::Saved)
                .collect();
        }
        view.context_blocks.extend(
            temporary
                .iter()
                .map(|(id, b)| ViewBlock::Temporary(*id, b.clone())),
        );
        view
    }
}
