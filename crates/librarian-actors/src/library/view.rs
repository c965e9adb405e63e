//! What subscribers of a library see: the latest loaded [`Snapshot`] (serialized once, its
//! bytes shared by every session, with the patch from the version loaded before it) and the
//! sync status, as one [`LibraryView`] in a `watch`.

use super::history::StepFrame;
use bytestring::ByteString;
use librarian_core::Timestamp;
use librarian_core::patch::{Row, Step, digest_of};
use librarian_core::protocol::{ServerFrame, Status, SyncState};
use librarian_core::{Error, LibrarySnapshot, MemberRole, Role};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

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
    /// Each row's JSON as serialized for this version: the next version reuses those of the
    /// rows that did not change.
    pub fragments: Arc<Fragments>,
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

/// Each row's serialized JSON, by kind and id, with the stamp of the row it was made from.
#[derive(Debug, Default)]
pub struct Fragments {
    rows: HashMap<(u8, Uuid), Fragment>,
}

type Fragment = ((i64, Timestamp, Timestamp), Arc<str>);

/// What the next load of a library starts from: the version loaded before it, and that
/// version's row fragments when this process serialized it.
pub(crate) struct Previous {
    pub library: Arc<LibrarySnapshot>,
    pub fragments: Option<Arc<Fragments>>,
}

/// The canonical bytes of `library` (exactly `serde_json::to_vec(&library)`), reusing the
/// fragments of rows whose stamp did not change: an edit of one row of a large library
/// serializes one row, not all of them. Also answers this version's fragments.
fn canonical(
    library: &LibrarySnapshot,
    cache: Option<&Fragments>,
    size_hint: usize,
) -> Result<(Vec<u8>, Fragments), Error> {
    fn list<T: Row>(
        out: &mut Vec<u8>,
        kind: u8,
        rows: &[T],
        cache: Option<&Fragments>,
        next: &mut Fragments,
    ) -> Result<(), serde_json::Error> {
        out.push(b'[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let key = (kind, row.id());
            let fragment = match cache.and_then(|c| c.rows.get(&key)) {
                Some((stamp, json)) if *stamp == row.stamp() => json.clone(),
                _ => Arc::from(serde_json::to_string(row)?),
            };
            out.extend_from_slice(fragment.as_bytes());
            next.rows.insert(key, (row.stamp(), fragment));
        }
        out.push(b']');
        Ok(())
    }
    let fail = |e: serde_json::Error| Error::Internal(format!("cannot serialize snapshot: {e}"));
    let mut out = Vec::with_capacity(size_hint + 1024);
    let mut next = Fragments {
        rows: HashMap::with_capacity(library.len()),
    };
    out.extend_from_slice(format!(r#"{{"version":{},"projects":"#, library.version).as_bytes());
    list(&mut out, 0, &library.projects, cache, &mut next).map_err(fail)?;
    out.extend_from_slice(br#","context_blocks":"#);
    list(&mut out, 1, &library.context_blocks, cache, &mut next).map_err(fail)?;
    out.extend_from_slice(br#","saved_prompts":"#);
    list(&mut out, 2, &library.saved_prompts, cache, &mut next).map_err(fail)?;
    out.extend_from_slice(br#","members":"#);
    serde_json::to_writer(&mut out, &library.members).map_err(fail)?;
    out.push(b'}');
    Ok((out, next))
}

/// Serializes a loaded library into its frame, hashes it, and diffs it against `previous`
/// (the version loaded before it) into a patch. CPU work: for large libraries it runs off the
/// actor's thread.
pub(crate) fn build(
    library: LibrarySnapshot,
    previous: Option<Previous>,
) -> Result<Snapshot, Error> {
    let cache = previous.as_ref().and_then(|p| p.fragments.clone());
    let size_hint = previous.as_ref().map_or(0, |p| p.library.len() * 512);
    let (canonical, fragments) = canonical(&library, cache.as_deref(), size_hint)?;
    let previous = previous.map(|p| p.library);
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
        fragments: Arc::new(fragments),
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
    fn reused_fragments_give_the_bytes_serde_gives() {
        use librarian_core::{ContextBlock, MemberRole, Role};
        let block = |n: u128, version: i64, content: &str| ContextBlock {
            id: Uuid::from_u128(n),
            project_id: None,
            title: format!("b{n}"),
            content: content.into(),
            tags: vec!["t".into()],
            version,
            created_at: Timestamp(n as i64),
            updated_at: Timestamp(n as i64 + version),
        };
        let v1 = LibrarySnapshot {
            version: 1,
            context_blocks: vec![block(1, 1, "a"), block(2, 1, "\"q\" \n é")],
            members: vec![MemberRole {
                user_id: "alice".into(),
                role: Role::Owner,
            }],
            ..Default::default()
        };
        let first = build(v1.clone(), None).unwrap();
        assert_eq!(first.digest, v1.digest());
        let mut v2 = v1.clone();
        v2.version = 2;
        v2.context_blocks[1] = block(2, 2, "changed");
        v2.context_blocks.push(block(3, 1, "new"));
        let second = build(
            v2.clone(),
            Some(Previous {
                library: first.library.clone(),
                fragments: Some(first.fragments.clone()),
            }),
        )
        .unwrap();
        assert_eq!(second.digest, v2.digest(), "a stale fragment was reused");
        assert_eq!(
            &second.frame[second.frame.find(r#""version""#).unwrap()..],
            &String::from_utf8(v2.canonical_json()).unwrap()[1..]
        );
        assert_eq!(second.step.as_ref().unwrap().from_version(), 1);
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
