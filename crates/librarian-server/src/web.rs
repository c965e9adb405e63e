//! The web page at `/`: HTML, CSS and the ES-module client, embedded in the binary so that
//! nothing needs building to run or test it. In dev auth mode, `POST /api/v1/dev/token` mints a
//! token for a user name (the page's sign-in); the route does not exist in jwt mode.

use crate::auth::Authenticator;
use crate::body::JsonBody;
use crate::problem::Problem;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use librarian_core::FieldError;
use serde::Deserialize;
use serde_json::json;

const INDEX: &str = include_str!("../web/index.html");
const CSS: &str = include_str!("../web/app.css");
const APP: &str = include_str!("../web/app.js");
const CLIENT: &str = include_str!("../web/librarian.js");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| asset(INDEX, "text/html; charset=utf-8")),
    )
    .route(
        "/app.css",
        web::get().to(|| asset(CSS, "text/css; charset=utf-8")),
    )
    .route(
        "/app.js",
        web::get().to(|| asset(APP, "text/javascript; charset=utf-8")),
    )
    .route(
        "/librarian.js",
        web::get().to(|| asset(CLIENT, "text/javascript; charset=utf-8")),
    );
}

/// Only mounted in dev auth mode.
pub fn dev_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/dev/token", web::post().to(dev_token));
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevSignIn {
    user: String,
}

async fn dev_token(
    auth: web::Data<Authenticator>,
    body: JsonBody<DevSignIn>,
) -> Result<HttpResponse, Problem> {
    let user = body.0.user.trim().to_owned();
    if !crate::auth::valid_user_id(&user) {
        return Err(Problem::invalid(vec![FieldError::new(
            "user",
            "must be 1 to 255 printable characters",
        )]));
    }
    let token = auth
        .mint(&user)
        .map_err(|e| Problem::from(librarian_core::Error::Internal(e.to_string())))?;
    Ok(HttpResponse::Ok().json(json!({ "token": token, "user": user })))
}
