//! `ProjectActor`: the write path for projects. Each write is committed by the store and
//! only then published as a [`Mutated`](crate::Mutated) event.

use crate::library::LibraryActor;
use crate::write::commit;
use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use librarian_core::{Committed, Error, Mutation, MutationOptions, NewProject, ProjectPatch};
use librarian_store::Store;
use uuid::Uuid;

/// One create, update or delete of projects.
#[derive(Debug, Clone)]
pub enum ProjectWrite {
    Create(NewProject),
    Update { id: Uuid, patch: ProjectPatch },
    Delete { id: Uuid },
}

/// Ask the [`ProjectActor`] to apply a write to a library; answers once it committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Committed, Error>")]
pub struct WriteProject {
    pub library_id: Uuid,
    pub write: ProjectWrite,
    pub opts: MutationOptions,
}

pub struct ProjectActor {
    store: Store,
    library: Addr<LibraryActor>,
}

impl ProjectActor {
    pub fn new(store: Store, library: Addr<LibraryActor>) -> Self {
        ProjectActor { store, library }
    }
}

impl Actor for ProjectActor {
    type Context = Context<Self>;
}

impl Handler<WriteProject> for ProjectActor {
    // A future the actor does not wait for: writes to different libraries run concurrently
    // (writes to one library queue on its row lock in the database, not here).
    type Result = ResponseFuture<Result<Committed, Error>>;

    fn handle(&mut self, msg: WriteProject, _ctx: &mut Self::Context) -> Self::Result {
        let mutation = match msg.write {
            ProjectWrite::Create(data) => Mutation::CreateProject(data),
            ProjectWrite::Update { id, patch } => Mutation::UpdateProject { id, patch },
            ProjectWrite::Delete { id } => Mutation::DeleteProject { id },
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
