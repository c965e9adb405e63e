//! `POST /{kind}`, `GET|PATCH|DELETE /{kind}/{id}` for the three entity kinds, written once
//! over [`Resource`], in the caller's own library (`/api/v1/{kind}`) or in any library they
//! are a member of (`/api/v1/libraries/{library}/{kind}`, DESIGN §9: 404 for a non-member,
//! 403 for a viewer's mutation, both decided by the store inside the request's transaction).

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

/// The path segment `{name}` as a UUID (`None` if the route has no such segment), refused
/// with 400 naming the field unless it is one.
pub(crate) fn path_uuid(req: &HttpRequest, name: &str) -> Result<Option<Uuid>, Problem> {
    let Some(raw) = req.match_info().get(name) else {
        return Ok(None);
    };
    Uuid::parse_str(raw).map(Some).map_err(|_| Problem {
        errors: vec![FieldError::new(name, "must be a UUID")],
        ..Problem::bad_request("bad_id", format!("{raw:?} is not a UUID"))
    })
}

/// [`path_uuid`] of a segment every route of the extractor has.
pub(crate) fn required_path_uuid(req: &HttpRequest, name: &str) -> Result<Uuid, Problem> {
    path_uuid(req, name)?
        .ok_or_else(|| Problem::bad_request("bad_id", format!("the path has no {{{name}}}")))
}

/// The `{id}` of a path, refused with 400 unless it is a UUID.
pub struct PathId(Uuid);

impl FromRequest for PathId {
    type Error = Problem;
    type Future = Ready<Result<PathId, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(required_path_uuid(req, "id").map(PathId))
    }
}

/// Which library a request addresses: the `{library}` of a scoped path, else the caller's own.
pub struct Scope(Option<Uuid>);

impl FromRequest for Scope {
    type Error = Problem;
    type Future = Ready<Result<Scope, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(path_uuid(req, "library").map(Scope))
    }
}

impl Scope {
    /// The library's id (the caller's own library is created on first use).
    pub async fn library(&self, state: &AppState, user: &AuthUser) -> Result<Uuid, Problem> {
        match self.0 {
            Some(id) => Ok(id),
            None => state.library_id(user).await,
        }
    }

    /// Where a row of this scope lives.
    fn location(&self, path: &str, id: Uuid) -> String {
        match self.0 {
            Some(library) => format!("/api/v1/libraries/{library}/{path}/{id}"),
            None => format!("/api/v1/{path}/{id}"),
        }
    }
}

pub async fn create<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    scope: Scope,
    body: JsonBody<R::New>,
) -> Result<HttpResponse, Problem> {
    mutate(
        &req,
        &state,
        &user,
        &scope,
        R::create(body.0),
        Some(R::PATH),
    )
    .await
}

pub async fn read<R: Resource>(
    state: web::Data<AppState>,
    user: AuthUser,
    scope: Scope,
    id: PathId,
) -> Result<HttpResponse, Problem> {
    let library = scope.library(&state, &user).await?;
    let entity = state
        .store
        .get(library, &user.user_id, R::KIND, id.0)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(entity.version()))
        .json(entity))
}

pub async fn update<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    scope: Scope,
    id: PathId,
    body: JsonBody<R::Patch>,
) -> Result<HttpResponse, Problem> {
    mutate(&req, &state, &user, &scope, R::update(id.0, body.0), None).await
}

pub async fn delete<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    scope: Scope,
    id: PathId,
) -> Result<HttpResponse, Problem> {
    mutate(&req, &state, &user, &scope, R::delete(id.0), None).await
}

/// The answer to every mutation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MutationReply {
    /// The row as committed; `null` after a delete.
    #[schema(required = true)]
    data: Option<Entity>,
    /// The library version this mutation's commit produced.
    library_version: i64,
    /// With `Prefer: return=library`: the library at a version at least `library_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    library: Option<LibrarySnapshot>,
}

