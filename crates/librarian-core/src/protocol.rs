//! Frames of the WebSocket protocol (DESIGN §5), shared by the server and the client SDKs.
//! Each frame is a JSON text message with a `type` tag.

use crate::entity::Entity;
use crate::member::Role;
use crate::mutation::Op;
use crate::snapshot::LibrarySnapshot;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The protocol version `hello` announces.
pub const PROTOCOL_VERSION: u32 = 1;

/// Close codes (DESIGN §5).
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame the server cannot accept (after an `error` frame saying why).
    pub const MALFORMED: u16 = 4400;
    /// The token expired during the session, or an `auth` frame's token was refused.
    pub const AUTH_EXPIRED: u16 = 4401;
    /// An `auth` frame's token could not be checked now (the key set is unreachable).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// No pong within the idle timeout.
    pub const IDLE: u16 = 4408;
    /// The session could not take frames for too long.
    pub const TOO_SLOW: u16 = 4429;
    /// The user is no longer a member of the session's library, or it was deleted (after an
    /// `error access_revoked` frame).
    pub const ACCESS_REVOKED: u16 = 4403;
    /// The client sent frames faster than allowed (same code as too slow, like HTTP 429).
    pub const RATE_LIMITED: u16 = 4429;
}

/// Every frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello(Hello),
    Snapshot(SnapshotFrame),
    Status(Status),
    Ack(Ack),
    Reject(Reject),
    Error(ErrorFrame),
    AuthOk(AuthOk),
    Access(Access),
    Presence(Presence),
    Patch(crate::patch::Patch),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hello {
    pub protocol: u32,
    pub session_id: Uuid,
    pub user_id: String,
    pub library_id: Uuid,
    /// The user's role in the library (DESIGN §9); changes come as `access` frames. Absent
    /// from servers before shared libraries, where every library was its user's own.
    #[serde(default = "default_role")]
    pub role: Role,
    /// Mutations this session may have in flight at once (`ws.max_inflight_mutations`): a
    /// client keeps at most this many unanswered and queues the rest. Absent from servers
    /// before it was announced (clients then assume 32).
    #[serde(default = "default_max_inflight")]
    pub max_inflight_mutations: usize,
    /// The largest text frame the server takes, in bytes (`limits.body_max_bytes`); a larger
    /// one closes the session with 4400. Absent from older servers (clients assume 1 MiB).
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Frames a client may send per second, and in one burst (`ws.max_frames_per_second`,
    /// pongs included); past it the session closes with 4429. Absent from older servers
    /// (clients assume 100).
    #[serde(default = "default_max_frames_per_second")]
    pub max_frames_per_second: u32,
    /// The session token's `exp`: past it (plus `auth.leeway_s`) the session closes with 4401,
    /// unless the client sent a fresh token in an `auth` frame. Null from older servers.
    #[serde(default)]
    #[schema(required = true)]
    pub expires_at: Option<Timestamp>,
    /// The session asked for patch frames (`?patches=1`) and will get them (DESIGN §10).
    /// Absent (false) from servers before patch frames.
    #[serde(default)]
    pub patches: bool,
}

fn default_role() -> Role {
    Role::Owner
}

fn default_max_inflight() -> usize {
    32
}

fn default_max_frame_bytes() -> usize {
    1024 * 1024
}

fn default_max_frames_per_second() -> u32 {
    100
}

/// `snapshot`: the whole library at `version`.
///
/// `reset` is set only when the library is older than the version the client said it holds
/// (`?since_version=`): the database was restored from a backup. Without it a client ignores
/// a snapshot older than what it holds (G9); with it the client replaces its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotFrame {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// `"sha256:<hex>"` of the canonical snapshot (DESIGN §10): what a client re-serializing
    /// the library must hash to. Absent from servers before patch frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(flatten)]
    pub library: LibrarySnapshot,
}

impl From<LibrarySnapshot> for SnapshotFrame {
    fn from(library: LibrarySnapshot) -> Self {
        SnapshotFrame {
            reset: false,
            digest: None,
            library,
        }
    }
}

/// `status`: where the session stands; `version` is the snapshot it holds (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Status {
    #[serde(flatten)]
    pub state: SyncState,
    #[schema(required = true)]
    pub version: Option<i64>,
}

/// `ack`: the mutation committed as `library_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ack {
    pub mutation_id: String,
    pub library_version: i64,
    #[schema(required = true)]
    pub data: Option<Entity>,
}

/// `reject`: the mutation was refused; `error` is the same problem document HTTP would send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reject {
    pub mutation_id: String,
    #[schema(schema_with = problem_ref)]
    pub error: serde_json::Value,
}

