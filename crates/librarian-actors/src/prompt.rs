//! `PromptActor`: the write path for saved prompts. Each write is committed by the store and
//! only then published as a [`Mutated`](crate::Mutated) event.

use crate::library::LibraryActor;
use crate::write::commit;
use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use librarian_core::{
    Committed, Error, Mutation, MutationOptions, NewSavedPrompt, SavedPromptPatch,
};
use librarian_store::Store;
use uuid::Uuid;

/// One create, update or delete of saved prompts.
#[derive(Debug, Clone)]
pub enum SavedPromptWrite {
    Create(NewSavedPrompt),
    Update { id: Uuid, patch: SavedPromptPatch },
    Delete { id: Uuid },
}

/// Ask the [`PromptActor`] to apply a write to a library; answers once it committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Committed, Error>")]
pub struct WriteSavedPrompt {
    pub library_id: Uuid,
    pub write: SavedPromptWrite,
    pub opts: MutationOptions,
}

pub struct PromptActor {
    store: Store,
    library: Addr<LibraryActor>,
}

impl PromptActor {
    pub fn new(store: Store, library: Addr<LibraryActor>) -> Self {
        PromptActor { store, library }
    }
}

impl Actor for PromptActor {
    type Context = Context<Self>;
}

impl Handler<WriteSavedPrompt> for PromptActor {
    // A future the actor does not wait for: writes to different libraries run concurrently
    // (writes to one library queue on its row lock in the database, not here).
    type Result = ResponseFuture<Result<Committed, Error>>;

    fn handle(&mut self, msg: WriteSavedPrompt, _ctx: &mut Self::Context) -> Self::Result {
        let mutation = match msg.write {
            SavedPromptWrite::Create(data) => Mutation::CreateSavedPrompt(data),
            SavedPromptWrite::Update { id, patch } => Mutation::UpdateSavedPrompt { id, patch },
            SavedPromptWrite::Delete { id } => Mutation::DeleteSavedPrompt { id },
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
