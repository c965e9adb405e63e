//! `POST /{kind}`, `GET|PATCH|DELETE /{kind}/{id}` for the three entity kinds, written once
//! over [`Resource`].

use super::headers::{LIBRARY_VERSION, etag, idempotency_key, if_match, prefers_library};
use crate::auth::AuthUser;
use crate::body::JsonBody;
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use librarian_core::{
    ContextBlockPatch, Entity, EntityKind, FieldError, LibrarySnapshot, Mutation, MutationOptions,
    NewContextBlock, NewProject, NewSavedPrompt, ProjectPatch, SavedPromptPatch,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::{Ready, ready};
use uuid::Uuid;

/// One entity kind as the API exposes it.
pub trait Resource: 'static {
    const KIND: EntityKind;
    /// The collection's path segment, e.g. `context-blocks`.
    const PATH: &'static str;
    type New: DeserializeOwned + 'static;
    type Patch: DeserializeOwned + 'static;
    fn create(new: Self::New) -> Mutation;
    fn update(id: Uuid, patch: Self::Patch) -> Mutation;
    fn delete(id: Uuid) -> Mutation;
}

pub struct Projects;
pub struct ContextBlocks;
pub struct SavedPrompts;

impl Resource for Projects {
    const KIND: EntityKind = EntityKind::Project;
    const PATH: &'static str = "projects";
    type New = NewProject;
    type Patch = ProjectPatch;
    fn create(new: NewProject) -> Mutation {
        Mutation::CreateProject(new)
    }
    fn update(id: Uuid, patch: ProjectPatch) -> Mutation {
        Mutation::UpdateProject { id, patch }
    }
    fn delete(id: Uuid) -> Mutation {
        Mutation::DeleteProject { id }
    }
}

impl Resource for ContextBlocks {
    const KIND: EntityKind = EntityKind::ContextBlock;
    const PATH: &'static str = "context-blocks";
    type New = NewContextBlock;
    type Patch = ContextBlockPatch;
    fn create(new: NewContextBlock) -> Mutation {
        Mutation::CreateContextBlock(new)
    }
    fn update(id: Uuid, patch: ContextBlockPatch) -> Mutation {
        Mutation::UpdateContextBlock { id, patch }
    }
    fn delete(id: Uuid) -> Mutation {
        Mutation::DeleteContextBlock { id }
    }
}

impl Resource for SavedPrompts {
    const KIND: EntityKind = EntityKind::SavedPrompt;
    const PATH: &'static str = "saved-prompts";
    type New = NewSavedPrompt;
    type Patch = SavedPromptPatch;
    fn create(new: NewSavedPrompt) -> Mutation {
        Mutation::CreateSavedPrompt(new)
    }
    fn update(id: Uuid, patch: SavedPromptPatch) -> Mutation {
        Mutation::UpdateSavedPrompt { id, patch }
    }
    fn delete(id: Uuid) -> Mutation {
        Mutation::DeleteSavedPrompt { id }
    }
}

pub fn resource<R: Resource>(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(format!("/{}", R::PATH)).route(web::post().to(create::<R>)))
        .service(
            web::resource(format!("/{}/{{id}}", R::PATH))
                .route(web::get().to(read::<R>))
                .route(web::patch().to(update::<R>))
                .route(web::delete().to(delete::<R>)),
        );
}

/// The `{id}` of a path, refused with 400 unless it is a UUID.
pub struct PathId(Uuid);

impl FromRequest for PathId {
    type Error = Problem;
    type Future = Ready<Result<PathId, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("id").unwrap_or("");
        ready(Uuid::parse_str(raw).map(PathId).map_err(|_| Problem {
            errors: vec![FieldError::new("id", "must be a UUID")],
            ..Problem::bad_request("bad_id", format!("{raw:?} is not a UUID"))
        }))
    }
}

async fn create<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody<R::New>,
) -> Result<HttpResponse, Problem> {
    mutate(&req, &state, &user, R::create(body.0), Some(R::PATH)).await
}

async fn read<R: Resource>(
    state: web::Data<AppState>,
    user: AuthUser,
    id: PathId,
) -> Result<HttpResponse, Problem> {
    let library = state.library_id(&user).await?;
    let entity = state.store.get(library, R::KIND, id.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(entity.version()))
        .json(entity))
}

async fn update<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: PathId,
    body: JsonBody<R::Patch>,
) -> Result<HttpResponse, Problem> {
    mutate(&req, &state, &user, R::update(id.0, body.0), None).await
}

async fn delete<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: PathId,
) -> Result<HttpResponse, Problem> {
    mutate(&req, &state, &user, R::delete(id.0), None).await
}

#[derive(Serialize)]
struct MutationReply<'a> {
    data: &'a Option<Entity>,
    library_version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    library: Option<LibrarySnapshot>,
}

/// Runs a mutation through the write path and answers DESIGN §4's mutation response.
async fn mutate(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    mutation: Mutation,
    created_in: Option<&str>,
) -> Result<HttpResponse, Problem> {
    let opts = MutationOptions {
        if_version: if_match(req)?,
        idempotency_key: idempotency_key(req)?,
    };
    let library = state.library_id(user).await?;
    let committed = state.apply(user, library, mutation, opts).await?;
    // Loaded after the commit, so its version is at least the mutation's.
    let snapshot = if prefers_library(req) {
        Some(state.store.load_library(library).await?)
    } else {
        None
    };
    let mut res = match created_in {
        Some(path) => {
            let mut res = HttpResponse::Created();
            res.insert_header((header::LOCATION, format!("/api/v1/{path}/{}", committed.id)));
            res
        }
        None => HttpResponse::Ok(),
    };
    res.insert_header((LIBRARY_VERSION, committed.library_version.to_string()));
    if let Some(entity) = &committed.data {
        res.insert_header(etag(entity.version()));
    }
    if snapshot.is_some() {
        res.insert_header(("Preference-Applied", "return=library"));
    }
    Ok(res.json(MutationReply {
        data: &committed.data,
        library_version: committed.library_version,
        library: snapshot,
    }))
}
