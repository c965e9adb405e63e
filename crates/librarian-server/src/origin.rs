//! Which web origins may call the API (CORS, through actix-cors) and open a WebSocket: the
//! server's own page always, plus `server.allowed_origins`. Clients that send no `Origin`
//! (command-line tools, SDKs) are not browsers and are not affected.

use actix_cors::Cors;
use actix_web::dev::RequestHead;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use std::sync::Arc;

/// True when `origin` is the server's own (same host as the request) or listed.
pub fn allowed(origin: &str, host: Option<&str>, list: &[String]) -> bool {
    let own = host.is_some_and(|h| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == h)
    });
    own || list
        .iter()
        .any(|o| o.trim_end_matches('/') == origin.trim_end_matches('/'))
}

fn host(head: &RequestHead) -> Option<&str> {
    head.headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// The CORS middleware for `list`.
pub fn cors(list: Arc<Vec<String>>) -> Cors {
    Cors::default()
        .allowed_origin_fn(move |origin: &HeaderValue, head: &RequestHead| {
            origin.to_str().is_ok_and(|o| allowed(o, host(head), &list))
        })
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("prefer"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            HeaderName::from_static("library-version"),
        ])
        .max_age(600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_listed_origins_only() {
        let list = vec!["https://app.example".to_owned()];
        assert!(allowed(
            "http://127.0.0.1:8080",
            Some("127.0.0.1:8080"),
            &[]
        ));
        assert!(allowed(
            "https://app.example",
            Some("127.0.0.1:8080"),
            &list
        ));
        assert!(!allowed(
            "https://evil.example",
            Some("127.0.0.1:8080"),
            &list
        ));
        assert!(!allowed(
            "http://127.0.0.1:9999",
            Some("127.0.0.1:8080"),
            &[]
        ));
    }
}
