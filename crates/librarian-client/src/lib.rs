//! Librarian's Rust client SDK.
//!
//! [`Library::connect_with`] opens a WebSocket session and keeps it open (reconnecting with
//! backoff and `since_version`). The handle exposes the latest snapshot and the sync status as
//! `watch` receivers, and the nine mutations. A mutation resolves only once the server
//! acknowledged it **and** this client holds a snapshot at least as new as its version: what the
//! caller sees afterwards always includes its own write (read-your-writes), and nothing is shown
//! before the server confirmed it (no optimistic state). A mutation not yet acknowledged when the
//! connection drops is sent again with the same `mutation_id`, which the server applies at most
//! once. At most the server's `max_inflight_mutations` are in flight at once (the rest queue),
//! and a mutation the server deferred (`too_many_mutations`, 503) is resent after a backoff,
//! never reported as failed: an earlier attempt of it may have committed.
//!
//! Tokens come from a [`TokenProvider`] ([`Library::connect`] is a fixed one). It is called
//! before every connection attempt, and on an open session ahead of the token's expiry
//! (`hello.expires_at`, then each `auth_ok.expires_at`), whose result goes in an `auth` frame:
//! with short-lived tokens a session stays open instead of being closed (4401) at each expiry.
//! If the provider fails before a connection attempt, the status becomes
//! [`SyncStatus::Unauthorized`] and nothing more is tried until [`Library::reconnect`].
//!
//! Temporary blocks live only in this handle: they are merged into [`Library::view`], marked
//! as temporary, never sent, and survive every snapshot until saved (a create) or discarded.

mod admin;
mod connection;
mod status;
mod temporary;
mod token;

pub use admin::Admin;
pub use status::SyncStatus;
pub use temporary::{TempBlock, TempId, View, ViewBlock};
pub use token::{TokenError, TokenFuture, TokenProvider};

use librarian_core::protocol::Presence;
use librarian_core::{
    ContextBlock, ContextBlockPatch, Entity, LibrarySnapshot, NewContextBlock, NewProject,
    NewSavedPrompt, Op, Project, ProjectPatch, Role, SavedPrompt, SavedPromptPatch,
};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad base URL: {0}")]
    BadUrl(String),
    /// The server refused the mutation; `problem` is its problem document.
    #[error("rejected ({status}): {detail}")]
    Rejected {
        status: u16,
        detail: String,
        problem: serde_json::Value,
    },
    /// The handle was closed (or its connection task stopped) before the mutation resolved.
    #[error("the client is closed")]
    Closed,
    #[error("no such temporary block")]
    NoSuchTemporaryBlock,
    #[error("cannot encode the mutation: {0}")]
    Encode(#[from] serde_json::Error),
    /// The user lost access to the library (removed, or the library deleted).
    #[error("access to the library was revoked: {0}")]
    AccessRevoked(String),
    /// An HTTP request of [`Admin`] failed before the server answered.
    #[error("request failed: {0}")]
    Http(String),
}

/// What a resolved mutation returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The row as committed (`None` after a delete).
    pub data: Option<Entity>,
    /// The library version the commit produced; this client holds a snapshot at least this new.
    pub library_version: i64,
}

/// A live connection to one user's library.
pub struct Library {
    commands: mpsc::UnboundedSender<connection::Command>,
    snapshot: watch::Receiver<Option<Arc<LibrarySnapshot>>>,
    status: watch::Receiver<SyncStatus>,
    role: watch::Receiver<Option<Role>>,
    presence: watch::Receiver<Option<Presence>>,
    temporary: Arc<Mutex<temporary::Temporary>>,
}

impl Library {
    /// [`Library::connect_with`] a fixed token ([`TokenProvider::fixed`]).
    pub fn connect(base_url: &str, token: &str) -> Result<Library, ClientError> {
        Library::connect_with(base_url, TokenProvider::fixed(token))
    }

