//! `ContextActor`: the write path for context blocks. Each write is committed by the store and only
//! then published as a [`Mutated`](crate::Mutated) event.

use crate::library::LibraryActor;
use crate::write::{commit, entity_actor};
use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use librarian_core::{
    Committed, ContextBlockPatch, Error, Mutation, MutationOptions, NewContextBlock,
};
use librarian_store::Store;
use uuid::Uuid;

entity_actor! {
    actor: ContextActor, message: WriteContextBlock, write: ContextBlockWrite,
    new: NewContextBlock, patch: ContextBlockPatch, what: "context blocks",
    create: CreateContextBlock, update: UpdateContextBlock, delete: DeleteContextBlock,
}
