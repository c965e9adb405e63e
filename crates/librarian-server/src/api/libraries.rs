//! Shared libraries (DESIGN §9): `GET|POST /libraries`, `PATCH|DELETE /libraries/{library}`,
//! `GET /libraries/{library}/snapshot` and the members routes. The entity routes scoped to a
//! library are in `entities.rs`. Who may do what is decided by the store, in the transaction
//! of the request (a non-member gets 404 everywhere, as for a missing library).

use super::entities::required_path_uuid;
use super::headers::LIBRARY_VERSION;
use crate::auth::{AuthUser, valid_user_id};
use crate::body::JsonBody;
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use librarian_core::{FieldError, LibraryInfo, Member, Role};
use serde::{Deserialize, Serialize};
use std::future::{Ready, ready};
use uuid::Uuid;

/// The `{library}` of a path, refused with 400 unless it is a UUID.
pub struct LibraryPath(pub Uuid);

impl FromRequest for LibraryPath {
    type Error = Problem;
    type Future = Ready<Result<LibraryPath, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(required_path_uuid(req, "library").map(LibraryPath))
    }
}

/// The `{user_id}` of a members path, refused with 400 unless it is a valid user id.
pub struct MemberPath(pub String);

impl FromRequest for MemberPath {
    type Error = Problem;
    type Future = Ready<Result<MemberPath, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("user_id").unwrap_or("");
        ready(if valid_user_id(raw) {
            Ok(MemberPath(raw.to_owned()))
        } else {
            Err(Problem {
                errors: vec![FieldError::new(
                    "user_id",
                    "must be 1 to 255 printable characters",
                )],
                ..Problem::bad_request("bad_user_id", format!("{raw:?} is not a user id"))
            })
        })
    }
}

/// `POST /libraries` and `PATCH /libraries/{library}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LibraryName {
    /// 1 to 200 characters.
    pub name: String,
}

/// `PUT /libraries/{library}/members/{user_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRoleBody {
    /// `editor` or `viewer` (a library has exactly one owner).
    pub role: Role,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LibraryList {
    /// The caller's default library first, then the others by name.
    pub libraries: Vec<LibraryInfo>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LibraryReply {
    pub data: LibraryInfo,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberList {
    /// By user id.
    pub members: Vec<Member>,
}

/// The answer to a membership change or a library's deletion: like a mutation's.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberReply {
    /// The member as now (`null` after a removal or a deletion).
    #[schema(required = true)]
    pub data: Option<Member>,
    /// The library version the change produced.
    pub library_version: i64,
}

fn versioned(mut res: actix_web::HttpResponseBuilder, body: MemberReply) -> HttpResponse {
    res.insert_header((LIBRARY_VERSION, body.library_version.to_string()))
        .json(body)
}

#[utoipa::path(get, path = "/api/v1/libraries", operation_id = "libraries_list", tag = "libraries",
    responses(
        (status = 200, description = "every library the caller is a member of", body = LibraryList),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, Problem> {
    let libraries = state.store.libraries(&user.user_id).await?;
    Ok(HttpResponse::Ok().json(LibraryList { libraries }))
}

#[utoipa::path(post, path = "/api/v1/libraries", operation_id = "libraries_create", tag = "libraries",
    request_body = LibraryName,
    responses(
        (status = 201, description = "a new library owned by the caller", body = LibraryReply),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a bad name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody<LibraryName>,
) -> Result<HttpResponse, Problem> {
    // The caller's own library first, so that it is always the first one they own.
    state.library_id(&user).await?;
    let library = state
        .store
        .create_library(&user.user_id, &body.0.name)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/libraries/{}", library.id),
        ))
        .json(LibraryReply { data: library }))
}

