//! What the three entity actors share: commit through the store, then publish, and the
//! [`Writers`] facade that routes an untyped [`Mutation`] to the right actor.

use crate::context::{ContextActor, ContextBlockWrite, WriteContextBlock};
use crate::event::Mutated;
use crate::library::{LibraryActor, WriteEnded, WriteStarted};
use crate::project::{ProjectActor, ProjectWrite, WriteProject};
use crate::prompt::{PromptActor, SavedPromptWrite, WriteSavedPrompt};
use actix::{Addr, MailboxError};
use librarian_core::{Committed, Error, Mutation, MutationOptions};
use librarian_store::Store;
use uuid::Uuid;

/// Commits `mutation`, and only then tells the library actor. A replayed idempotent answer is
/// published too: its version is already committed, and the library actor ignores versions it
/// holds, so this only helps a subscriber that had missed it (e.g. after a restart).
///
/// The library actor also hears when the write starts and ends, so that it can hold a reload
/// back while more writes to the same library are under way (coalescing, G6).
pub(crate) async fn commit(
    store: Store,
    library: Addr<LibraryActor>,
    library_id: Uuid,
    mutation: Mutation,
    opts: MutationOptions,
) -> Result<Committed, Error> {
    let op = mutation.op();
    library.do_send(WriteStarted { library_id });
    let _in_flight = InFlight {
        library: library.clone(),
        library_id,
    };
    let committed = store.apply(library_id, mutation, opts).await?;
    library.do_send(Mutated {
        library_id,
        version: committed.library_version,
        kind: committed.kind,
        op,
        id: committed.id,
    });
    Ok(committed)
}

/// Sends [`WriteEnded`] when dropped, however the write ended (even if its future was dropped).
struct InFlight {
    library: Addr<LibraryActor>,
    library_id: Uuid,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.library.do_send(WriteEnded {
            library_id: self.library_id,
        });
    }
}

/// The addresses of the three entity actors.
#[derive(Clone)]
pub struct Writers {
    pub projects: Addr<ProjectActor>,
    pub contexts: Addr<ContextActor>,
    pub prompts: Addr<PromptActor>,
}

impl Writers {
    /// Sends `mutation` to the actor of its kind and waits for the committed result.
    pub async fn apply(
        &self,
        library_id: Uuid,
        mutation: Mutation,
        opts: MutationOptions,
    ) -> Result<Committed, Error> {
        let sent = match mutation {
            Mutation::CreateProject(d) => {
                self.project(library_id, ProjectWrite::Create(d), opts)
                    .await
            }
            Mutation::UpdateProject { id, patch } => {
                self.project(library_id, ProjectWrite::Update { id, patch }, opts)
                    .await
            }
            Mutation::DeleteProject { id } => {
                self.project(library_id, ProjectWrite::Delete { id }, opts)
                    .await
            }
            Mutation::CreateContextBlock(d) => {
                self.context(library_id, ContextBlockWrite::Create(d), opts)
                    .await
            }
            Mutation::UpdateContextBlock { id, patch } => {
                self.context(library_id, ContextBlockWrite::Update { id, patch }, opts)
                    .await
            }
            Mutation::DeleteContextBlock { id } => {
                self.context(library_id, ContextBlockWrite::Delete { id }, opts)
                    .await
            }
            Mutation::CreateSavedPrompt(d) => {
                self.prompt(library_id, SavedPromptWrite::Create(d), opts)
                    .await
            }
            Mutation::UpdateSavedPrompt { id, patch } => {
                self.prompt(library_id, SavedPromptWrite::Update { id, patch }, opts)
                    .await
            }
            Mutation::DeleteSavedPrompt { id } => {
                self.prompt(library_id, SavedPromptWrite::Delete { id }, opts)
                    .await
            }
        };
        sent.map_err(mailbox_error)?
    }

    fn project(
        &self,
        library_id: Uuid,
        write: ProjectWrite,
        opts: MutationOptions,
    ) -> actix::dev::Request<ProjectActor, WriteProject> {
        self.projects.send(WriteProject {
            library_id,
            write,
            opts,
        })
    }

    fn context(
        &self,
        library_id: Uuid,
        write: ContextBlockWrite,
        opts: MutationOptions,
    ) -> actix::dev::Request<ContextActor, WriteContextBlock> {
        self.contexts.send(WriteContextBlock {
            library_id,
            write,
            opts,
        })
    }

    fn prompt(
        &self,
        library_id: Uuid,
        write: SavedPromptWrite,
        opts: MutationOptions,
    ) -> actix::dev::Request<PromptActor, WriteSavedPrompt> {
        self.prompts.send(WriteSavedPrompt {
            library_id,
            write,
            opts,
        })
    }
}

fn mailbox_error(e: MailboxError) -> Error {
    Error::Unavailable(format!("the write path is not running: {e}"))
}