/// `reject.error` is the server's `Problem` schema (defined where HTTP errors are).
fn problem_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("Problem")
}

/// `error`: a frame the server could not accept; a close follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorFrame {
    pub code: String,
    pub message: String,
}

/// `auth_ok`: the session now runs on the token of the client's `auth` frame, until its `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthOk {
    pub expires_at: Timestamp,
}

/// `access`: the user's role in the session's library changed (before the snapshot of the
/// version that changed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Access {
    pub role: Role,
}

/// `presence`: every session open on the library, on every instance, ordered by
/// `(connected_at, session_id)`. Sent when the list changes, at most every 100 ms per library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Presence {
    pub sessions: Vec<PresenceSession>,
}

/// One session in a `presence` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceSession {
    pub session_id: Uuid,
    pub user_id: String,
    /// The latest version this session said it applied (`seen`); null before its first.
    #[schema(required = true)]
    pub seen_version: Option<i64>,
    pub connected_at: Timestamp,
}

impl Presence {
    /// Delivery receipt for `version`: (sessions holding it or newer, all sessions).
    pub fn delivered_to(&self, version: i64) -> (usize, usize) {
        let held = self
            .sessions
            .iter()
            .filter(|s| s.seen_version.is_some_and(|v| v >= version))
            .count();
        (held, self.sessions.len())
    }
}

/// Every frame a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Mutate(MutateFrame),
    Auth(AuthFrame),
    Seen(SeenFrame),
    /// What the client holds does not match a digest: the server answers with a full
    /// `snapshot` (DESIGN §10).
    Resync,
}

/// `seen`: the client applied the snapshot (or patch) of `version` (a delivery receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeenFrame {
    pub version: i64,
}

/// `auth`: replaces the session's token (same user) before it expires; answered `auth_ok`, or
/// `error invalid_token` and close 4401.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthFrame {
    pub token: String,
}

// By hand: a token never reaches a log line.
impl std::fmt::Debug for AuthFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFrame")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `mutate`: one of the nine operations; `mutation_id` is its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MutateFrame {
    pub mutation_id: String,
    pub op: Op,
    /// The row to update or delete (or, optionally, the id to create with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<i64>,
    /// The entity's fields (create) or a partial object (update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Where a subscriber's view of its library stands (the `status` frame's `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncState {
    /// The first load of the library is under way; no snapshot yet.
    Loading,
    /// The latest known version is the one held.
    Live,
    /// A newer version than the one held is being loaded.
    Syncing { target_version: i64 },
    /// Loading failed; the server retries after `retry_in_ms`.
    Error {
        code: String,
        message: String,
        retry_in_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_round_trip() {
        let frames = [
            r#"{"type":"status","state":"live","version":3}"#,
            r#"{"type":"status","state":"syncing","target_version":5,"version":3}"#,
            r#"{"type":"status","state":"error","code":"database_unavailable","message":"m","retry_in_ms":200,"version":null}"#,
            r#"{"type":"ack","mutation_id":"m1","library_version":4,"data":null}"#,
            r#"{"type":"error","code":"malformed_frame","message":"m"}"#,
            r#"{"type":"access","role":"viewer"}"#,
            r#"{"type":"presence","sessions":[{"session_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","user_id":"bob","seen_version":null,"connected_at":"2026-12-04T10:00:00.000Z"}]}"#,
        ];
        for json in frames {
            let frame: ServerFrame = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&frame).unwrap(), json);
        }
    }

    #[test]
    fn a_snapshot_frame_is_the_snapshot_object_with_a_type() {
        let frame = ServerFrame::Snapshot(
            LibrarySnapshot {
                version: 7,
                ..Default::default()
            }
            .into(),
        );
        let json = r#"{"type":"snapshot","projects":[],"context_blocks":[],"saved_prompts":[],"members":[],"version":7}"#;
        assert_eq!(serde_json::to_string(&frame).unwrap(), json);
        assert_eq!(serde_json::from_str::<ServerFrame>(json).unwrap(), frame);
        let ServerFrame::Snapshot(mut reset) = frame else {
            unreachable!()
        };
        reset.reset = true;
        let reset = ServerFrame::Snapshot(reset);
        let json = r#"{"type":"snapshot","reset":true,"projects":[],"context_blocks":[],"saved_prompts":[],"members":[],"version":7}"#;
        assert_eq!(serde_json::to_string(&reset).unwrap(), json);
        assert_eq!(serde_json::from_str::<ServerFrame>(json).unwrap(), reset);
    }
}
