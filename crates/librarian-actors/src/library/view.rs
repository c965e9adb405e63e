//! What subscribers of a library see: the latest loaded [`Snapshot`] (serialized once, its
//! bytes shared by every session, with the patch from the version loaded before it) and the
//! sync status, as one [`LibraryView`] in a `watch`.

use super::history::StepFrame;
use bytestring::ByteString;
use librarian_core::patch::{Step, digest_of};
use librarian_core::protocol::{ServerFrame, Status, SyncState};
use librarian_core::{Error, LibrarySnapshot, MemberRole, Role};
use std::sync::Arc;
use std::time::Instant;

/// One loaded version of a library, serialized once as its `snapshot` frame.
#[derive(Debug)]
pub struct Snapshot {
    pub version: i64,
    /// The whole `{"type":"snapshot",…}` frame; cloning it shares the bytes.
    pub frame: ByteString,
    /// `sha256:…` of the canonical snapshot (DESIGN §10).
    pub digest: String,
    /// The library itself: what the next load is diffed against.
    pub library: Arc<LibrarySnapshot>,
    /// The patch from the version loaded before this one, if it was diffed against it.
    pub step: Option<Arc<StepFrame>>,
    /// Number of rows, for metrics and logs.
    pub items: usize,
    /// Who may see this version (sorted by user id): a session whose user is not among them
    /// is closed instead of sent it (DESIGN §9, revocation).
    pub members: Vec<MemberRole>,
    /// When this instance first heard of a commit this snapshot is the first to include (for
    /// the commit → frame latency sessions report). `None` for loads no event asked for.
    pub pending_since: Option<Instant>,
}

impl Snapshot {
    /// `user_id`'s role at this version, if a member.
    pub fn role_of(&self, user_id: &str) -> Option<Role> {
        librarian_core::member::role_in(&self.members, user_id)
    }

    /// The same frame marked `"reset": true` (the library went back below what a client
    /// holds). Rare, so built per session from the shared frame rather than kept.
    pub fn reset_frame(&self) -> ByteString {
        // serde writes the tag first, then the fields in declaration order: `reset` (skipped
        // when false) comes right after it.
        const TAG: &str = r#"{"type":"snapshot","#;
        match self.frame.strip_prefix(TAG) {
            Some(rest) => ByteString::from(format!(r#"{TAG}"reset":true,{rest}"#)),
            None => self.frame.clone(),
        }
    }
}

/// What every subscriber of a library can see right now.
#[derive(Debug, Clone)]
pub struct LibraryView {
    pub snapshot: Option<Arc<Snapshot>>,
    pub state: SyncState,
    /// The `status` frame of a session that holds this view's snapshot, serialized once per
    /// view instead of once per session (`None` while loading).
    pub status_frame: Option<ByteString>,
    /// The number of the last reload whose result this view shows (see `Refresh`).
    pub loaded: u64,
    /// Bumped when the database was found at a lower version than the view held (restored
    /// from a backup): the snapshot then steps back, and sessions say so (`reset`).
    pub generation: u64,
    /// The library was deleted: every session on it ends (`access_revoked`).
    pub gone: bool,
}

impl LibraryView {
    /// The view of a library whose first load is under way.
    pub fn loading() -> LibraryView {
        LibraryView {
            snapshot: None,
            state: SyncState::Loading,
            status_frame: None,
            loaded: 0,
            generation: 0,
            gone: false,
        }
    }

    pub fn version(&self) -> Option<i64> {
        self.snapshot.as_ref().map(|s| s.version)
    }

    /// The status a session holding this view's snapshot is told.
    pub fn status(&self) -> Option<Status> {
        (self.state != SyncState::Loading).then(|| Status {
            state: self.state.clone(),
            version: self.version(),
        })
    }

    /// Fills in [`LibraryView::status_frame`] from the state.
    pub(crate) fn with_status_frame(mut self) -> LibraryView {
        self.status_frame = self
            .status()
            .and_then(|s| serde_json::to_string(&ServerFrame::Status(s)).ok())
            .map(ByteString::from);
        self
    }
}

/// Serializes a loaded library into its frame, hashes it, and diffs it against `previous`
/// (the version loaded before it) into a patch. CPU work: for large libraries it runs off the
/// actor's thread.
pub(crate) fn build(
    library: LibrarySnapshot,
    previous: Option<Arc<LibrarySnapshot>>,
) -> Result<Snapshot, Error> {
    let canonical = serde_json::to_vec(&library)
        .map_err(|e| Error::Internal(format!("cannot serialize snapshot: {e}")))?;
    let digest = digest_of(&canonical);
    let frame = snapshot_frame(&canonical, &digest)?;
    let step = previous
        .filter(|p| p.version < library.version)
        .map(|p| Arc::new(StepFrame::new(Step::between(&p, &library, digest.clone()))));
    Ok(Snapshot {
        version: library.version,
        frame,
        digest,
        items: library.len(),
        members: library.members.clone(),
        library: Arc::new(library),
        step,
        pending_since: None,
    })
}

/// `{"type":"snapshot","digest":"…",` followed by the canonical object's fields: the same
/// bytes serde writes for a [`ServerFrame::Snapshot`] with its digest, without a second
/// serialization.
fn snapshot_frame(canonical: &[u8], digest: &str) -> Result<ByteString, Error> {
    let fields = canonical
        .strip_prefix(b"{")
        .ok_or_else(|| Error::Internal("a snapshot is not a JSON object".into()))?;
    let head = format!(r#"{{"type":"snapshot","digest":"{digest}","#);
    let mut frame = Vec::with_capacity(head.len() + fields.len());
    frame.extend_from_slice(head.as_bytes());
    frame.extend_from_slice(fields);
    String::from_utf8(frame)
        .map(ByteString::from)
        .map_err(|e| Error::Internal(format!("snapshot frame: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_reset_frame_is_the_snapshot_frame_with_reset_set() {
        let library = LibrarySnapshot {
            version: 3,
            ..Default::default()
        };
        let snapshot = build(library.clone(), None).unwrap();
        let frame = |reset| {
            serde_json::to_string(&ServerFrame::Snapshot(
                librarian_core::protocol::SnapshotFrame {
                    reset,
                    digest: Some(library.digest()),
                    library: library.clone(),
                },
            ))
            .unwrap()
        };
        assert_eq!(&*snapshot.frame, frame(false).as_str());
        assert_eq!(&*snapshot.reset_frame(), frame(true).as_str());
    }

    #[test]
    fn the_shared_status_frame_is_the_status_of_the_view() {
        let view = LibraryView {
            snapshot: Some(Arc::new(
                build(
                    LibrarySnapshot {
                        version: 4,
                        ..Default::default()
                    },
                    None,
                )
                .unwrap(),
            )),
            state: SyncState::Live,
            ..LibraryView::loading()
        }
        .with_status_frame();
        assert_eq!(
            view.status_frame.as_deref(),
            Some(r#"{"type":"status","state":"live","version":4}"#)
        );
        assert_eq!(
            LibraryView::loading().with_status_frame().status_frame,
            None
        );
    }
}
