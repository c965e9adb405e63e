//! The HTTP side of the metrics: `GET /metrics`, and the middleware that counts, times and
//! logs every request. Here rather than in metrics.rs because both reach the instruments
//! through the [`AppState`] that holds them.

use crate::auth::AuthUser;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use prometheus::{Encoder, TextEncoder};
use std::time::Instant;

#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let held = i64::try_from(state.sync.history.used()).unwrap_or(i64::MAX);
    state.metrics.patch_history_bytes.set(held);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, TextEncoder::new().format_type()))
        .body(state.metrics.render())
}

/// Middleware: counts and times every request by its route pattern, and logs one line per
/// request. The route pattern, not the path, is logged: a query string may carry a token.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = state {
        let m = &state.metrics;
        m.http_requests
            .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
            .inc();
        m.http_seconds
            .with_label_values(&[route.as_str(), method.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    let user_id = res
        .request()
        .extensions()
        .get::<AuthUser>()
        .map(|u| u.user_id.clone());
    tracing::info!(
        target: "librarian_server::http",
        method, route, status, user_id,
        duration_ms = elapsed.as_secs_f64() * 1e3,
        "request"
    );
    Ok(res)
}
