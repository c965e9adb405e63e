//! `JsonBody<T>`: the request-body extractor of the API. Compared with actix's `web::Json` it
//! refuses a wrong content type with 415, a body over `limits.body_max_bytes` with 413 (before
//! reading it, when `Content-Length` says so), malformed JSON with 400, and JSON of the wrong
//! shape (a wrong type, an unknown or missing field) with 422 naming the field.

use crate::problem::Problem;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use librarian_core::{FieldError, Limits};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<Limits>>()
            .map_or(Limits::default().body_max_bytes, |l| l.body_max_bytes);
        let checked = check_headers(req, limit);
        let mut payload = payload.take();
        Box::pin(async move {
            checked?;
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    Problem::bad_request("bad_body", format!("could not read the body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(JsonBody)
        })
    }
}

fn check_headers(req: &HttpRequest, limit: usize) -> Result<(), Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let is_json = essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json");
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body must be application/json, not {:?}",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    content_type
                }
            ),
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    Ok(())
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is over the limit of {limit} bytes"),
    )
}

/// Runs untrusted bytes through body parsing and the field rules of every kind (fuzzing and
/// the corpus replay test). It must never panic.
pub fn check_untrusted(data: &[u8]) {
    use librarian_core::validate::validate;
    use librarian_core::{Limits, Mutation};
    let limits = Limits::default();
    if let Ok(p) = parse::<librarian_core::NewSavedPrompt>(data) {
        let _ = validate(&Mutation::CreateSavedPrompt(p), &limits);
    }
    if let Ok(p) = parse::<librarian_core::SavedPromptPatch>(data) {
        let _ = validate(
            &Mutation::UpdateSavedPrompt {
                id: uuid::Uuid::nil(),
                patch: p,
            },
            &limits,
        );
    }
    if let Ok(p) = parse::<librarian_core::NewProject>(data) {
        let _ = validate(&Mutation::CreateProject(p), &limits);
    }
    if let Ok(b) = parse::<librarian_core::ContextBlockPatch>(data) {
        let _ = validate(
            &Mutation::UpdateContextBlock {
                id: uuid::Uuid::nil(),
                patch: b,
            },
            &limits,
        );
    }
}

/// Parses JSON, telling malformed JSON (400) from JSON of the wrong shape (422, field named).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(shape_error)?;
    de.end()
        .map_err(|e| Problem::bad_request("malformed_json", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Reads already-parsed JSON into `T`; a wrong shape is 422 naming the field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(shape_error)
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return Problem::bad_request("malformed_json", format!("malformed JSON: {inner}"));
    }
    let message = strip_position(&inner.to_string());
    let parent = if path == "." { None } else { Some(path) };
    // A missing field is reported at its parent: name the field itself.
    let field = match (backticked(&message), parent) {
        (Some(name), None) if message.starts_with("missing field") => name.to_owned(),
        (Some(name), Some(p)) if message.starts_with("missing field") => format!("{p}.{name}"),
        (_, Some(p)) => p,
        (_, None) => "(body)".to_owned(),
    };
    Problem::invalid(vec![FieldError::new(field, message)])
}

/// serde_json appends " at line 1 column 17"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = message[start..].find('`')? + start;
    Some(&message[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use librarian_core::{NewContextBlock, ProjectPatch};

    fn field_of(p: Problem) -> (u16, String) {
        (
            p.status,
            p.errors
                .first()
                .map(|e| e.field.clone())
                .unwrap_or_default(),
        )
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse::<NewContextBlock>(br#"{"title": 5}"#).err().unwrap();
        assert_eq!(field_of(e), (422, "title".into()));
        let e = parse::<NewContextBlock>(br#"{"title": "t", "titel": "x"}"#)
            .err()
            .unwrap();
        assert_eq!(field_of(e), (422, "titel".into()));
        let e = parse::<NewContextBlock>(br#"{"content": "x"}"#)
            .err()
            .unwrap();
        assert_eq!(field_of(e), (422, "title".into()));
        let e = parse::<NewContextBlock>(br#"{"title": "t", "tags": ["a", 3]}"#)
            .err()
            .unwrap();
        assert_eq!(field_of(e), (422, "tags[1]".into()));
        let e = parse::<ProjectPatch>(br#"{"parent_id": "not-a-uuid"}"#)
            .err()
            .unwrap();
        assert_eq!(field_of(e), (422, "parent_id".into()));
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        for body in [&br#"{"title": "#[..], b"", br#"{"title": "t"} {}"#, b"nul"] {
            let e = parse::<NewContextBlock>(body).err().unwrap();
            assert_eq!((e.status, e.code), (400, "malformed_json"), "{body:?}");
        }
    }
}
