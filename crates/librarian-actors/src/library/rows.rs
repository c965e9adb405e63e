//! The server's copy of one loaded version of a library: every row shared (`Arc`) with the
//! versions before and after it and kept next to its serialized JSON, in the snapshot's order.
//!
//! The next version is this one with the rows written since applied ([`Rows::next`]): the
//! work is O(change) apart from copying the lists of pointers, and the canonical snapshot
//! (its digest, the full frame when a session needs one) is written from the kept JSON
//! without serializing unchanged rows again. The step's patch comes out of the same
//! changes: no diff of two whole versions.

use librarian_core::patch::{Changes, Digester, Patch, Row, Step};
use librarian_core::{ContextBlock, Error, LibrarySnapshot, MemberRole, Project, SavedPrompt};
use librarian_store::LibraryChanges;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// One row and its JSON, as in the canonical snapshot.
#[derive(Debug)]
pub struct Entry<T> {
    pub row: Arc<T>,
    pub json: Arc<str>,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            row: self.row.clone(),
            json: self.json.clone(),
        }
    }
}

impl<T: Row> Entry<T> {
    fn new(row: T) -> Result<Entry<T>, Error> {
        let json = serde_json::to_string(&row)
            .map_err(|e| Error::Internal(format!("cannot serialize a row: {e}")))?;
        Ok(Entry {
            row: Arc::new(row),
            json: Arc::from(json),
        })
    }
}

/// One version of a library (see the module docs).
#[derive(Debug, Default)]
pub struct Rows {
    pub version: i64,
    pub projects: Vec<Entry<Project>>,
    pub context_blocks: Vec<Entry<ContextBlock>>,
    pub saved_prompts: Vec<Entry<SavedPrompt>>,
    pub members: Vec<MemberRole>,
    /// `sha256:…` of the canonical snapshot (DESIGN §10), and its length in bytes.
    pub digest: String,
    pub bytes: usize,
    /// Hash states along the canonical bytes, one per [`MARK_EVERY`] bytes or so.
    marks: Vec<Mark>,
}

/// Bytes of canonical JSON between two [`Mark`]s: at most this much is hashed again before
/// the first changed row (~60 marks of ~120 bytes for a 3.7 MB library).
const MARK_EVERY: usize = 64 * 1024;

/// The hash state of the canonical bytes before row `at.1` of list `at.0` (its comma
/// included). The canonical JSON puts `version` last, so a version whose rows up to there did
/// not change has the same bytes up to there: its digest goes on from this state, and an edit
/// hashes the library from the changed row on, not from the start.
#[derive(Clone)]
struct Mark {
    at: (usize, usize),
    len: usize,
    state: Digester,
}

impl std::fmt::Debug for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mark")
            .field("at", &self.at)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// What comes before each list's rows in the canonical JSON (after the opening `{`).
const HEADS: [&str; 3] = [
    r#""projects":["#,
    r#"],"context_blocks":["#,
    r#"],"saved_prompts":["#,
];

/// What [`Rows::next`] made of a library's changes.
#[derive(Debug)]
pub enum Next {
    /// The next version, and the step to it (its patch's digest still empty).
    Applied(Box<(Rows, Step)>),
    /// The changes do not continue this version (the database went back, or they do not add
    /// up): load the library whole.
    Reload,
}

impl Rows {
    /// A whole library as loaded, each row serialized once.
    pub fn new(library: LibrarySnapshot) -> Result<Rows, Error> {
        fn entries<T: Row>(rows: Vec<T>) -> Result<Vec<Entry<T>>, Error> {
            rows.into_iter().map(Entry::new).collect()
        }
        let mut rows = Rows {
            version: library.version,
            projects: entries(library.projects)?,
            context_blocks: entries(library.context_blocks)?,
            saved_prompts: entries(library.saved_prompts)?,
            members: library.members,
            ..Rows::default()
        };
        rows.hash(Vec::new());
        Ok(rows)
    }

    fn list_len(&self, list: usize) -> usize {
        match list {
            0 => self.projects.len(),
            1 => self.context_blocks.len(),
            _ => self.saved_prompts.len(),
        }
    }

    fn json_at(&self, list: usize, i: usize) -> &str {
        match list {
            0 => &self.projects[i].json,
            1 => &self.context_blocks[i].json,
            _ => &self.saved_prompts[i].json,
        }
    }

