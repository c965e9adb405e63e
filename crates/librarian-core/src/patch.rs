//! Patch frames (DESIGN §10): the change between two versions of a library, and the digest
//! that lets a client check that what it holds is exactly the snapshot at a version.
//!
//! - The **canonical snapshot** at a version is the exact bytes `GET /library` answers:
//!   `serde_json` compact output of [`LibrarySnapshot`], lists in their deterministic order
//!   (`(created_at, id)`, members by user id). Its **digest** is `"sha256:<lowercase hex>"` of
//!   those bytes ([`LibrarySnapshot::digest`]).
//! - A [`Patch`] from `from_version` to `version` lists, per kind, the rows to upsert (whole
//!   rows, in canonical order) and the ids to delete (sorted), and the whole members list if
//!   it changed. [`LibrarySnapshot::apply`] turns the snapshot at exactly `from_version` into
//!   the one at `version`; re-serialized it is byte for byte the canonical snapshot there.
//! - [`diff`] compares two snapshots by row id and `(version, updated_at)` (every change to a
//!   row moves its version, also the moves of a project delete and the prompt edits of a block
//!   delete), never by content. [`compose`] chains consecutive patches, so a server keeping
//!   one patch per version can answer a client several versions behind.

use crate::entity::{ContextBlock, Project, SavedPrompt};
use crate::member::MemberRole;
use crate::snapshot::LibrarySnapshot;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A row of one of the three kinds, as far as ordering and diffing need it.
pub trait Row: Clone + Serialize {
    fn id(&self) -> Uuid;
    fn row_version(&self) -> i64;
    fn created_at(&self) -> Timestamp;
    fn updated_at(&self) -> Timestamp;

    /// The row's place in its list: `(created_at, id)`.
    fn order_key(&self) -> (Timestamp, Uuid) {
        (self.created_at(), self.id())
    }

    /// What changes whenever the row does (a recreated id starts over at version 1, so the
    /// timestamps tell it from the row it replaced).
    fn stamp(&self) -> (i64, Timestamp, Timestamp) {
        (self.row_version(), self.updated_at(), self.created_at())
    }
}

macro_rules! impl_row {
    ($($t:ty),*) => {$(
        impl Row for $t {
            fn id(&self) -> Uuid { self.id }
            fn row_version(&self) -> i64 { self.version }
            fn created_at(&self) -> Timestamp { self.created_at }
            fn updated_at(&self) -> Timestamp { self.updated_at }
        }
    )*};
}
impl_row!(Project, ContextBlock, SavedPrompt);

/// The change to one list: rows to insert or replace (canonical order), ids to remove (sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Changes<T> {
    pub upsert: Vec<T>,
    pub delete: Vec<Uuid>,
}

impl<T> Changes<T> {
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.delete.is_empty()
    }
}

/// `patch`: applied to the snapshot at exactly `from_version`, gives the one at `version`,
/// whose canonical bytes hash to `digest`. A list is absent when it did not change; `members`
/// is the whole new list, present only when it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Patch {
    pub from_version: i64,
    pub version: i64,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Changes<Project>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_blocks: Option<Changes<ContextBlock>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_prompts: Option<Changes<SavedPrompt>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberRole>>,
}

impl Patch {
    /// The `{"type":"patch",…}` frame.
    pub fn frame_json(&self) -> String {
        #[derive(Serialize)]
        struct Tagged<'a> {
            r#type: &'static str,
            #[serde(flatten)]
            patch: &'a Patch,
        }
        // Serializing plain structs, strings and integers cannot fail.
        serde_json::to_string(&Tagged {
            r#type: "patch",
            patch: self,
        })
        .unwrap_or_default()
    }

    /// A patch that changes nothing (`from_version` = `version`).
    pub fn empty(version: i64, digest: String) -> Patch {
        Patch {
            from_version: version,
            version,
            digest,
            projects: None,
            context_blocks: None,
            saved_prompts: None,
            members: None,
        }
    }
}

/// Why a patch could not be applied: the client then asks for a full snapshot (`resync`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the patch starts at version {from}, the library is at {held}")]
    WrongBase { from: i64, held: i64 },
    #[error("the patch deletes {kind} {id}, which the library does not hold")]
    MissingRow { kind: &'static str, id: Uuid },
    #[error("the library at version {version} hashes to {actual}, the server said {expected}")]
    DigestMismatch {
        version: i64,
        expected: String,
        actual: String,
    },
}

/// `"sha256:<hex>"` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// The digest of bytes fed in pieces: what [`digest_of`] gives for their concatenation, for a
/// canonical snapshot written out row by row without assembling it. A clone is the state so
/// far, from which hashing can go on with other bytes.
#[derive(Default, Clone)]
pub struct Digester(Sha256);

impl Digester {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex(&self.0.finalize()))
    }
}

