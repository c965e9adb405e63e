//! `ProjectActor`: the write path for projects. Each write is committed by the store and only
//! then published as a [`Mutated`](crate::Mutated) event.

use crate::library::LibraryActor;
use crate::write::{commit, entity_actor};
use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use librarian_core::{Committed, Error, Mutation, MutationOptions, NewProject, ProjectPatch};
use librarian_store::Store;
use uuid::Uuid;

entity_actor! {
    actor: ProjectActor, message: WriteProject, write: ProjectWrite,
    new: NewProject, patch: ProjectPatch, what: "projects",
    create: CreateProject, update: UpdateProject, delete: DeleteProject,
}