#[utoipa::path(patch, path = "/api/v1/libraries/{library}", operation_id = "libraries_rename",
    tag = "libraries", request_body = LibraryName,
    params(("library" = Uuid, Path, description = "the library's id")),
    responses(
        (status = 200, description = "renamed (the version does not change)", body = LibraryReply),
        (status = 400, description = "malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a bad name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn rename(
    state: web::Data<AppState>,
    user: AuthUser,
    library: LibraryPath,
    body: JsonBody<LibraryName>,
) -> Result<HttpResponse, Problem> {
    let library = state
        .store
        .rename_library(library.0, &user.user_id, &body.0.name)
        .await?;
    Ok(HttpResponse::Ok().json(LibraryReply { data: library }))
}

#[utoipa::path(delete, path = "/api/v1/libraries/{library}", operation_id = "libraries_delete",
    tag = "libraries",
    params(("library" = Uuid, Path, description = "the library's id")),
    responses(
        (status = 200, description = "deleted with everything in it; every session on it ends (4403)", body = MemberReply),
        (status = 400, description = "a bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the caller's default library cannot be deleted", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    user: AuthUser,
    library: LibraryPath,
) -> Result<HttpResponse, Problem> {
    let version = state
        .sync
        .delete_library(library.0, &user.user_id)
        .await
        .map_err(Problem::for_mutation)?;
    tracing::info!(user_id = %user.user_id, library_id = %library.0, "library deleted");
    Ok(versioned(
        HttpResponse::Ok(),
        MemberReply {
            data: None,
            library_version: version,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/libraries/{library}/snapshot", operation_id = "libraries_snapshot",
    tag = "libraries",
    params(
        ("library" = Uuid, Path, description = "the library's id"),
        ("If-None-Match" = Option<String>, Header, description = "the version held, e.g. \"7\""),
        ("since_version" = Option<i64>, Query, description = "the version held: answer a patch from there if the server keeps that history (DESIGN §10)"),
    ),
    responses(
        (status = 200, description = "the whole library, or a patch from `since_version`; `ETag` is its version, `Library-Digest` the digest of the whole library at it", body = super::snapshot::LibraryOrPatch),
        (status = 304, description = "the version in If-None-Match is current"),
        (status = 400, description = "a bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn snapshot(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    library: LibraryPath,
) -> Result<HttpResponse, Problem> {
    let (_, version) = state.store.access(library.0, &user.user_id).await?;
    let load = state.store.load_library_as(library.0, &user.user_id);
    super::snapshot::answer(&req, &state, library.0, version, load).await
}

#[utoipa::path(get, path = "/api/v1/libraries/{library}/members", operation_id = "members_list",
    tag = "libraries",
    params(("library" = Uuid, Path, description = "the library's id")),
    responses(
        (status = 200, description = "the members, by user id", body = MemberList),
        (status = 400, description = "a bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn members(
    state: web::Data<AppState>,
    user: AuthUser,
    library: LibraryPath,
) -> Result<HttpResponse, Problem> {
    let members = state.store.members_as(library.0, &user.user_id).await?;
    Ok(HttpResponse::Ok().json(MemberList { members }))
}

#[utoipa::path(put, path = "/api/v1/libraries/{library}/members/{user_id}", operation_id = "members_put",
    tag = "libraries", request_body = MemberRoleBody,
    params(
        ("library" = Uuid, Path, description = "the library's id"),
        ("user_id" = String, Path, description = "the member's user id (the token's subject)"),
    ),
    responses(
        (status = 200, description = "the member's role changed", body = MemberReply),
        (status = 201, description = "the member was added", body = MemberReply),
        (status = 400, description = "malformed JSON, a bad id or user id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the owner's role cannot change", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a bad role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn put_member(
    state: web::Data<AppState>,
    user: AuthUser,
    library: LibraryPath,
    target: MemberPath,
    body: JsonBody<MemberRoleBody>,
) -> Result<HttpResponse, Problem> {
    let (member, added, version) = state
        .sync
        .put_member(library.0, &user.user_id, &target.0, body.0.role)
        .await
        .map_err(Problem::for_mutation)?;
    tracing::info!(user_id = %user.user_id, library_id = %library.0, member = %member.user_id,
        role = member.role.as_str(), added, library_version = version, "member set");
    let res = if added {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(versioned(
        res,
        MemberReply {
            data: Some(member),
            library_version: version,
        },
    ))
}

#[utoipa::path(delete, path = "/api/v1/libraries/{library}/members/{user_id}", operation_id = "members_remove",
    tag = "libraries",
    params(
        ("library" = Uuid, Path, description = "the library's id"),
        ("user_id" = String, Path, description = "the member's user id"),
    ),
    responses(
        (status = 200, description = "removed; their sessions on the library end (4403) and get nothing at or after `library_version`", body = MemberReply),
        (status = 400, description = "a bad id or user id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the caller is neither the owner nor the member leaving", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of), or no such member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the owner cannot be removed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn remove_member(
    state: web::Data<AppState>,
    user: AuthUser,
    library: LibraryPath,
    target: MemberPath,
) -> Result<HttpResponse, Problem> {
    let version = state
        .sync
        .remove_member(library.0, &user.user_id, &target.0)
        .await
        .map_err(Problem::for_mutation)?;
    tracing::info!(user_id = %user.user_id, library_id = %library.0, member = %target.0,
        library_version = version, "member removed");
    Ok(versioned(
        HttpResponse::Ok(),
        MemberReply {
            data: None,
            library_version: version,
        },
    ))
}