/// Lowercase hex of a hash.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

impl LibrarySnapshot {
    /// The canonical bytes (what `GET /library` answers at this version).
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serializing plain structs, strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The digest of [`LibrarySnapshot::canonical_json`].
    pub fn digest(&self) -> String {
        digest_of(&self.canonical_json())
    }

    /// Applies `patch` (which must start at this snapshot's version); the lists stay in
    /// canonical order. On an error the snapshot is left unchanged.
    pub fn apply(&mut self, patch: &Patch) -> Result<(), PatchError> {
        if patch.from_version != self.version {
            return Err(PatchError::WrongBase {
                from: patch.from_version,
                held: self.version,
            });
        }
        // Checked first, so that a failed apply changes nothing.
        check_deletes(&self.projects, patch.projects.as_ref(), "project")?;
        check_deletes(
            &self.context_blocks,
            patch.context_blocks.as_ref(),
            "context_block",
        )?;
        check_deletes(
            &self.saved_prompts,
            patch.saved_prompts.as_ref(),
            "saved_prompt",
        )?;
        apply_list(&mut self.projects, patch.projects.as_ref());
        apply_list(&mut self.context_blocks, patch.context_blocks.as_ref());
        apply_list(&mut self.saved_prompts, patch.saved_prompts.as_ref());
        if let Some(members) = &patch.members {
            self.members = members.clone();
        }
        self.version = patch.version;
        Ok(())
    }

    /// Checks that this snapshot hashes to `digest`.
    pub fn verify(&self, digest: &str) -> Result<(), PatchError> {
        let actual = self.digest();
        if actual == digest {
            Ok(())
        } else {
            Err(PatchError::DigestMismatch {
                version: self.version,
                expected: digest.to_owned(),
                actual,
            })
        }
    }
}

fn check_deletes<T: Row>(
    list: &[T],
    changes: Option<&Changes<T>>,
    kind: &'static str,
) -> Result<(), PatchError> {
    let Some(changes) = changes.filter(|c| !c.delete.is_empty()) else {
        return Ok(());
    };
    let held: HashSet<Uuid> = list.iter().map(Row::id).collect();
    match changes.delete.iter().find(|id| !held.contains(id)) {
        Some(&id) => Err(PatchError::MissingRow { kind, id }),
        None => Ok(()),
    }
}

fn apply_list<T: Row>(list: &mut Vec<T>, changes: Option<&Changes<T>>) {
    let Some(changes) = changes else {
        return;
    };
    // A row's place (creation time, id) never changes: most upserts replace a row found
    // there, without touching the rest of a large list. New rows, and deletions, take a pass.
    let mut placed = Vec::new();
    for row in &changes.upsert {
        match list.binary_search_by(|r| r.order_key().cmp(&row.order_key())) {
            Ok(at) => list[at] = row.clone(),
            Err(_) => placed.push(row),
        }
    }
    let gone: HashSet<Uuid> = changes
        .delete
        .iter()
        .copied()
        .chain(placed.iter().map(|r| r.id()))
        .collect();
    if !gone.is_empty() {
        list.retain(|row| !gone.contains(&row.id()));
    }
    for row in placed {
        let at = list.partition_point(|r| r.order_key() < row.order_key());
        list.insert(at, row.clone());
    }
}

/// The patch from `old` to `new`, by row versions; `digest` is `new`'s.
pub fn diff(old: &LibrarySnapshot, new: &LibrarySnapshot, digest: String) -> Patch {
    Patch {
        from_version: old.version,
        version: new.version,
        digest,
        projects: diff_list(&old.projects, &new.projects),
        context_blocks: diff_list(&old.context_blocks, &new.context_blocks),
        saved_prompts: diff_list(&old.saved_prompts, &new.saved_prompts),
        members: (old.members != new.members).then(|| new.members.clone()),
    }
}

/// The change from `old` to `new` (both in canonical order), `None` if there is none.
pub fn diff_list<T: Row>(old: &[T], new: &[T]) -> Option<Changes<T>> {
    let before: HashMap<Uuid, (i64, Timestamp, Timestamp)> =
        old.iter().map(|r| (r.id(), r.stamp())).collect();
    let mut kept = HashSet::with_capacity(new.len());
    let upsert: Vec<T> = new
        .iter()
        .filter(|r| {
            kept.insert(r.id());
            before.get(&r.id()) != Some(&r.stamp())
        })
        .cloned()
        .collect();
    let mut delete: Vec<Uuid> = before
        .keys()
        .filter(|id| !kept.contains(id))
        .copied()
        .collect();
    delete.sort_unstable();
    let changes = Changes { upsert, delete };
    (!changes.is_empty()).then_some(changes)
}

/// One consecutive patch with what composing needs beyond the wire form: which of its upserts
/// are rows the `from_version` snapshot did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub patch: Patch,
    pub created: HashSet<Uuid>,
}

