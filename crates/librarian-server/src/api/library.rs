//! `GET /api/v1/library`: the caller's whole library, with `ETag` = its version.

use super::headers::{etag, if_none_match};
use crate::auth::AuthUser;
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use librarian_core::LibrarySnapshot;

#[utoipa::path(get, path = "/api/v1/library", operation_id = "library_get", tag = "library",
    params(("If-None-Match" = Option<String>, Header, description = "the version held, e.g. \"7\"")),
    responses(
        (status = 200, description = "the whole library; `ETag` is its version", body = LibrarySnapshot),
        (status = 304, description = "the version in If-None-Match is current"),
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
    // Answer a poll for the current version without loading anything.
    if if_none_match(&req, library.version) {
        return Ok(HttpResponse::NotModified()
            .insert_header(etag(library.version))
            .finish());
    }
    let snapshot = state.store.load_library(library.id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(snapshot.version))
        .json(snapshot))
}