/// Runs a mutation through the write path and answers DESIGN §4's mutation response.
async fn mutate(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    scope: &Scope,
    mutation: Mutation,
    created_in: Option<&str>,
) -> Result<HttpResponse, Problem> {
    let opts = MutationOptions {
        if_version: if_match(req)?,
        idempotency_key: idempotency_key(req)?,
    };
    let library = scope.library(state, user).await?;
    let committed = state
        .apply(user, library, mutation, opts)
        .await
        .map_err(Problem::for_mutation)?;
    // Loaded after the commit, so its version is at least the mutation's. The mutation is
    // committed whatever happens here: a failed load answers the commit without the library
    // (and without Preference-Applied), never an error that would invite a duplicate.
    let snapshot = if prefers_library(req) {
        match state.store.load_library_as(library, &user.user_id).await {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                tracing::warn!(%library, error = %e, "committed, but the library for Prefer: return=library could not be loaded");
                None
            }
        }
    } else {
        None
    };
    let mut res = match created_in {
        Some(path) => {
            let mut res = HttpResponse::Created();
            res.insert_header((header::LOCATION, scope.location(path, committed.id)));
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
        data: committed.data,
        library_version: committed.library_version,
        library: snapshot,
    }))
}

/// The four routes of one kind: concrete handlers (so the API description is generated from
/// them) over the generic ones above.
macro_rules! resource_handlers {
    ($mod_name:ident, $res:ty, $new:ty, $patch:ty, $tag:literal, $collection:literal, $item:literal,
     [$($scope:tt)*]) => {
        pub mod $mod_name {
            use super::*;
            #[allow(unused_imports)]
            use crate::problem::Problem;

            #[utoipa::path(post, path = $collection, tag = $tag,
                operation_id = concat!(stringify!($mod_name), "_create"), request_body = $new,
                params($($scope)*
                    ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key answers the first result"),
                    ("Prefer" = Option<String>, Header, description = "`return=library` adds the snapshot to the reply"),
                ),
                responses(
                    (status = 201, description = "created", body = MutationReply),
                    (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "a viewer's mutation (shared libraries)", body = Problem, content_type = "application/problem+json"),
                    (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
                    (status = 409, description = "the id is taken", body = Problem, content_type = "application/problem+json"),
                    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
                    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
                    (status = 422, description = "a rule is broken (fields named)", body = Problem, content_type = "application/problem+json"),
                    (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
                ),
                security(("bearer" = [])))]
            pub async fn create(
                req: HttpRequest,
                state: web::Data<AppState>,
                user: AuthUser,
                scope: Scope,
                body: JsonBody<$new>,
            ) -> Result<HttpResponse, Problem> {
                super::create::<$res>(req, state, user, scope, body).await
            }

            #[utoipa::path(get, path = $item, tag = $tag,
                operation_id = concat!(stringify!($mod_name), "_read"),
                params($($scope)* ("id" = uuid::Uuid, Path, description = "the row's id")),
                responses(
                    (status = 200, description = "the row; `ETag` is its version", body = Entity),
                    (status = 400, description = "the id is not a UUID", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
                    (status = 404, description = "no such row (also another user's), or no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
                    (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
                ),
                security(("bearer" = [])))]
            pub async fn read(
                state: web::Data<AppState>,
                user: AuthUser,
                scope: Scope,
                id: PathId,
            ) -> Result<HttpResponse, Problem> {
                super::read::<$res>(state, user, scope, id).await
            }

            #[utoipa::path(patch, path = $item, tag = $tag,
                operation_id = concat!(stringify!($mod_name), "_update"), request_body = $patch,
                params($($scope)*
                    ("id" = uuid::Uuid, Path, description = "the row's id"),
                    ("If-Match" = Option<String>, Header, description = "the row version last seen, e.g. \"3\""),
                    ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key answers the first result"),
                    ("Prefer" = Option<String>, Header, description = "`return=library` adds the snapshot to the reply"),
                ),
                responses(
                    (status = 200, description = "updated; absent fields unchanged, `null` clears an optional reference", body = MutationReply),
                    (status = 400, description = "malformed JSON, bad id or If-Match", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "a viewer's mutation (shared libraries)", body = Problem, content_type = "application/problem+json"),
                    (status = 404, description = "no such row, or no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
                    (status = 412, description = "If-Match does not match: `current` holds the row", body = Problem, content_type = "application/problem+json"),
                    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
                    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
                    (status = 422, description = "a rule is broken (fields named)", body = Problem, content_type = "application/problem+json"),
                    (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
                ),
                security(("bearer" = [])))]
            pub async fn update(
                req: HttpRequest,
                state: web::Data<AppState>,
                user: AuthUser,
                scope: Scope,
                id: PathId,
                body: JsonBody<$patch>,
            ) -> Result<HttpResponse, Problem> {
                super::update::<$res>(req, state, user, scope, id, body).await
            }

            #[utoipa::path(delete, path = $item, tag = $tag,
                operation_id = concat!(stringify!($mod_name), "_delete"),
                params($($scope)*
                    ("id" = uuid::Uuid, Path, description = "the row's id"),
                    ("If-Match" = Option<String>, Header, description = "the row version last seen"),
                    ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key answers the first result"),
                ),
                responses(
                    (status = 200, description = "deleted (`data` is null)", body = MutationReply),
                    (status = 400, description = "bad id or If-Match", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "a viewer's mutation (shared libraries)", body = Problem, content_type = "application/problem+json"),
                    (status = 404, description = "no such row, or no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
                    (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"),
                    (status = 422, description = "a bad Idempotency-Key, or one reused for another request", body = Problem, content_type = "application/problem+json"),
                    (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
                ),
                security(("bearer" = [])))]
            pub async fn delete(
                req: HttpRequest,
                state: web::Data<AppState>,
                user: AuthUser,
                scope: Scope,
                id: PathId,
            ) -> Result<HttpResponse, Problem> {
                super::delete::<$res>(req, state, user, scope, id).await
            }
        }
    };
}

resource_handlers!(
    projects,
    Projects,
    NewProject,
    ProjectPatch,
    "projects",
    "/api/v1/projects",
    "/api/v1/projects/{id}",
    []
);
resource_handlers!(
    library_projects,
    Projects,
    NewProject,
    ProjectPatch,
    "projects",
    "/api/v1/libraries/{library}/projects",
    "/api/v1/libraries/{library}/projects/{id}",
    [(
        "library" = uuid::Uuid,
        Path,
        description = "the library's id"
    ),]
);
resource_handlers!(
    context_blocks,
    ContextBlocks,
    NewContextBlock,
    ContextBlockPatch,
    "context blocks",
    "/api/v1/context-blocks",
    "/api/v1/context-blocks/{id}",
    []
);
resource_handlers!(
    library_context_blocks,
    ContextBlocks,
    NewContextBlock,
    ContextBlockPatch,
    "context blocks",
    "/api/v1/libraries/{library}/context-blocks",
    "/api/v1/libraries/{library}/context-blocks/{id}",
    [(
        "library" = uuid::Uuid,
        Path,
        description = "the library's id"
    ),]
);
resource_handlers!(
    saved_prompts,
    SavedPrompts,
    NewSavedPrompt,
    SavedPromptPatch,
    "saved prompts",
    "/api/v1/saved-prompts",
    "/api/v1/saved-prompts/{id}",
    []
);
resource_handlers!(
    library_saved_prompts,
    SavedPrompts,
    NewSavedPrompt,
    SavedPromptPatch,
    "saved prompts",
    "/api/v1/libraries/{library}/saved-prompts",
    "/api/v1/libraries/{library}/saved-prompts/{id}",
    [(
        "library" = uuid::Uuid,
        Path,
        description = "the library's id"
    ),]
);