impl Step {
    /// The step from `old` to `new` (rows that were not in `old` marked created).
    pub fn between(old: &LibrarySnapshot, new: &LibrarySnapshot, digest: String) -> Step {
        let patch = diff(old, new, digest);
        let mut created = HashSet::new();
        mark_created(&mut created, &old.projects, patch.projects.as_ref());
        mark_created(
            &mut created,
            &old.context_blocks,
            patch.context_blocks.as_ref(),
        );
        mark_created(
            &mut created,
            &old.saved_prompts,
            patch.saved_prompts.as_ref(),
        );
        Step { patch, created }
    }
}

fn mark_created<T: Row>(created: &mut HashSet<Uuid>, old: &[T], changes: Option<&Changes<T>>) {
    let Some(changes) = changes.filter(|c| !c.upsert.is_empty()) else {
        return;
    };
    let held: HashSet<Uuid> = old.iter().map(Row::id).collect();
    created.extend(
        changes
            .upsert
            .iter()
            .map(Row::id)
            .filter(|id| !held.contains(id)),
    );
}

/// Chains consecutive steps (each starting where the previous one ends) into one patch from
/// the first one's `from_version` to the last one's `version`. `None` if `steps` is empty or
/// not consecutive. A row created and deleted within the span appears in neither list.
pub fn compose(steps: &[&Step]) -> Option<Patch> {
    let first = steps.first()?;
    let last = steps.last()?;
    if steps
        .windows(2)
        .any(|w| w[0].patch.version != w[1].patch.from_version)
    {
        return None;
    }
    let mut members = None;
    for step in steps {
        if let Some(m) = &step.patch.members {
            members = Some(m.clone());
        }
    }
    Some(Patch {
        from_version: first.patch.from_version,
        version: last.patch.version,
        digest: last.patch.digest.clone(),
        projects: compose_list(steps, |p| p.projects.as_ref()),
        context_blocks: compose_list(steps, |p| p.context_blocks.as_ref()),
        saved_prompts: compose_list(steps, |p| p.saved_prompts.as_ref()),
        members,
    })
}

