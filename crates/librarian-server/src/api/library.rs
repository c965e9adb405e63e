//! `GET /api/v1/library`: the caller's whole library, with `ETag` = its version.

use super::headers::{etag, if_none_match};
use crate::auth::AuthUser;
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};

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
