//! The error kinds every layer shares.
//!
//! Policy: a client's mistake is never an `Internal` error. Input that breaks a rule is
//! `Invalid` with every offending field named (HTTP 422); a row that is missing *or belongs to
//! another user* is `NotFound` (404: nothing reveals that another user's row exists); a
//! reference to such a row inside a body is an `Invalid` field. `VersionMismatch` (412) carries
//! the current row so the client can merge. `Unavailable` (503) means the database could not be
//! reached and nothing was written; the client may retry. `Internal` (500) is a bug or a broken
//! invariant, logged in full by the server and reported to the client without detail.
//!
//! Shared libraries (DESIGN §9): a library the caller is not a member of is `NoSuchLibrary`
//! (404), exactly as a missing one; a member whose role does not allow the request gets
//! `Forbidden` (403); a request that would break a membership rule (removing or demoting the
//! owner, deleting one's default library) is `Conflict` (409).

use crate::entity::{Entity, EntityKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One broken rule, naming the field (`title`, `tags[3]`, `context_block_ids[0]`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("{kind} {id} not found")]
    NotFound { kind: EntityKind, id: Uuid },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: EntityKind, id: Uuid },
    #[error("version mismatch: expected {expected}, the row is at {}", .current.version())]
    VersionMismatch { expected: i64, current: Box<Entity> },
    #[error("idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("library {0} not found")]
    NoSuchLibrary(Uuid),
    #[error("{0} is not a member of this library")]
    NoSuchMember(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A short stable name of the kind of error (the `code` of problem documents).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "validation",
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::VersionMismatch { .. } => "version_mismatch",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::NoSuchLibrary(_) => "library_not_found",
            Error::NoSuchMember(_) => "member_not_found",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::Unavailable(_) => "database_unavailable",
            Error::Internal(_) => "internal",
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}
