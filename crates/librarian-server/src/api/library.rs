//! `GET /api/v1/library`: the caller's whole library (or a patch from `?since_version=`),
//! with `ETag` = its version.

use super::snapshot::{LibraryOrPatch, answer};
use crate::auth::AuthUser;
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};

#[utoipa::path(get, path = "/api/v1/library", operation_id = "library_get", tag = "library",
    params(
        ("If-None-Match" = Option<String>, Header, description = "the version held, e.g. \"7\""),
        ("since_version" = Option<i64>, Query, description = "the version held: answer a patch from there if the server keeps that history (DESIGN §10)"),
    ),
    responses(
        (status = 200, description = "the whole library, or a patch from `since_version`; `ETag` is its version, `Library-Digest` the digest of the whole library at it", body = LibraryOrPatch),
        (status = 304, description = "the version in If-None-Match is current"),
        (status = 400, description = "a bad since_version", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, Problem> {
    let library = state.store.library_for_user(&user.user_id).await?;
    let load = state.store.load_library(library.id);
    answer(&req, &state, library.id, library.version, load).await
}
