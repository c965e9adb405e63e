//! What subscribers of a library see: the latest loaded [`Snapshot`] (hashed once, its frame
//! written once and shared by every session, with the patch from the version loaded before
//! it) and the sync status, as one [`LibraryView`] in a `watch`.

use super::history::StepFrame;
use super::rows::Rows;
use bytestring::ByteString;
use librarian_core::Role;
use librarian_core::patch::Step;
use librarian_core::protocol::{ServerFrame, Status, SyncState};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// One loaded version of a library, hashed once (`rows.digest`); its `snapshot` frame is
/// written once, when the first session that needs a whole library asks for it (sessions on
/// patches never do).
#[derive(Debug)]
pub struct Snapshot {
    pub version: i64,
    /// The library itself (its members: who may see this version, DESIGN §9): what the next
    /// load applies its changes to.
    pub rows: Arc<Rows>,
    /// The patch from the version loaded before this one, if it was built from it.
    pub step: Option<Arc<StepFrame>>,
    /// The whole `{"type":"snapshot",…}` frame, once written; cloning it shares the bytes.
    frame: OnceLock<ByteString>,
    /// When this instance first heard of a commit this snapshot is the first to include (for
    /// the commit → frame latency sessions report). `None` for loads no event asked for.
    pub pending_since: Option<Instant>,
}

impl Snapshot {
    /// `rows`, and the step from the version before, if built from it.
    pub(crate) fn new(rows: Rows, step: Option<Step>) -> Snapshot {
        let step = step.map(|mut step| {
            step.patch.digest = rows.digest.clone();
            Arc::new(StepFrame::new(step))
        });
        Snapshot {
            version: rows.version,
            step,
            frame: OnceLock::new(),
            rows: Arc::new(rows),
            pending_since: None,
        }
    }

    /// `user_id`'s role at this version, if a member.
    pub fn role_of(&self, user_id: &str) -> Option<Role> {
        librarian_core::member::role_in(&self.rows.members, user_id)
    }

    /// The `snapshot` frame: `{"type":"snapshot","digest":"…",` then the canonical snapshot's
    /// fields, the bytes serde writes for a [`ServerFrame::Snapshot`], written from the rows'
    /// kept JSON once per version.
    pub fn frame(&self) -> ByteString {
        self.frame
            .get_or_init(|| {
                let mut frame = String::with_capacity(self.rows.bytes + 100);
                frame.push_str(r#"{"type":"snapshot","digest":""#);
                frame.push_str(&self.rows.digest);
                frame.push_str(r#"","#);
                self.rows.write_fields(&mut |s: &str| frame.push_str(s));
                ByteString::from(frame)
            })
            .clone()
    }

    /// The same frame marked `"reset": true` (the library went back below what a client
    /// holds). Rare, so built per session from the shared frame rather than kept.
    pub fn reset_frame(&self) -> ByteString {
        // serde writes the tag first, then the fields in declaration order: `reset` (skipped
        // when false) comes right after it.
        const TAG: &str = r#"{"type":"snapshot","#;
        let frame = self.frame();
        match frame.strip_prefix(TAG) {
            Some(rest) => ByteString::from(format!(r#"{TAG}"reset":true,{rest}"#)),
            None => frame.clone(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use librarian_core::{LibrarySnapshot, MemberRole};

    fn snapshot(library: LibrarySnapshot) -> Snapshot {
        Snapshot::new(Rows::new(library).unwrap(), None)
    }

    #[test]
    fn the_frames_are_what_serde_writes_for_the_snapshot() {
        use librarian_core::{ContextBlock, Timestamp};
        let library = LibrarySnapshot {
            version: 3,
            context_blocks: vec![ContextBlock {
                id: uuid::Uuid::from_u128(7),
                project_id: None,
                title: "t".into(),
                content: "\"q\" \n é".into(),
                tags: vec!["x".into()],
                version: 2,
                created_at: Timestamp(5),
                updated_at: Timestamp(6),
            }],
            members: vec![MemberRole {
                user_id: "alice".into(),
                role: Role::Owner,
            }],
            ..Default::default()
        };
        let snapshot = snapshot(library.clone());
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
        assert_eq!(&*snapshot.frame(), frame(false).as_str());
        assert_eq!(&*snapshot.reset_frame(), frame(true).as_str());
        assert_eq!(snapshot.rows.digest, library.digest());
        assert_eq!(snapshot.rows.bytes, library.canonical_json().len());
    }

    #[test]
    fn the_shared_status_frame_is_the_status_of_the_view() {
        let view = LibraryView {
            snapshot: Some(Arc::new(snapshot(LibrarySnapshot {
                version: 4,
                ..Default::default()
            }))),
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
