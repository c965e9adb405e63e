//! `ContextActor`: the write path for context blocks. Each write is committed by the store and
//! only then published as a [`Mutated`](crate::Mutated) event.

use crate::library::LibraryActor;
use crate::write::commit;
use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use librarian_core::{
    Committed, ContextBlockPatch, Error, Mutation, MutationOptions, NewContextBlock,
};
use librarian_store::Store;
use uuid::Uuid;

/// One create, update or delete of context blocks.
#[derive(Debug, Clone)]
pub enum ContextBlockWrite {
    Create(NewContextBlock),
    Update { id: Uuid, patch: ContextBlockPatch },
    Delete { id: Uuid },
}

/// Ask the [`ContextActor`] to apply a write to a library; answers once it committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Committed, Error>")]
pub struct WriteContextBlock {
    pub library_id: Uuid,
    pub write: ContextBlockWrite,
    pub opts: MutationOptions,
}

pub struct ContextActor {
    store: Store,
    library: Addr<LibraryActor>,
}

impl ContextActor {
    pub fn new(store: Store, library: Addr<LibraryActor>) -> Self {
        ContextActor { store, library }
    }
}

impl Actor for ContextActor {
    type Context = Context<Self>;
}

impl Handler<WriteContextBlock> for ContextActor {
    // A future the actor does not wait for: writes to different libraries run concurrently
    // (writes to one library queue on its row lock in the database, not here).
    type Result = ResponseFuture<Result<Committed, Error>>;

    fn handle(&mut self, msg: WriteContextBlock, _ctx: &mut Self::Context) -> Self::Result {
        let mutation = match msg.write {
            ContextBlockWrite::Create(data) => Mutation::CreateContextBlock(data),
            ContextBlockWrite::Update { id, patch } => Mutation::UpdateContextBlock { id, patch },
            ContextBlockWrite::Delete { id } => Mutation::DeleteContextBlock { id },
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
