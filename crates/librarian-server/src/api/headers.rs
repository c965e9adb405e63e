//! The request headers the API understands: `If-Match`, `If-None-Match`, `Idempotency-Key`
//! and `Prefer: return=library`.

use crate::problem::Problem;
use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};

pub const LIBRARY_VERSION: HeaderName = HeaderName::from_static("library-version");
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A version as an entity tag: `"3"`.
pub fn etag(version: i64) -> (HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

/// `If-Match: "3"` (or `3`, or `W/"3"`) → `Some(3)`; `*` or no header → `None`.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, Problem> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    parse_version_tag(text).map(Some).ok_or_else(|| {
        Problem::bad_request(
            "bad_if_match",
            format!("If-Match must be a row version such as \"3\", not {text:?}"),
        )
    })
}

/// True when `If-None-Match` lists `version` (or `*`).
pub fn if_none_match(req: &HttpRequest, version: i64) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || parse_version_tag(tag) == Some(version))
}

fn parse_version_tag(tag: &str) -> Option<i64> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let bare = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    bare.parse().ok()
}

pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, Problem> {
    req.headers()
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                Problem::bad_request("bad_idempotency_key", "Idempotency-Key must be ASCII text")
            })
        })
        .transpose()
}

/// `Prefer: return=library`: the client wants the snapshot in the reply.
pub fn prefers_library(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(HeaderName::from_static("prefer"))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=library"))
}
