//! The web page at `/`: HTML, CSS and the ES-module client, embedded in the binary so that
//! nothing needs building to run or test it. `web/librarian.js` is the committed esbuild bundle
//! of `@librarian/client` (clients/js: `npm run bundle`; CI fails when it differs). In dev auth mode, `POST /api/v1/dev/token` mints a
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

#[utoipa::path(get, path = "/", tag = "web page",
    responses((status = 200, description = "the web page", content_type = "text/html")))]
pub async fn index() -> HttpResponse {
    asset(INDEX, "text/html; charset=utf-8")
}

#[utoipa::path(get, path = "/app.css", tag = "web page",
    responses((status = 200, description = "the page's styles", content_type = "text/css")))]
pub async fn css() -> HttpResponse {
    asset(CSS, "text/css; charset=utf-8")
}

#[utoipa::path(get, path = "/app.js", tag = "web page",
    responses((status = 200, description = "the page's script", content_type = "text/javascript")))]
pub async fn app_js() -> HttpResponse {
    asset(APP, "text/javascript; charset=utf-8")
}

#[utoipa::path(get, path = "/librarian.js", tag = "web page",
    responses((status = 200, description = "the ES-module client (`@librarian/client`, bundled)", content_type = "text/javascript")))]
pub async fn client_js() -> HttpResponse {
    asset(CLIENT, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// Dev sign-in: a user name.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    user: String,
}

/// Dev auth mode only (absent in jwt mode): a token for a user name.
#[utoipa::path(post, path = "/api/v1/dev/token", tag = "auth", request_body = DevSignIn,
    responses(
        (status = 200, description = "`{\"token\": …, \"user\": …}`", content_type = "application/json"),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "not a valid user id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn dev_token(
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
