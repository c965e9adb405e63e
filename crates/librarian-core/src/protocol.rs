//! Frames of the WebSocket protocol (DESIGN §5) that the server sends, shared by the server and
//! the client SDKs. Each frame is a JSON object with a `type` tag.

use crate::snapshot::LibrarySnapshot;
use serde::{Deserialize, Serialize};

/// `{"type":"snapshot","version":…,"projects":[…],"context_blocks":[…],"saved_prompts":[…]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "snapshot")]
pub struct SnapshotFrame {
    #[serde(flatten)]
    pub snapshot: LibrarySnapshot,
}

/// Where a subscriber's view of its library stands (the `status` frame's `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    fn a_snapshot_frame_is_the_snapshot_object_with_a_type() {
        let frame = SnapshotFrame {
            snapshot: LibrarySnapshot {
                version: 7,
                ..Default::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&frame).unwrap(),
            r#"{"type":"snapshot","version":7,"projects":[],"context_blocks":[],"saved_prompts":[]}"#
        );
    }
}
