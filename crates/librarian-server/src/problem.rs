//! Errors over HTTP: `application/problem+json` (RFC 9457).
//!
//! Policy: every error response of the server is a problem document, including the ones actix
//! would write as plain text (bad JSON, bad paths, unknown routes: see [`rewrite_plain_errors`]).
//! Client mistakes map to 4xx with a `detail` naming what was wrong and, for field rules, an
//! `errors` list of `{field, message}`. A 412 carries the `current` row. A 503 carries
//! `Retry-After`. A 500 never carries internal detail (it is logged instead). `type` is a
//! stable URN per kind of problem, and `code` repeats its last segment for convenience.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use librarian_core::{Entity, Error, FieldError};
use serde::Serialize;
use std::fmt;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URN per kind of problem, e.g. `urn:librarian:problem:validation`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The last segment of `type`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// For validation problems: every broken rule, by field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For 412: the row as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Entity>)]
    pub current: Option<Box<Entity>>,
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_s: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            type_: format!("urn:librarian:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
            current: None,
            retry_after_s: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            errors,
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
        }
    }

    /// 503: the database could not be used. A read can simply be retried.
    pub fn unavailable() -> Problem {
        Problem {
            retry_after_s: Some(1),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; retry shortly",
            )
        }
    }

    /// The problem for a mutation that failed with `e`. A 503 may follow the commit (a
    /// timeout, a connection lost during COMMIT), so it never claims that nothing changed:
    /// the client retries with the same key, which applies the mutation at most once.
    pub fn for_mutation(e: Error) -> Problem {
        match e {
            Error::Unavailable(_) => Problem {
                detail: "the database is unavailable; the mutation may or may not have been \
                         applied: retry it with the same Idempotency-Key (over WebSocket, the \
                         same mutation_id)"
                    .into(),
                ..Problem::from(e)
            },
            e => Problem::from(e),
        }
    }

    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
        if let Some(s) = self.retry_after_s {
            res.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if self.status == 401 {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.body(self.body())
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        // The codes are core's (`Error::code`), so metrics and problem documents agree.
        let code = e.code();
        match e {
            Error::Invalid(errors) => Problem::invalid(errors),
            Error::NotFound { kind, id } => Problem::new(
                StatusCode::NOT_FOUND,
                code,
                format!("no {} with id {id}", kind.as_str().replace('_', " ")),
            ),
            Error::AlreadyExists { kind, id } => Problem::new(
                StatusCode::CONFLICT,
                code,
                format!(
                    "a {} with id {id} already exists",
                    kind.as_str().replace('_', " ")
                ),
            ),
            Error::VersionMismatch { expected, current } => Problem {
                detail: format!(
                    "the row is at version {}, not {expected}: it changed since you read it",
                    current.version()
                ),
                current: Some(current),
                ..Problem::new(StatusCode::PRECONDITION_FAILED, code, "")
            },
            Error::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "this Idempotency-Key was already used for a different request",
            ),
            Error::NoSuchLibrary(id) => Problem::new(
                StatusCode::NOT_FOUND,
                code,
                format!("no library with id {id}"),
            ),
            Error::NoSuchMember(user) => Problem::new(
                StatusCode::NOT_FOUND,
                code,
                format!("{user} is not a member of this library"),
            ),
            Error::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, code, detail),
            Error::Conflict(detail) => Problem::new(StatusCode::CONFLICT, code, detail),
            Error::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Problem::unavailable()
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "an internal error occurred",
                )
            }
        }
    }
}

/// Error-handler middleware callback: any error response that is not already a problem
/// document (actix's plain-text defaults, an empty 404/405) becomes one, keeping its status.
pub fn rewrite_plain_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("{} is not allowed here", res.request().method()),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is too large".into()),
        s if s.is_server_error() => ("internal", "an internal error occurred".into()),
        _ => ("bad_request", "the request could not be understood".into()),
    };
    let problem = Problem::new(status, code, detail);
    let (req, _) = res.into_parts();
    let response = problem.error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body::<B>(),
    ))
}
