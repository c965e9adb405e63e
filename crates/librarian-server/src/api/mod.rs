//! Every HTTP route of the server, in one table: [`mount`] registers them and [`ROUTES`] lists
//! them (the OpenAPI test checks that each one is described). The REST API lives under
//! `/api/v1` (DESIGN §4).

pub mod entities;
mod headers;
pub mod libraries;
pub mod library;
mod meta;
pub mod openapi;
pub mod snapshot;

pub(crate) use meta::track;

use crate::{health, web, ws};
use actix_web::web as aweb;

macro_rules! routes {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// Registers every route of the table.
        pub fn mount(cfg: &mut aweb::ServiceConfig) {
            $( cfg.route($path, aweb::$method().to($handler)); )*
        }

        /// (method, path) of every route [`mount`] registers.
        pub const ROUTES: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];
    };
}

routes! {
    get "/healthz" => health::healthz,
    get "/readyz" => health::readyz,
    get "/metrics" => meta::metrics,
    get "/" => web::index,
    get "/app.css" => web::css,
    get "/app.js" => web::app_js,
    get "/librarian.js" => web::client_js,
    get "/api/v1/openapi.json" => openapi::openapi_json,
    get "/api/v1/library" => library::get,
    get "/api/v1/ws" => ws::connect,
    post "/api/v1/projects" => entities::projects::create,
    get "/api/v1/projects/{id}" => entities::projects::read,
    patch "/api/v1/projects/{id}" => entities::projects::update,
    delete "/api/v1/projects/{id}" => entities::projects::delete,
    post "/api/v1/context-blocks" => entities::context_blocks::create,
    get "/api/v1/context-blocks/{id}" => entities::context_blocks::read,
    patch "/api/v1/context-blocks/{id}" => entities::context_blocks::update,
    delete "/api/v1/context-blocks/{id}" => entities::context_blocks::delete,
    post "/api/v1/saved-prompts" => entities::saved_prompts::create,
    get "/api/v1/saved-prompts/{id}" => entities::saved_prompts::read,
    patch "/api/v1/saved-prompts/{id}" => entities::saved_prompts::update,
    delete "/api/v1/saved-prompts/{id}" => entities::saved_prompts::delete,
    get "/api/v1/libraries" => libraries::list,
    post "/api/v1/libraries" => libraries::create,
    patch "/api/v1/libraries/{library}" => libraries::rename,
    delete "/api/v1/libraries/{library}" => libraries::delete,
    get "/api/v1/libraries/{library}/snapshot" => libraries::snapshot,
    get "/api/v1/libraries/{library}/members" => libraries::members,
    put "/api/v1/libraries/{library}/members/{user_id}" => libraries::put_member,
    delete "/api/v1/libraries/{library}/members/{user_id}" => libraries::remove_member,
    post "/api/v1/libraries/{library}/projects" => entities::library_projects::create,
    get "/api/v1/libraries/{library}/projects/{id}" => entities::library_projects::read,
    patch "/api/v1/libraries/{library}/projects/{id}" => entities::library_projects::update,
    delete "/api/v1/libraries/{library}/projects/{id}" => entities::library_projects::delete,
    post "/api/v1/libraries/{library}/context-blocks" => entities::library_context_blocks::create,
    get "/api/v1/libraries/{library}/context-blocks/{id}" => entities::library_context_blocks::read,
    patch "/api/v1/libraries/{library}/context-blocks/{id}" => entities::library_context_blocks::update,
    delete "/api/v1/libraries/{library}/context-blocks/{id}" => entities::library_context_blocks::delete,
    post "/api/v1/libraries/{library}/saved-prompts" => entities::library_saved_prompts::create,
    get "/api/v1/libraries/{library}/saved-prompts/{id}" => entities::library_saved_prompts::read,
    patch "/api/v1/libraries/{library}/saved-prompts/{id}" => entities::library_saved_prompts::update,
    delete "/api/v1/libraries/{library}/saved-prompts/{id}" => entities::library_saved_prompts::delete,
}

/// Routes that exist in dev auth mode only.
pub const DEV_ROUTES: &[(&str, &str)] = &[("post", "/api/v1/dev/token")];

pub fn mount_dev(cfg: &mut aweb::ServiceConfig) {
    cfg.route("/api/v1/dev/token", aweb::post().to(web::dev_token));
}

/// The default service: a path of the table with another method is 405 (with `Allow`), any
/// other path 404; both as problem documents.
pub async fn fallback(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    use actix_web::http::StatusCode;
    let path = req.path();
    let allowed: Vec<String> = ROUTES
        .iter()
        .chain(DEV_ROUTES)
        .filter(|(_, pattern)| actix_web::dev::ResourceDef::new(*pattern).is_match(path))
        .map(|(method, _)| method.to_uppercase())
        .collect();
    if allowed.is_empty() {
        return crate::problem::Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route")
            .error_response();
    }
    let mut res = crate::problem::Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed here (allowed: {})",
            req.method(),
            allowed.join(", ")
        ),
    )
    .error_response();
    if let Ok(allow) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        res.headers_mut()
            .insert(actix_web::http::header::ALLOW, allow);
    }
    res
}