    /// What follows the lists: `],"members":[…],"version":N}`.
    fn tail(&self) -> String {
        // Plain strings and an enum: cannot fail.
        let members = serde_json::to_string(&self.members).unwrap_or_else(|_| "[]".into());
        format!(r#"],"members":{members},"version":{}}}"#, self.version)
    }

    /// Sets the digest, length and marks, hashing from the last of `kept` (marks of bytes this
    /// version shares with the one they were taken on), or from the start.
    fn hash(&mut self, mut marks: Vec<Mark>) {
        let (mut hasher, mut len, (first, from)) = match marks.last() {
            Some(m) => (m.state.clone(), m.len, m.at),
            None => {
                let mut hasher = Digester::default();
                let head = format!("{{{}", HEADS[0]);
                hasher.update(head.as_bytes());
                (hasher, head.len(), (0, 0))
            }
        };
        let mut last = len;
        for (list, head) in HEADS.iter().enumerate().skip(first) {
            if list > first {
                hasher.update(head.as_bytes());
                len += head.len();
            }
            let start = if list == first { from } else { 0 };
            for i in start..self.list_len(list) {
                if len - last >= MARK_EVERY {
                    marks.push(Mark {
                        at: (list, i),
                        len,
                        state: hasher.clone(),
                    });
                    last = len;
                }
                if i > 0 {
                    hasher.update(b",");
                    len += 1;
                }
                let json = self.json_at(list, i);
                hasher.update(json.as_bytes());
                len += json.len();
            }
        }
        let tail = self.tail();
        hasher.update(tail.as_bytes());
        self.bytes = len + tail.len();
        self.digest = hasher.finish();
        self.marks = marks;
    }

    /// The first place where `next`'s canonical bytes differ from this version's (list, row),
    /// `(3, 0)` if only what follows the lists does. Unchanged rows are shared, so comparing
    /// where their JSON lives is enough.
    fn first_change(&self, next: &Rows) -> (usize, usize) {
        for list in 0..3 {
            let (a, b) = (self.list_len(list), next.list_len(list));
            for i in 0..a.min(b) {
                if !std::ptr::eq(self.json_at(list, i), next.json_at(list, i)) {
                    return (list, i);
                }
            }
            if a != b {
                return (list, a.min(b));
            }
        }
        (3, 0)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.projects.len() + self.context_blocks.len() + self.saved_prompts.len()
    }

    /// The canonical snapshot's fields after its opening `{`: exactly what
    /// `serde_json::to_vec(&library)` writes there (field order of [`LibrarySnapshot`]).
    pub fn write_fields(&self, out: &mut impl FnMut(&str)) {
        for (list, head) in HEADS.iter().enumerate() {
            out(head);
            for i in 0..self.list_len(list) {
                if i > 0 {
                    out(",");
                }
                out(self.json_at(list, i));
            }
        }
        out(&self.tail());
    }

    /// The canonical snapshot (what `GET /library` answers at this version).
    #[cfg(test)]
    fn canonical(&self) -> String {
        let mut out = String::from("{");
        self.write_fields(&mut |s: &str| out.push_str(s));
        out
    }

    /// This version with `changes` (read after it) applied, and the step to it.
    pub fn next(&self, changes: LibraryChanges) -> Result<Next, Error> {
        if changes.since != self.version || changes.version < self.version {
            return Ok(Next::Reload);
        }
        let ids = changes.ids.as_ref();
        let mut created = HashSet::new();
        let (Some(projects), Some(context_blocks), Some(saved_prompts)) = (
            apply(
                &self.projects,
                changes.projects,
                ids.map(|i| &i[0][..]),
                &mut created,
            )?,
            apply(
                &self.context_blocks,
                changes.context_blocks,
                ids.map(|i| &i[1][..]),
                &mut created,
            )?,
            apply(
                &self.saved_prompts,
                changes.saved_prompts,
                ids.map(|i| &i[2][..]),
                &mut created,
            )?,
        ) else {
            return Ok(Next::Reload);
        };
        let patch = Patch {
            from_version: self.version,
            version: changes.version,
            digest: String::new(),
            projects: projects.1,
            context_blocks: context_blocks.1,
            saved_prompts: saved_prompts.1,
            members: (self.members != changes.members).then(|| changes.members.clone()),
        };
        let mut rows = Rows {
            version: changes.version,
            projects: projects.0,
            context_blocks: context_blocks.0,
            saved_prompts: saved_prompts.0,
            members: changes.members,
            ..Rows::default()
        };
        let changed = self.first_change(&rows);
        let kept = self
            .marks
            .iter()
            .take_while(|m| m.at <= changed)
            .cloned()
            .collect();
        rows.hash(kept);
        Ok(Next::Applied(Box::new((rows, Step { patch, created }))))
    }
}

/// A list of a new version and its changes from the version before.
type Listed<T> = (Vec<Entry<T>>, Option<Changes<T>>);

/// One list of [`Rows::next`]: `prev` with `changed` (every row written since, in canonical
/// order) applied, and, when rows were deleted since, `ids` (every id the list has now). The
/// new list and its changes; `None` if the rows read and the ids do not add up. Rows new to
/// the list go into `created`.
fn apply<T: Row>(
    prev: &[Entry<T>],
    mut changed: Vec<T>,
    ids: Option<&[Uuid]>,
    created: &mut HashSet<Uuid>,
) -> Result<Option<Listed<T>>, Error> {
    if changed.is_empty() && ids.is_none() {
        return Ok(Some((prev.to_vec(), None)));
    }
    changed.sort_by_key(Row::order_key);
    // A row keeps its place (its creation time and id) for life: a written row is found
    // there, or it is new.
    let mut replaced: Vec<(usize, Entry<T>)> = Vec::new();
    let mut fresh: Vec<Entry<T>> = Vec::new();
    for row in &changed {
        let key = row.order_key();
        match prev.binary_search_by(|e| e.row.order_key().cmp(&key)) {
            Ok(at) => replaced.push((at, Entry::new(row.clone())?)),
            Err(_) => fresh.push(Entry::new(row.clone())?),
        }
    }
    let (gone, deleted, count): (HashSet<Uuid>, Vec<Uuid>, usize) = match ids {
        Some(ids) => {
            let present: HashSet<Uuid> = ids.iter().copied().collect();
            let fresh_ids: HashSet<Uuid> = fresh.iter().map(|e| e.row.id()).collect();
            let mut deleted: Vec<Uuid> = prev
                .iter()
                .map(|e| e.row.id())
                .filter(|id| !present.contains(id))
                .collect();
            deleted.sort_unstable();
            // A row deleted and created again under the same id (ids may come from clients)
            // is new at its new place and gone from its old one, without being deleted.
            let gone = deleted.iter().copied().chain(fresh_ids).collect();
            let before: HashSet<Uuid> = prev.iter().map(|e| e.row.id()).collect();
            created.extend(
                fresh
                    .iter()
                    .map(|e| e.row.id())
                    .filter(|id| !before.contains(id)),
            );
            (gone, deleted, ids.len())
        }
        None => {
            created.extend(fresh.iter().map(|e| e.row.id()));
            (HashSet::new(), Vec::new(), prev.len() + fresh.len())
        }
    };
    let out = if fresh.is_empty() && gone.is_empty() {
        // The common edit: rows updated in place.
        let mut out = prev.to_vec();
        for (at, r) in replaced {
            out[at] = r;
        }
        out
    } else {
        let mut out = Vec::with_capacity(count);
        let mut fresh = fresh.into_iter().peekable();
        let mut replaced = replaced.into_iter().peekable();
        for (at, e) in prev.iter().enumerate() {
            while let Some(f) = fresh.next_if(|f| f.row.order_key() < e.row.order_key()) {
                out.push(f);
            }
            if let Some((_, r)) = replaced.next_if(|(i, _)| *i == at) {
                out.push(r);
            } else if !gone.contains(&e.row.id()) {
                out.push(e.clone());
            }
        }
        out.extend(fresh);
        out
    };
    if out.len() != count {
        // The ids and the rows read do not add up (cannot happen in one transaction).
        return Ok(None);
    }
    let changes = Changes {
        upsert: changed,
        delete: deleted,
    };
    Ok(Some((out, (!changes.is_empty()).then_some(changes))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use librarian_core::Timestamp;
    use librarian_core::patch::Step;

    fn block(n: u128, version: i64, created: i64) -> ContextBlock {
        ContextBlock {
            id: Uuid::from_u128(n),
            project_id: None,
            title: format!("b{n}.{version}"),
            content: "\"quoted\" é".into(),
            tags: vec!["t".into()],
            version,
            created_at: Timestamp(created),
            updated_at: Timestamp(created + version),
        }
    }

    fn library(version: i64, blocks: Vec<ContextBlock>) -> LibrarySnapshot {
        LibrarySnapshot {
            version,
            context_blocks: blocks,
            members: vec![MemberRole {
                user_id: "alice".into(),
                role: librarian_core::Role::Owner,
            }],
            ..Default::default()
        }
    }

    /// What the store would read after `old` with `new` committed (with ids if rows went).
    fn changes(old: &LibrarySnapshot, new: &LibrarySnapshot) -> LibraryChanges {
        let written: Vec<ContextBlock> = new
            .context_blocks
            .iter()
            .filter(|b| {
                !old.context_blocks
                    .iter()
                    .any(|o| o.id == b.id && o.stamp() == b.stamp())
            })
            .cloned()
            .collect();
        let deleted = old.context_blocks.iter().any(|o| {
            !new.context_blocks
                .iter()
                .any(|b| b.id == o.id && b.created_at == o.created_at)
        });
        LibraryChanges {
            since: old.version,
            version: new.version,
            members: new.members.clone(),
            projects: vec![],
            context_blocks: written,
            saved_prompts: vec![],
            ids: deleted.then(|| {
                [
                    vec![],
                    new.context_blocks.iter().map(|b| b.id).collect(),
                    vec![],
                ]
            }),
        }
    }

    fn step(old: &LibrarySnapshot, new: &LibrarySnapshot) -> Next {
        Rows::new(old.clone())
            .unwrap()
            .next(changes(old, new))
            .unwrap()
    }

    #[test]
    fn applied_changes_give_the_next_version_byte_for_byte_and_its_diff() {
        let v1 = library(1, vec![block(1, 1, 10), block(2, 1, 20), block(3, 1, 30)]);
        let cases = [
            // An update.
            library(2, vec![block(1, 1, 10), block(2, 2, 20), block(3, 1, 30)]),
            // A create in the middle and at the end.
            library(
                2,
                vec![
                    block(1, 1, 10),
                    block(9, 1, 15),
                    block(2, 1, 20),
                    block(3, 1, 30),
                    block(8, 1, 40),
                ],
            ),
            // Deletes, an update and a create.
            library(2, vec![block(2, 3, 20), block(7, 1, 50)]),
            // Deleted and created again under the same id, elsewhere in the order.
            library(2, vec![block(1, 1, 10), block(3, 1, 30), block(2, 1, 60)]),
            // Everything deleted.
            library(2, vec![]),
        ];
        for v2 in cases {
            let Next::Applied(applied) = step(&v1, &v2) else {
                panic!("not applied: {v2:?}");
            };
            let (rows, step) = *applied;
            assert_eq!(rows.canonical().as_bytes(), v2.canonical_json().as_slice());
            assert_eq!(
                (rows.digest.clone(), rows.bytes),
                (v2.digest(), v2.canonical_json().len())
            );
            let expected = Step::between(&v1, &v2, String::new());
            assert_eq!(step, expected, "for {v2:?}");
            let mut held = v1.clone();
            held.apply(&step.patch).unwrap();
            assert_eq!(held, v2);
        }
    }

    #[test]
    fn changes_that_do_not_continue_the_version_held_ask_for_a_reload() {
        let v1 = library(1, vec![block(1, 1, 10), block(2, 1, 20)]);
        let rows = Rows::new(v1.clone()).unwrap();
        let mut later = changes(&v1, &library(2, vec![block(2, 1, 20)]));
        later.since = 0;
        assert!(matches!(rows.next(later).unwrap(), Next::Reload));
        let back = changes(&v1, &library(0, vec![]));
        assert!(matches!(rows.next(back).unwrap(), Next::Reload));
        // Ids that do not add up with the rows held and read.
        let mut short = changes(&v1, &library(2, vec![block(2, 1, 20)]));
        short.ids = Some([vec![], vec![Uuid::from_u128(2), Uuid::from_u128(3)], vec![]]);
        assert!(matches!(rows.next(short).unwrap(), Next::Reload));
    }

    #[test]
    fn a_resumed_digest_is_the_digest_of_the_whole_library_wherever_the_change_is() {
        let big = |n: u128, version: i64| {
            let mut b = block(n, version, n as i64 * 10);
            b.content = format!("{n}:{version} {}", "x".repeat(1000));
            b
        };
        // ~300 KB: several marks.
        let mut library = library(1, (1..=300).map(|n| big(n, 1)).collect());
        let mut rows = Rows::new(library.clone()).unwrap();
        assert!(rows.marks.len() >= 3, "{} marks", rows.marks.len());
        type Edit<'a> = Box<dyn Fn(&mut LibrarySnapshot) + 'a>;
        let edits: Vec<Edit<'_>> = vec![
            Box::new(|l| l.context_blocks[0] = big(1, 2)),
            Box::new(|l| l.context_blocks[150] = big(151, 2)),
            Box::new(|l| l.context_blocks[299] = big(300, 2)),
            Box::new(|l| l.context_blocks.push(big(301, 1))),
            Box::new(|l| {
                l.context_blocks.remove(200);
            }),
            Box::new(|l| {
                l.context_blocks.pop();
            }),
            Box::new(|l| l.members[0].role = librarian_core::Role::Editor),
            Box::new(|_| {}),
            Box::new(|l| l.context_blocks.insert(0, big(0, 1))),
        ];
        for edit in edits {
            let mut next = library.clone();
            next.version += 1;
            edit(&mut next);
            let Next::Applied(applied) = rows.next(changes(&library, &next)).unwrap() else {
                panic!("not applied at v{}", next.version);
            };
            rows = applied.0;
            assert_eq!(rows.digest, next.digest(), "v{}", next.version);
            assert_eq!(rows.bytes, next.canonical_json().len());
            assert_eq!(
                rows.canonical().as_bytes(),
                next.canonical_json().as_slice()
            );
            library = next;
        }
    }
}
