//! The sync status a client shows.

use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// The first connection attempt is under way (or the first after
    /// [`Library::reconnect`](crate::Library::reconnect)).
    Connecting,
    /// Connected; the first snapshot is on its way.
    Loading,
    /// This client holds the latest version the server knows of.
    Live { version: i64, synced_at: SystemTime },
    /// A newer version is being loaded.
    Syncing { target: i64 },
    /// The server could not load the library; it retries after `retry_in`.
    Error {
        code: String,
        message: String,
        retry_in: Duration,
    },
    /// The connection dropped or was refused; reconnecting (after `retry_in`).
    Reconnecting { retry_in: Duration },
    /// The token provider failed before a connection attempt (e.g. the user signed out): the
    /// library stopped trying, since trying again would not change the answer. Mutations stay
    /// queued; [`Library::reconnect`](crate::Library::reconnect) tries again.
    Unauthorized { message: String },
    /// The user was removed from the library, or it was deleted (the server closed with 4403):
    /// nothing more is tried; pending mutations the server had acknowledged resolve (they
    /// committed before the removal), the others fail with
    /// [`ClientError::AccessRevoked`](crate::ClientError::AccessRevoked).
    /// [`Library::reconnect`](crate::Library::reconnect) tries again (e.g. once re-invited).
    Revoked { message: String },
}
