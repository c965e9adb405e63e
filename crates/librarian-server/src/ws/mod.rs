//! `GET /api/v1/ws`: live snapshots, sync status and mutations over a WebSocket (DESIGN §5).
//! Auth happens before the upgrade; a refused request is a plain 401 problem document.

mod frames;
mod session;
mod transport;

// The settings are plain data in config.rs (below auth and state); re-exported for the session.
pub use crate::config::WsConfig;

use crate::auth::{Authenticator, bearer_token};
use crate::problem::Problem;
use crate::state::AppState;
use actix_web::body::{BodyStream, BoxBody, MessageBody};
use actix_web::{HttpRequest, HttpResponse, web};
use librarian_core::Role;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// Runs untrusted bytes through everything that decodes client input on a WebSocket: the
/// frame codec (as raw bytes from the wire) and the text-frame parser. It must never panic.
/// Used by the fuzz targets under `fuzz/` and by the corpus replay test.
pub fn decode_untrusted(data: &[u8]) {
    use actix_codec::Decoder;
    let mut codec = actix_http::ws::Codec::new().max_size(64 * 1024);
    let mut buf = actix_web::web::BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    let _ = frames::parse(data);
}

/// `server.allowed_origins`, for the WebSocket `Origin` check.
#[derive(Clone)]
pub struct AllowedOrigins(pub Arc<Vec<String>>);

/// Tells every session that the server is shutting down (they close with 1001).
#[derive(Clone)]
pub struct Shutdown(pub watch::Receiver<bool>);

/// The WebSocket (frames: docs/PROTOCOL.md).
#[utoipa::path(get, path = "/api/v1/ws", tag = "live",
    params(
        ("access_token" = Option<String>, Query, description = "the bearer token, for browsers"),
        ("since_version" = Option<i64>, Query, description = "the version held: resume without a resend"),
        ("patches" = Option<String>, Query, description = "`1`: send `patch` frames after the first snapshot (DESIGN §10)"),
        ("library" = Option<uuid::Uuid>, Query, description = "the library to open (default: the caller's own)"),
    ),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, description = "not a WebSocket request, or a bad since_version or patches", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or bad token (checked before the upgrade)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "a browser page from an origin not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such library (also one the caller is not a member of)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many sessions for this user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn connect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
    config: web::Data<Arc<WsConfig>>,
    shutdown: web::Data<Shutdown>,
    origins: web::Data<AllowedOrigins>,
) -> Result<HttpResponse, Problem> {
    // Browsers always send Origin on a WebSocket: only our page and listed origins may connect
    // (a page elsewhere must not ride on a user's cookies or query token).
    if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
        let host = req
            .headers()
            .get(actix_web::http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let ok = origin
            .to_str()
            .is_ok_and(|o| crate::origin::allowed(o, host, &origins.0));
        if !ok {
            return Err(Problem::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin may not open a WebSocket (see server.allowed_origins)",
            ));
        }
    }
    let token = bearer_token(&req, true).ok_or_else(|| {
        Problem::unauthorized("missing token (Authorization: Bearer, or ?access_token=)")
    })?;
    let verified = auth.verify(&token).await?;
    let user = verified.user.clone();
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| Problem::bad_request("bad_query", e.to_string()))?;
    let since_version = query
        .get("since_version")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Problem::bad_request("bad_since_version", "since_version must be an integer")
            })
        })
        .transpose()?;
    let patches = match query.get("patches").map(String::as_str) {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => {
            return Err(Problem::bad_request(
                "bad_patches",
                "patches must be 1 or 0 (true or false)",
            ));
        }
    };
    let library = query
        .get("library")
        .map(|v| {
            Uuid::parse_str(v)
                .map_err(|_| Problem::bad_request("bad_library", "library must be a UUID"))
        })
        .transpose()?;
    let response = actix_http::ws::handshake(req.head())
        .map_err(|e| Problem::bad_request("not_a_websocket", e.to_string()))?;
    // The role, and the version at which it was read: a snapshot older than that may predate
    // the user's membership, so it neither revokes nor is sent (session.rs).
    let (library_id, role, access_version) = match library {
        Some(id) => {
            let (role, version) = state.store.access(id, &user.user_id).await?;
            (id, role, version)
        }
        // The user's own library: they own it for good (an owner cannot be removed, a
        // default library cannot be deleted).
        None => (state.library_id(&user).await?, Role::Owner, 0),
    };
    let Some(seat) = state
        .sessions
        .claim(&user.user_id, config.max_sessions_per_user)
    else {
        return Err(Problem {
            retry_after_s: Some(5),
            ..Problem::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_sessions",
                format!(
                    "at most {} sessions per user (ws.max_sessions_per_user)",
                    config.max_sessions_per_user
                ),
            )
        });
    };

    // The seat lives in the response body: actix drops it with the connection, so a zombie
    // connection keeps counting against the user until the kernel has let it go.
    let (outbox, body) = transport::outbox(Box::new(seat));
    let socket = req.conn_data::<crate::connection::ConnSocket>().cloned();
    let session = session::Session {
        id: Uuid::now_v7(),
        user_id: user.user_id,
        library_id,
        role,
        access_version,
        since_version,
        patches,
        token: session::TokenLife::of(&verified),
        auth: auth.into_inner(),
        outbox,
        inbox: transport::Inbox::new(payload, config.max_frame_bytes),
        state: state.clone().into_inner(),
        config: config.get_ref().clone(),
        shutdown: shutdown.0.clone(),
        socket,
    };
    // The payload stream is not Send: the session runs on this worker's runtime.
    let open = state.metrics.sessions_open.clone();
    actix_web::rt::spawn(async move {
        open.inc();
        session.run().await;
        open.dec();
    });
    let mut response = response;
    let response = response
        .message_body(BodyStream::new(body).boxed())
        .map_err(|e| Problem::bad_request("handshake_failed", e.to_string()))?;
    Ok(HttpResponse::from(response.map_body(|_, b: BoxBody| b)))
}
