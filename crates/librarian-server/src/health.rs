//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers, every
//! migration is applied and, with `auth.jwks_url`, a key set was loaded), for load balancers
//! and orchestrators.

use crate::auth::Authenticator;
use crate::problem::Problem;
use actix_web::{HttpResponse, web};
use librarian_store::Store;
use serde_json::json;

#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "the process answers")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "meta", responses(
    (status = 200, description = "the database answers, every migration is applied, the key set (auth.jwks_url) is loaded"),
    (status = 503, description = "not ready", body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(
    store: web::Data<Store>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, Problem> {
    if auth.jwks().is_some_and(|jwks| !jwks.loaded()) {
        return Err(Problem {
            retry_after_s: Some(1),
            ..Problem::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "no key set loaded yet from auth.jwks_url",
            )
        });
    }
    // Not ready is always 503 (never 500): the database or its migrations are not there yet.
    // `ready` is bounded by the query timeout, so a stalled database cannot hang the check.
    store
        .ready()
        .await
        .map_err(|e| Problem::from(librarian_core::Error::Unavailable(e.to_string())))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
