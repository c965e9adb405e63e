//! The answer of `GET /library` and `GET /libraries/{id}/snapshot`: 304 for a held version,
//! a patch from `?since_version=N` when the history spans it (DESIGN §10), else the whole
//! library; each with `ETag` (the version) and `Library-Digest`.

use super::headers::{etag, if_none_match};
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::http::header::{CONTENT_TYPE, HeaderName};
use actix_web::{HttpRequest, HttpResponse};
use librarian_core::patch::digest_of;
use librarian_core::{Error, LibrarySnapshot};
use uuid::Uuid;

/// The `200` of the snapshot routes, for the API description: the whole library, or with
/// `since_version` a patch from there.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LibraryOrPatch {
    Library(LibrarySnapshot),
    Patch(PatchObject),
}

/// A patch as HTTP answers it: the `patch` frame, `type` included.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PatchObject {
    #[serde(rename = "type")]
    pub kind: PatchTag,
    #[serde(flatten)]
    pub patch: librarian_core::patch::Patch,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchTag {
    Patch,
}

pub const LIBRARY_DIGEST: HeaderName = HeaderName::from_static("library-digest");

/// `?since_version=N`, if given.
pub fn since_version(req: &HttpRequest) -> Result<Option<i64>, Problem> {
    let query = actix_web::web::Query::<std::collections::HashMap<String, String>>::from_query(
        req.query_string(),
    )
    .map_err(|e| Problem::bad_request("bad_query", e.to_string()))?;
    query
        .get("since_version")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Problem::bad_request("bad_since_version", "since_version must be an integer")
            })
        })
        .transpose()
}

/// Answers for `library_id`, currently at `version` (read with the caller's access); `load`
/// reads the whole library when no shorter answer will do.
pub async fn answer<F>(
    req: &HttpRequest,
    state: &AppState,
    library_id: Uuid,
    version: i64,
    load: F,
) -> Result<HttpResponse, Problem>
where
    F: std::future::Future<Output = Result<LibrarySnapshot, Error>>,
{
    let since = since_version(req)?;
    // Answer a poll for the current version without loading anything.
    if if_none_match(req, version) {
        return Ok(HttpResponse::NotModified()
            .insert_header(etag(version))
            .finish());
    }
    let history = &state.sync.history;
    if let Some(from) = since.filter(|n| *n <= version)
        && let Some(patch) = history.patch(library_id, from, version)
        && let Some(digest) = history.digest(library_id, version)
    {
        return Ok(HttpResponse::Ok()
            .insert_header(etag(version))
            .insert_header((LIBRARY_DIGEST, digest))
            .insert_header((CONTENT_TYPE, "application/json"))
            .body(patch.into_bytes()));
    }
    let snapshot = load.await?;
    let body = snapshot.canonical_json();
    Ok(HttpResponse::Ok()
        .insert_header(etag(snapshot.version))
        .insert_header((LIBRARY_DIGEST, digest_of(&body)))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body))
}
