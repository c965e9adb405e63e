//! The write path (DESIGN §1): one actor per entity kind ([`ProjectActor`], [`ContextActor`],
//! [`PromptActor`]), each committing a mutation through the store and only then publishing it,
//! and [`Writers`], the one place that routes a [`Mutation`] to the actor of its kind.
//!
//! Each actor's message carries the `Mutation` itself. The three actors differ only in the
//! kind they accept, so they are defined here together.

use crate::event::Mutated;
use crate::library::{LibraryActor, WriteEnded, WriteStarted};
use actix::{Actor, Addr, Context, Handler, MailboxError, Message, ResponseFuture};
use librarian_core::{Committed, EntityKind, Error, Mutation, MutationOptions};
use librarian_store::Store;
use uuid::Uuid;

/// Commits `mutation`, and only then tells the library actor. A replayed idempotent answer is
/// published too: its version is already committed, and the library actor ignores versions it
/// holds, so this only helps a subscriber that had missed it (e.g. after a restart).
///
/// The library actor also hears when the write starts and ends, so that it can hold a reload
/// back while more writes to the same library are under way (coalescing, G6).
async fn commit(
    store: Store,
    library: Addr<LibraryActor>,
    library_id: Uuid,
    user: String,
    mutation: Mutation,
    opts: MutationOptions,
) -> Result<Committed, Error> {
    let op = mutation.op();
    library.do_send(WriteStarted { library_id });
    let _in_flight = InFlight {
        library: library.clone(),
        library_id,
    };
    let committed = store.apply(library_id, &user, mutation, opts).await?;
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

/// Defines one entity actor and its message, which holds a mutation of the actor's kind only.
macro_rules! entity_actor {
    ($actor:ident, $msg:ident, $kind:expr, $what:literal) => {
        #[doc = concat!("A mutation of ", $what, " for the [`", stringify!($actor), "`]; answers once it committed.")]
        #[derive(Debug, Message)]
        #[rtype(result = "Result<Committed, Error>")]
        pub struct $msg {
            // Private, so that the message holds a mutation of its kind: built by `new` or by
            // `Writers::apply`, which route by the kind.
            library_id: Uuid,
            /// The author: a member who may write (checked in the write's transaction).
            user: String,
            mutation: Mutation,
            opts: MutationOptions,
        }

        impl $msg {
            #[doc = concat!("The message for `mutation`; `None` if it is not a mutation of ", $what, ".")]
            pub fn new(library_id: Uuid, user: &str, mutation: Mutation, opts: MutationOptions) -> Option<Self> {
                (mutation.kind() == $kind).then_some($msg {
                    library_id,
                    user: user.to_owned(),
                    mutation,
                    opts,
                })
            }
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
            // A future the actor does not wait for: writes to different libraries run
            // concurrently (writes to one library queue on its row lock in the database).
            type Result = ResponseFuture<Result<Committed, Error>>;

            fn handle(&mut self, msg: $msg, _ctx: &mut Self::Context) -> Self::Result {
                Box::pin(commit(
                    self.store.clone(),
                    self.library.clone(),
                    msg.library_id,
                    msg.user,
                    msg.mutation,
                    msg.opts,
                ))
            }
        }
    };
}

entity_actor!(ProjectActor, WriteProject, EntityKind::Project, "projects");
entity_actor!(
    ContextActor,
    WriteContextBlock,
    EntityKind::ContextBlock,
    "context blocks"
);
entity_actor!(
    PromptActor,
    WriteSavedPrompt,
    EntityKind::SavedPrompt,
    "saved prompts"
);

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
        user: &str,
        mutation: Mutation,
        opts: MutationOptions,
    ) -> Result<Committed, Error> {
        let user = user.to_owned();
        // The match on the kind is the check the messages' `new` makes (and, being
        // exhaustive, a new kind cannot go unrouted).
        let sent = match mutation.kind() {
            EntityKind::Project => {
                self.projects
                    .send(WriteProject {
                        library_id,
                        user,
                        mutation,
                        opts,
                    })
                    .await
            }
            EntityKind::ContextBlock => {
                self.contexts
                    .send(WriteContextBlock {
                        library_id,
                        user,
                        mutation,
                        opts,
                    })
                    .await
            }
            EntityKind::SavedPrompt => {
                self.prompts
                    .send(WriteSavedPrompt {
                        library_id,
                        user,
                        mutation,
                        opts,
                    })
                    .await
            }
        };
        sent.map_err(mailbox_error)?
    }
}

fn mailbox_error(e: MailboxError) -> Error {
    Error::Unavailable(format!("the write path is not running: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_takes_only_a_mutation_of_its_actors_kind() {
        let (lib, id, opts) = (Uuid::now_v7(), Uuid::now_v7(), MutationOptions::default);
        let project = || Mutation::DeleteProject { id };
        let block = || Mutation::DeleteContextBlock { id };
        let prompt = || Mutation::DeleteSavedPrompt { id };
        let u = "alice";
        assert!(WriteProject::new(lib, u, project(), opts()).is_some());
        assert!(WriteProject::new(lib, u, block(), opts()).is_none());
        assert!(WriteContextBlock::new(lib, u, block(), opts()).is_some());
        assert!(WriteContextBlock::new(lib, u, prompt(), opts()).is_none());
        assert!(WriteSavedPrompt::new(lib, u, prompt(), opts()).is_some());
        assert!(WriteSavedPrompt::new(lib, u, project(), opts()).is_none());
    }
}
