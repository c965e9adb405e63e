//! `PromptActor`: the write path for saved prompts. Each write is committed by the store and only
//! then published as a [`Mutated`](crate::Mutated) event.

use crate::library::LibraryActor;
use crate::write::{commit, entity_actor};
use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use librarian_core::{
    Committed, Error, Mutation, MutationOptions, NewSavedPrompt, SavedPromptPatch,
};
use librarian_store::Store;
use uuid::Uuid;

entity_actor! {
    actor: PromptActor, message: WriteSavedPrompt, write: SavedPromptWrite,
    new: NewSavedPrompt, patch: SavedPromptPatch, what: "saved prompts",
    create: CreateSavedPrompt, update: UpdateSavedPrompt, delete: DeleteSavedPrompt,
}
