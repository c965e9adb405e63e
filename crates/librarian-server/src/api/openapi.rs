//! `GET /api/v1/openapi.json`: the API described, generated from the handlers' `#[utoipa::path]`
//! annotations and the types' `ToSchema` derives.

use super::entities::{
    MutationReply, context_blocks, library_context_blocks, library_projects, library_saved_prompts,
    projects, saved_prompts,
};
use super::libraries::{
    self, LibraryList, LibraryName, LibraryReply, MemberList, MemberReply, MemberRoleBody,
};
use crate::problem::Problem;
use actix_web::HttpResponse;
use librarian_core::mutation::Op;
use librarian_core::patch::{Changes, Patch};
use librarian_core::protocol::{
    Access, Ack, AuthFrame, AuthOk, ClientFrame, ErrorFrame, Hello, MutateFrame, Presence,
    PresenceSession, Reject, SeenFrame, ServerFrame, SnapshotFrame, Status, SyncState,
};
use librarian_core::{LibraryInfo, Member, MemberRole, Role};
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "Librarian", description = "Real-time sync server for a prompt-builder's library. \
        Live updates: the WebSocket at /api/v1/ws (docs/PROTOCOL.md)."),
    paths(
        crate::health::healthz, crate::health::readyz, super::meta::metrics,
        crate::web::index, crate::web::css, crate::web::app_js, crate::web::client_js,
        crate::web::dev_token, openapi_json, super::library::get, crate::ws::connect,
        projects::create, projects::read, projects::update, projects::delete,
        context_blocks::create, context_blocks::read, context_blocks::update, context_blocks::delete,
        saved_prompts::create, saved_prompts::read, saved_prompts::update, saved_prompts::delete,
        libraries::list, libraries::create, libraries::rename, libraries::delete,
        libraries::snapshot, libraries::members, libraries::put_member, libraries::remove_member,
        library_projects::create, library_projects::read, library_projects::update,
        library_projects::delete,
        library_context_blocks::create, library_context_blocks::read,
        library_context_blocks::update, library_context_blocks::delete,
        library_saved_prompts::create, library_saved_prompts::read,
        library_saved_prompts::update, library_saved_prompts::delete,
    ),
    components(schemas(
        Problem, MutationReply, LibraryInfo, LibraryList, LibraryName, LibraryReply, Member,
        MemberRole, Role, MemberList, MemberReply, MemberRoleBody,
        // The WebSocket protocol (docs/PROTOCOL.md): every frame, so that clients generate
        // their types from this document too.
        ServerFrame, Hello, SnapshotFrame, Status, SyncState, Ack, Reject, ErrorFrame, AuthOk,
        Access, Presence, PresenceSession, Patch, Changes<librarian_core::Project>,
        Changes<librarian_core::ContextBlock>, Changes<librarian_core::SavedPrompt>,
        ClientFrame, MutateFrame, AuthFrame, SeenFrame, Op,
    )),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mounted_route_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in super::super::ROUTES.iter().chain(super::super::DEV_ROUTES) {
            let item = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not described"));
            assert!(
                item.get(*method).is_some(),
                "{} {path} is not described",
                method.to_uppercase()
            );
        }
        // And nothing is described that is not mounted.
        let mounted = super::super::ROUTES.len() + super::super::DEV_ROUTES.len();
        let described: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(described, mounted);
    }

    #[test]
    fn problem_responses_reference_the_problem_schema() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let problem = &doc["paths"]["/api/v1/projects"]["post"]["responses"]["422"]["content"]["application/problem+json"]
            ["schema"];
        assert_eq!(problem["$ref"], "#/components/schemas/Problem");
        assert!(doc["components"]["schemas"]["NewProject"].is_object());
    }

    #[test]
    fn operation_ids_are_unique() {
        // Generators (openapi-typescript, redocly) refuse a document with duplicates.
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate operationId in {ids:?}");
    }

    #[test]
    fn every_websocket_frame_is_described() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let frames = |name: &str| -> Vec<String> {
            doc["components"]["schemas"][name]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} is not a oneOf"))
                .iter()
                .map(|v| {
                    // A frame with fields is `allOf` its schema and the tag; one without
                    // (`resync`) is the tag alone.
                    let tag = if v["allOf"].is_array() {
                        &v["allOf"][1]
                    } else {
                        v
                    };
                    tag["properties"]["type"]["enum"][0]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(
            frames("ServerFrame"),
            [
                "hello", "snapshot", "status", "ack", "reject", "error", "auth_ok", "access",
                "presence", "patch"
            ]
        );
        assert_eq!(frames("ClientFrame"), ["mutate", "auth", "seen", "resync"]);
        let reject = &doc["components"]["schemas"]["Reject"]["properties"]["error"];
        assert_eq!(reject["$ref"], "#/components/schemas/Problem");
    }
}
