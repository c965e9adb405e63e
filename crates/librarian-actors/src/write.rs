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

/// Defines one entity actor: its write enum, its message and the actor, which commits through
/// [`commit`] (so it publishes only after the commit). The three entity actors differ only in
/// their types.
macro_rules! entity_actor {
    (
        actor: $actor:ident, message: $msg:ident, write: $write:ident,
        new: $new:ty, patch: $patch:ty, what: $what:literal,
        create: $create:ident, update: $update:ident, delete: $delete:ident $(,)?
    ) => {
        #[doc = concat!("One create, update or delete of ", $what, ".")]
        #[derive(Debug, Clone)]
        pub enum $write {
            Create($new),
            Update { id: Uuid, patch: $patch },
            Delete { id: Uuid },
        }

        #[doc = concat!("Ask the [`", stringify!($actor), "`] to apply a write to a library; answers once it committed.")]
        #[derive(Debug, Message)]
        #[rtype(result = "Result<Committed, Error>")]
        pub struct $msg {
            pub library_id: Uuid,
            pub write: $write,
            pub opts: MutationOptions,
        }

        #[doc = concat!("The write path for ", $what, ": commits, then publishes.")]
        pub struct $actor {
            store: Store,
            library: Addr<LibraryActor>,
        }

        impl $actor {
            pub fn new(store: Store, library: Addr<LibraryActor>) -> Self {
                $actor { store, library }
            }
        }

        impl Actor for $actor {
            type Context = Context<Self>;
        }

        impl Handler<$msg> for $actor {
            // A future the actor does not wait for: writes to different libraries run concurrently
            // (writes to one library queue on its row lock in the database, not here).
            type Result = ResponseFuture<Result<Committed, Error>>;

            fn handle(&mut self, msg: $msg, _ctx: &mut Self::Context) -> Self::Result {
                let mutation = match msg.write {
                    $write::Create(data) => Mutation::$create(data),
                    $write::Update { id, patch } => Mutation::$update { id, patch },
                    $write::Delete { id } => Mutation::$delete { id },
                };
                Box::pin(commit(
                    self.store.clone(),
                    self.library.clone(),
                    msg.library_id,
                    mutation,
                    msg.opts,
                ))
            }
        }
    };
}
pub(crate) use entity_actor;

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
