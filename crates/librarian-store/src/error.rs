//! How database failures become the shared error kinds of `librarian-core`.
//!
//! Policy: anything that means "the database could not be reached or is busy, and nothing was
//! committed" (a closed or unreachable connection, a pool timeout, SQLite's lock timeout, and on
//! PostgreSQL too many clients, a statement or lock timeout, a deadlock, a serialization failure,
//! an administrator's or a crash's shutdown, a server not accepting connections yet) is
//! `Error::Unavailable`, so that the server answers 503 and clients retry. Every other database
//! error is a bug on our side (`Error::Internal`): input a client can send is rejected by
//! validation before it reaches SQL.
//!
//! diesel reports most SQLSTATEs as `DatabaseErrorKind::Unknown`, and diesel-async keeps the
//! code in a private wrapper that `DatabaseErrorInformation` does not expose; so the transient
//! ones are recognised by PostgreSQL's (English) message texts, listed with their SQLSTATE in
//! [`TRANSIENT_MESSAGES`]. A server configured with another `lc_messages` would turn them into
//! 500s again.

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
    match transient(&e) {
        Some(msg) => Error::Unavailable(msg),
        None => Error::Internal(e.to_string()),
    }
}

/// The message of a failure that retrying may cure, or `None` for a bug.
fn transient(e: &DieselError) -> Option<String> {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure => Some(info.message().into()),
            _ if is_transient_message(info.message()) => Some(info.message().into()),
            _ => None,
        },
        DieselError::BrokenTransactionManager => {
            Some("the database connection broke mid-transaction".into())
        }
        // A failed COMMIT whose rollback failed too (the connection went): the commit's error
        // says what happened.
        DieselError::RollbackErrorOnCommit { commit_error, .. } => transient(commit_error),
        _ => None,
    }
}

/// Transient failures that reach us as untyped errors, by (lowercase) message fragment: SQLite's
/// busy timeout, connection-level failures, and the PostgreSQL errors whose SQLSTATE diesel
/// does not expose (see the module docs).
const TRANSIENT_MESSAGES: &[&str] = &[
    // SQLite: SQLITE_BUSY after busy_timeout.
    "database is locked",
    "database is busy",
    // The connection went (tokio-postgres, the OS).
    "connection closed",
    "connection reset",
    "broken pipe",
    "connection refused",
    "timed out",
    // 53300 too_many_connections.
    "too many clients",
    "too many connections",
    "remaining connection slots are reserved",
    // 57014 query_canceled (statement_timeout, a cancel request) and 55P03 lock_not_available
    // (lock_timeout), both "canceling statement due to …"; 55P03 also from NOWAIT.
    "canceling statement due to",
    "could not obtain lock",
    // 40P01 deadlock_detected; 40001 serialization_failure (also typed).
    "deadlock detected",
    "could not serialize access",
    // 57P01 admin_shutdown, 57P02 crash_shutdown, and the idle timeouts: "terminating
    // connection due to …" / "… because of …".
    "terminating connection",
    // 57P03 cannot_connect_now: "the database system is starting up", "… is shutting down",
    // "… is in recovery mode", "… is not yet accepting connections".
    "the database system is",
];

fn is_transient_message(msg: &str) -> bool {
    let msg = msg.to_ascii_lowercase();
    TRANSIENT_MESSAGES.iter().any(|m| msg.contains(m))
}

/// True for the error of a request to a library that is gone (deleted, or deleted behind the
/// server's back) or that the caller may not see: a caller that cached the user's library id
/// should forget it, so that the next request finds or creates the user's library again.
pub fn is_library_gone(e: &Error) -> bool {
    matches!(e, Error::NoSuchLibrary(_))
}

pub(crate) fn pool_error(e: diesel_async::pooled_connection::deadpool::PoolError) -> Error {
    Error::Unavailable(format!("no database connection: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What PostgreSQL says for each transient SQLSTATE (English `lc_messages`).
    #[test]
    fn postgres_transient_messages_are_unavailable() {
        for (sqlstate, msg) in [
            ("53300", "sorry, too many clients already"),
            (
                "53300",
                "remaining connection slots are reserved for roles with SUPERUSER",
            ),
            ("57014", "canceling statement due to statement timeout"),
            ("57014", "canceling statement due to user request"),
            ("55P03", "canceling statement due to lock timeout"),
            (
                "55P03",
                "could not obtain lock on row in relation \"libraries\"",
            ),
            ("40P01", "deadlock detected"),
            (
                "40001",
                "could not serialize access due to concurrent update",
            ),
            (
                "57P01",
                "terminating connection due to administrator command",
            ),
            (
                "57P02",
                "terminating connection because of crash of another server process",
            ),
            ("57P03", "the database system is starting up"),
            ("57P03", "the database system is shutting down"),
        ] {
            let e =
                DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(msg.to_owned()));
            assert!(
                matches!(db_error(e), Error::Unavailable(_)),
                "{sqlstate}: {msg}"
            );
        }
        let bug = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("column \"nope\" does not exist".to_owned()),
        );
        assert!(matches!(db_error(bug), Error::Internal(_)));
    }

    #[test]
    fn a_failed_commit_is_judged_by_the_commit_error() {
        let closed = || {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new("connection closed".to_owned()),
            )
        };
        let e = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(closed()),
            commit_error: Box::new(closed()),
        };
        assert!(matches!(db_error(e), Error::Unavailable(_)));
    }
}