    /// Starts the session in the background and returns at once (status `Connecting`).
    /// `base_url` is the server's HTTP address, e.g. `http://127.0.0.1:8080`; `tokens` is
    /// called for a token before each connection attempt and ahead of each token's expiry.
    ///
    /// A handle is one user's (the first session's): if the provider later returns another
    /// user's token, the handle stops with [`SyncStatus::Unauthorized`] rather than show that
    /// user this one's library or send them its queued mutations. Connect a new `Library` for
    /// the new user.
    pub fn connect_with(base_url: &str, tokens: TokenProvider) -> Result<Library, ClientError> {
        Library::open(base_url, tokens, None)
    }

    /// [`Library::connect_with`] for a given library (`None`: the user's own), one the user
    /// owns or was given access to ([`Admin`] lists and shares them). If the user loses access
    /// the status becomes [`SyncStatus::Revoked`].
    pub fn open(
        base_url: &str,
        tokens: TokenProvider,
        library: Option<Uuid>,
    ) -> Result<Library, ClientError> {
        let ws_url = if let Some(rest) = base_url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            return Err(ClientError::BadUrl(base_url.to_owned()));
        };
        let mut ws_url = format!("{}/api/v1/ws", ws_url.trim_end_matches('/'));
        if let Some(library) = library {
            ws_url.push_str(&format!("?library={library}"));
        }
        let (snapshot_tx, snapshot) = watch::channel(None);
        let (status_tx, status) = watch::channel(SyncStatus::Connecting);
        let (role_tx, role) = watch::channel(None);
        let (presence_tx, presence) = watch::channel(None);
        let (commands, command_rx) = mpsc::unbounded_channel();
        tokio::spawn(connection::run(connection::Connection::new(
            ws_url,
            tokens,
            snapshot_tx,
            status_tx,
            connection::Shared {
                role: role_tx,
                presence: presence_tx,
            },
            command_rx,
        )));
        Ok(Library {
            commands,
            snapshot,
            status,
            role,
            presence,
            temporary: Arc::default(),
        })
    }

    /// The user's role in the library (`None` until the first `hello`); changes live.
    pub fn role(&self) -> watch::Receiver<Option<Role>> {
        self.role.clone()
    }

    /// Every session open on the library, on every instance (`None` until the first list).
    pub fn presence(&self) -> watch::Receiver<Option<Presence>> {
        self.presence.clone()
    }

    /// Delivery receipt of `version`: (sessions that applied it or a newer one, all sessions
    /// open on the library), from the latest presence list; (0, 0) before the first.
    pub fn delivered_to(&self, version: i64) -> (usize, usize) {
        self.presence
            .borrow()
            .as_ref()
            .map_or((0, 0), |p| p.delivered_to(version))
    }

    /// The latest snapshot the server sent (`None` until the first one).
    pub fn snapshot(&self) -> watch::Receiver<Option<Arc<LibrarySnapshot>>> {
        self.snapshot.clone()
    }

    /// The sync status.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
    }

    /// The library as shown: the latest snapshot plus this handle's temporary blocks.
    pub fn view(&self) -> View {
        let snapshot = self.snapshot.borrow().clone();
        let temporary = self.lock_temporary().list();
        View::merge(snapshot.as_deref(), &temporary)
    }

    /// Stops the session; pending mutations fail with [`ClientError::Closed`].
    pub fn close(&self) {
        let _ = self.commands.send(connection::Command::Close);
    }

    /// Tries to connect again now: after [`SyncStatus::Unauthorized`] (e.g. once the user
    /// signed in again), or to cut a reconnect's backoff short. Does nothing while connected.
    pub fn reconnect(&self) {
        let _ = self.commands.send(connection::Command::Reconnect);
    }

    pub async fn create_project(&self, data: NewProject) -> Result<Project, ClientError> {
        let applied = self
            .mutate(Op::ProjectCreate, data.id, Some(&data), None)
            .await?;
        match applied.data {
            Some(Entity::Project(p)) => Ok(p),
            _ => Err(ClientError::Closed),
        }
    }

    pub async fn update_project(
        &self,
        id: Uuid,
        patch: ProjectPatch,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        self.mutate(Op::ProjectUpdate, Some(id), Some(&patch), if_version)
            .await
    }

    pub async fn delete_project(
        &self,
        id: Uuid,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        self.mutate::<()>(Op::ProjectDelete, Some(id), None, if_version)
            .await
    }

    pub async fn create_context_block(
        &self,
        data: NewContextBlock,
    ) -> Result<ContextBlock, ClientError> {
        let applied = self
            .mutate(Op::ContextBlockCreate, data.id, Some(&data), None)
            .await?;
        match applied.data {
            Some(Entity::ContextBlock(b)) => Ok(b),
            _ => Err(ClientError::Closed),
        }
    }

    pub async fn update_context_block(
        &self,
        id: Uuid,
        patch: ContextBlockPatch,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        self.mutate(Op::ContextBlockUpdate, Some(id), Some(&patch), if_version)
            .await
    }

    pub async fn delete_context_block(
        &self,
        id: Uuid,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        self.mutate::<()>(Op::ContextBlockDelete, Some(id), None, if_version)
            .await
    }

    pub async fn create_saved_prompt(
        &self,
        data: NewSavedPrompt,
    ) -> Result<SavedPrompt, ClientError> {
        let applied = self
            .mutate(Op::SavedPromptCreate, data.id, Some(&data), None)
            .await?;
        match applied.data {
            Some(Entity::SavedPrompt(p)) => Ok(p),
            _ => Err(ClientError::Closed),
        }
    }

    pub async fn update_saved_prompt(
        &self,
        id: Uuid,
        patch: SavedPromptPatch,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        self.mutate(Op::SavedPromptUpdate, Some(id), Some(&patch), if_version)
            .await
    }

    pub async fn delete_saved_prompt(
        &self,
        id: Uuid,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        self.mutate::<()>(Op::SavedPromptDelete, Some(id), None, if_version)
            .await
    }

    /// Adds a block that exists only in this handle.
    pub fn add_temporary_block(&self, block: TempBlock) -> TempId {
        self.lock_temporary().add(block)
    }

    /// Replaces a temporary block's contents.
    pub fn edit_temporary_block(&self, id: TempId, block: TempBlock) -> Result<(), ClientError> {
        self.lock_temporary().edit(id, block)
    }

    pub fn discard_temporary_block(&self, id: TempId) -> Result<(), ClientError> {
        self.lock_temporary().remove(id).map(drop)
    }

    /// Saves a temporary block as a real one (a create); once it resolved, the temporary block
    /// is gone and the real one is in the snapshot.
    pub async fn save_temporary_block(&self, id: TempId) -> Result<ContextBlock, ClientError> {
        let block = self.lock_temporary().get(id)?;
        let created = self
            .create_context_block(NewContextBlock {
                id: None,
                project_id: block.project_id,
                title: block.title,
                content: block.content,
                tags: block.tags,
            })
            .await?;
        let _ = self.lock_temporary().remove(id);
        Ok(created)
    }

    /// Sends one mutation and waits until it is acknowledged and visible in a snapshot.
    pub async fn mutate<T: Serialize>(
        &self,
        op: Op,
        id: Option<Uuid>,
        data: Option<&T>,
        if_version: Option<i64>,
    ) -> Result<Applied, ClientError> {
        let data = data.map(serde_json::to_value).transpose()?;
        let (done, result) = oneshot::channel();
        self.commands
            .send(connection::Command::Mutate(Box::new(
                connection::Pending::new(op, id, if_version, data, done),
            )))
            .map_err(|_| ClientError::Closed)?;
        result.await.map_err(|_| ClientError::Closed)?
    }

    fn lock_temporary(&self) -> std::sync::MutexGuard<'_, temporary::Temporary> {
        // A poisoned lock only means another thread panicked mid-edit of a plain list.
        self.temporary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        self.close();
    }
}
