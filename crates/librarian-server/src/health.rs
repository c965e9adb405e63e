//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and every
//! migration is applied), for load balancers and orchestrators.

use crate::problem::Problem;
use actix_web::{HttpResponse, get, web};
use librarian_store::Store;
use serde_json::json;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[get("/readyz")]
pub async fn readyz(store: web::Data<Store>) -> Result<HttpResponse, Problem> {
    // Not ready is always 503 (never 500): the database or its migrations are not there yet.
    store
        .ready()
        .await
        .map_err(|e| Problem::from(librarian_core::Error::Unavailable(e.to_string())))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