fn compose_list<T: Row>(
    steps: &[&Step],
    list: impl Fn(&Patch) -> Option<&Changes<T>>,
) -> Option<Changes<T>> {
    enum Fate<T> {
        /// The row's state at the end; `existed`: the first snapshot held the id.
        Upsert {
            row: T,
            existed: bool,
        },
        Delete,
    }
    let mut fates: HashMap<Uuid, Fate<T>> = HashMap::new();
    for step in steps {
        let Some(changes) = list(&step.patch) else {
            continue;
        };
        for &id in &changes.delete {
            match fates.get(&id) {
                // Created within the span: the client never held it.
                Some(Fate::Upsert { existed: false, .. }) => {
                    fates.remove(&id);
                }
                _ => {
                    fates.insert(id, Fate::Delete);
                }
            }
        }
        for row in &changes.upsert {
            let id = row.id();
            let existed = match fates.get(&id) {
                Some(Fate::Upsert { existed, .. }) => *existed,
                // Deleted within the span and created again: the client holds the old row.
                Some(Fate::Delete) => true,
                None => !step.created.contains(&id),
            };
            fates.insert(
                id,
                Fate::Upsert {
                    row: row.clone(),
                    existed,
                },
            );
        }
    }
    let mut upsert = Vec::new();
    let mut delete = Vec::new();
    for (id, fate) in fates {
        match fate {
            Fate::Upsert { row, .. } => upsert.push(row),
            Fate::Delete => delete.push(id),
        }
    }
    upsert.sort_by_key(Row::order_key);
    delete.sort_unstable();
    let changes = Changes { upsert, delete };
    (!changes.is_empty()).then_some(changes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::member::Role;

    fn block(n: u128, version: i64, title: &str) -> ContextBlock {
        ContextBlock {
            id: Uuid::from_u128(n),
            project_id: None,
            title: title.into(),
            content: String::new(),
            tags: vec![],
            version,
            created_at: Timestamp(1000 + n as i64),
            updated_at: Timestamp(1000 + n as i64 + version),
        }
    }

    fn library(version: i64, blocks: Vec<ContextBlock>) -> LibrarySnapshot {
        LibrarySnapshot {
            version,
            context_blocks: blocks,
            members: vec![MemberRole {
                user_id: "alice".into(),
                role: Role::Owner,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn applying_the_diff_gives_the_new_snapshot_byte_for_byte() {
        let old = library(
            1,
            vec![block(1, 1, "a"), block(2, 1, "b"), block(3, 1, "c")],
        );
        let mut new = library(
            4,
            vec![block(1, 2, "a2"), block(3, 1, "c"), block(4, 1, "d")],
        );
        new.members.push(MemberRole {
            user_id: "bob".into(),
            role: Role::Viewer,
        });
        let patch = diff(&old, &new, new.digest());
        let changes = patch.context_blocks.as_ref().unwrap();
        assert_eq!(
            changes.upsert.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![Uuid::from_u128(1), Uuid::from_u128(4)],
            "only the changed and new rows travel"
        );
        assert_eq!(changes.delete, vec![Uuid::from_u128(2)]);
        assert!(patch.projects.is_none() && patch.saved_prompts.is_none());
        let mut held = old.clone();
        held.apply(&patch).unwrap();
        assert_eq!(held.canonical_json(), new.canonical_json());
        held.verify(&patch.digest).unwrap();
    }

    #[test]
    fn the_patch_frame_is_the_patch_with_a_type() {
        let old = library(1, vec![block(1, 1, "a")]);
        let new = library(2, vec![]);
        let patch = diff(&old, &new, "sha256:00".into());
        let json = patch.frame_json();
        assert_eq!(
            json,
            r#"{"type":"patch","from_version":1,"version":2,"digest":"sha256:00","context_blocks":{"upsert":[],"delete":["00000000-0000-0000-0000-000000000001"]}}"#
        );
        let crate::protocol::ServerFrame::Patch(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a patch: {json}")
        };
        assert_eq!(back, patch);
    }

    #[test]
    fn a_patch_from_another_version_or_deleting_a_missing_row_is_refused_and_changes_nothing() {
        let old = library(1, vec![block(1, 1, "a")]);
        let new = library(2, vec![]);
        let patch = diff(&old, &new, new.digest());
        let mut other = library(5, vec![block(1, 1, "a")]);
        assert!(matches!(
            other.apply(&patch),
            Err(PatchError::WrongBase { from: 1, held: 5 })
        ));
        let mut missing = library(1, vec![block(9, 1, "z")]);
        let before = missing.clone();
        assert!(matches!(
            missing.apply(&patch),
            Err(PatchError::MissingRow { .. })
        ));
        assert_eq!(missing, before);
    }

    #[test]
    fn a_wrong_digest_is_caught() {
        let snapshot = library(3, vec![block(1, 1, "a")]);
        assert!(snapshot.verify(&snapshot.digest()).is_ok());
        let mut changed = snapshot.clone();
        changed.context_blocks[0].title = "tampered".into();
        assert!(matches!(
            changed.verify(&snapshot.digest()),
            Err(PatchError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn composed_steps_equal_the_direct_diff() {
        let v1 = library(1, vec![block(1, 1, "a"), block(2, 1, "b")]);
        // Updates 1, creates 3 and 4.
        let v2 = library(
            2,
            vec![
                block(1, 2, "a2"),
                block(2, 1, "b"),
                block(3, 1, "c"),
                block(4, 1, "d"),
            ],
        );
        // Deletes 2 (held by v1) and 3 (created in between), updates 4.
        let v3 = library(3, vec![block(1, 2, "a2"), block(4, 2, "d2")]);
        let s1 = Step::between(&v1, &v2, v2.digest());
        let s2 = Step::between(&v2, &v3, v3.digest());
        let composed = compose(&[&s1, &s2]).unwrap();
        assert_eq!(composed, diff(&v1, &v3, v3.digest()));
        let mut held = v1.clone();
        held.apply(&composed).unwrap();
        assert_eq!(held, v3);
        assert!(compose(&[&s2, &s1]).is_none(), "not consecutive");
        assert!(compose(&[]).is_none());
    }

    #[test]
    fn a_row_deleted_and_created_again_with_its_id_is_an_upsert() {
        let v1 = library(1, vec![block(1, 3, "a")]);
        let v2 = library(2, vec![]);
        let mut again = block(1, 1, "again");
        again.created_at = Timestamp(5000);
        again.updated_at = Timestamp(5000);
        let v3 = library(3, vec![again]);
        let s1 = Step::between(&v1, &v2, v2.digest());
        let s2 = Step::between(&v2, &v3, v3.digest());
        let composed = compose(&[&s1, &s2]).unwrap();
        let mut held = v1.clone();
        held.apply(&composed).unwrap();
        assert_eq!(held, v3);
    }

    #[test]
    fn the_digest_is_sha256_of_the_canonical_bytes() {
        let empty = LibrarySnapshot::default();
        assert_eq!(
            empty.canonical_json(),
            br#"{"projects":[],"context_blocks":[],"saved_prompts":[],"members":[],"version":0}"#
        );
        // `printf %s '<those bytes>' | sha256sum`
        assert_eq!(
            empty.digest(),
            "sha256:f0575cff8b42b5c974c1c32e2d207112d9f8a2ee6f14b15c6534258c76cf5a77"
        );
    }
}
