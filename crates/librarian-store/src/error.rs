//! How database failures become the shared error kinds of `librarian-core`.
//!
//! Policy: anything that means "the database could not be reached or is busy, and nothing was
//! committed" (a closed or unreachable connection, a pool timeout, SQLite's lock timeout, a
//! serialization failure) is `Error::Unavailable`, so that the server answers 503 and clients
//! retry. Every other database error is a bug on our side (`Error::Internal`): input a client
//! can send is rejected by validation before it reaches SQL.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use librarian_core::{Committed, Error};

/// The error of one transaction body: a domain refusal, a database failure, or the stored answer
/// to an idempotency key (an "error" only so that the transaction rolls back its version bump).
#[derive(Debug)]
pub(crate) enum TxError {
    Domain(Error),
    Db(DieselError),
    Replay(Box<Committed>),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Domain(e)
    }
}

impl TxError {
    pub(crate) fn into_result(self) -> Result<Committed, Error> {
        match self {
            TxError::Replay(c) => Ok(*c),
            TxError::Domain(e) => Err(e),
            TxError::Db(e) => Err(db_error(e)),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        match self {
            TxError::Replay(_) => Error::Internal("unexpected idempotent replay".into()),
            TxError::Domain(e) => e,
            TxError::Db(e) => db_error(e),
        }
    }
}

pub(crate) fn db_error(e: DieselError) -> Error {
    match &e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure => Error::Unavailable(info.message().into()),
            _ if is_transient_message(info.message()) => Error::Unavailable(info.message().into()),
            _ => Error::Internal(e.to_string()),
        },
        DieselError::BrokenTransactionManager => {
            Error::Unavailable("the database connection broke mid-transaction".into())
        }
        _ => Error::Internal(e.to_string()),
    }
}

/// SQLite reports "database is locked" (busy timeout) and PostgreSQL connection-level failures
/// as untyped errors; they are transient.
fn is_transient_message(msg: &str) -> bool {
    let msg = msg.to_ascii_lowercase();
    [
        "database is locked",
        "database is busy",
        "connection closed",
        "connection reset",
        "terminating connection",
        "broken pipe",
        "the database system is",
        "connection refused",
        "timed out",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

pub(crate) fn pool_error(e: diesel_async::pooled_connection::deadpool::PoolError) -> Error {
    Error::Unavailable(format!("no database connection: {e}"))
}
