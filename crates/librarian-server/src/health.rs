//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and every
//! migration is applied), for load balancers and orchestrators.

use actix_web::{HttpResponse, get, http::header, web};
use librarian_store::Store;
use serde_json::json;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[get("/readyz")]
pub async fn readyz(store: web::Data<Store>) -> HttpResponse {
    match store.ready().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::CONTENT_TYPE, "application/problem+json"))
                .insert_header((header::RETRY_AFTER, "1"))
                .json(json!({
                    "type": "about:blank",
                    "title": "Service Unavailable",
                    "status": 503,
                    "detail": e.to_string(),
                }))
        }
    }
}
