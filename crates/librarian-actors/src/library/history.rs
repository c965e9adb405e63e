//! Recent history of the served libraries, for patch frames (DESIGN §10): per library, the
//! steps between consecutive loaded versions (each a [`Step`] and its `patch` frame, built once
//! when the version is loaded), the last loaded version as a whole (the base the next load is
//! diffed against, kept for a while after its last session left so that a client coming back
//! gets a patch), and patches spanning several steps, composed once per (from, to) pair when a
//! session or an HTTP request first needs one.
//!
//! Everything is kept within one byte budget (`sync.patch_history_bytes`), the oldest entry
//! out first. Shared by the `LibraryActor` (which records each published version) and every
//! session and HTTP request (which ask for patches); the lock is held only for bookkeeping,
//! never while composing or serializing.

use super::rows::Rows;
use bytestring::ByteString;
use librarian_core::patch::{Patch, Step, compose};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use uuid::Uuid;

/// The step from the previous loaded version to this one, with its frame.
#[derive(Debug)]
pub struct StepFrame {
    pub step: Step,
    /// `{"type":"patch",…}`, shared by every session that needs exactly this step.
    pub frame: ByteString,
}

impl StepFrame {
    pub fn new(step: Step) -> StepFrame {
        let frame = ByteString::from(step.patch.frame_json());
        StepFrame { step, frame }
    }

    pub fn from_version(&self) -> i64 {
        self.step.patch.from_version
    }

    pub fn version(&self) -> i64 {
        self.step.patch.version
    }

    /// What it costs in memory, roughly: the frame and the parsed rows it was built from.
    fn bytes(&self) -> usize {
        self.frame.len() * 2
    }
}

/// A patch spanning several steps, composed on first use.
type Span = Arc<OnceLock<Option<ByteString>>>;

#[derive(Default)]
struct Lib {
    /// Consecutive steps, oldest first: each starts where the previous one ends.
    steps: VecDeque<Arc<StepFrame>>,
    /// The last version recorded, its digest and the library itself.
    latest: Option<(i64, String)>,
    base: Option<Arc<Rows>>,
    base_bytes: usize,
    /// Composed patches by (from, to), for the latest `to` only (sessions always move to the
    /// newest version).
    spans: HashMap<(i64, i64), Span>,
}

/// What the budget accounts for, in the order it was added.
enum Entry {
    Step { library_id: Uuid, version: i64 },
    Base { library_id: Uuid, version: i64 },
}

struct Inner {
    libs: HashMap<Uuid, Lib>,
    order: VecDeque<(Entry, usize)>,
    used: usize,
}

/// The shared history (see the module docs).
pub struct History {
    budget: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("budget", &self.budget)
            .field("used", &self.used())
            .finish()
    }
}

impl History {
    pub fn new(budget: usize) -> History {
        History {
            budget,
            inner: Mutex::new(Inner {
                libs: HashMap::new(),
                order: VecDeque::new(),
                used: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough bookkeeping (at worst a
        // patch is not found and a snapshot goes instead).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// The last version recorded for the library as a whole, to diff the next load against
    /// (after the library had no sessions for a while, this is what lets a client coming back
    /// get a patch).
    pub fn base(&self, library_id: Uuid) -> Option<Arc<Rows>> {
        self.lock().libs.get(&library_id)?.base.clone()
    }

    /// A version was published: `library` as loaded, and the step from the version before it
    /// (if it was built from it). A step that does not continue the recorded history, or a
    /// version below it (the database went back), starts the history over: no patch ever
    /// spans such a gap. Holding the library is counted as twice its canonical size.
    pub fn record(&self, library_id: Uuid, library: &Arc<Rows>, step: Option<&Arc<StepFrame>>) {
        let (version, digest, bytes) = (library.version, &library.digest, library.bytes);
        let mut inner = self.lock();
        let lib = inner.libs.entry(library_id).or_default();
        if lib.latest.as_ref().is_some_and(|(v, _)| *v == version) {
            return;
        }
        let continues = step.is_some_and(|s| {
            lib.latest
                .as_ref()
                .is_some_and(|(v, _)| *v == s.from_version())
        });
        let mut freed = 0;
        if !continues {
            freed += lib.steps.drain(..).map(|s| s.bytes()).sum::<usize>();
        }
        lib.spans.clear();
        lib.latest = Some((version, digest.clone()));
        if lib.base.replace(library.clone()).is_some() {
            freed += lib.base_bytes;
        }
        lib.base_bytes = bytes * 2;
        let mut added = vec![(
            Entry::Base {
                library_id,
                version,
            },
            bytes * 2,
        )];
        if let Some(step) = step.filter(|_| continues) {
            lib.steps.push_back(step.clone());
            added.push((
                Entry::Step {
                    library_id,
                    version,
                },
                step.bytes(),
            ));
        }
        inner.used = inner.used.saturating_sub(freed);
        for (entry, bytes) in added {
            inner.used += bytes;
            inner.order.push_back((entry, bytes));
        }
        self.evict(&mut inner);
    }

    /// Drops the oldest entries until the budget holds. Entries whose object already went
    /// (replaced or cleared) cost nothing any more and are skipped.
    fn evict(&self, inner: &mut Inner) {
        while inner.used > self.budget {
            let Some((entry, bytes)) = inner.order.pop_front() else {
                inner.used = 0;
                return;
            };
            let still_held = match entry {
                Entry::Step {
                    library_id,
                    version,
                } => inner.libs.get_mut(&library_id).is_some_and(|lib| {
                    let front = lib.steps.front().is_some_and(|s| s.version() == version);
                    if front {
                        lib.steps.pop_front();
                        lib.spans.clear();
                    }
                    front
                }),
                Entry::Base {
                    library_id,
                    version,
                } => inner.libs.get_mut(&library_id).is_some_and(|lib| {
                    let held = lib.base.as_ref().is_some_and(|b| b.version == version);
                    if held {
                        lib.base = None;
                    }
                    held
                }),
            };
            if still_held {
                inner.used = inner.used.saturating_sub(bytes);
            }
            // Forget libraries with nothing left.
            if let Entry::Step { library_id, .. } | Entry::Base { library_id, .. } = entry
                && inner
                    .libs
                    .get(&library_id)
                    .is_some_and(|l| l.steps.is_empty() && l.base.is_none())
            {
                inner.libs.remove(&library_id);
            }
        }
    }

    /// The digest of version `version` of the library, if the history holds it.
    pub fn digest(&self, library_id: Uuid, version: i64) -> Option<String> {
        let inner = self.lock();
        let lib = inner.libs.get(&library_id)?;
        match &lib.latest {
            Some((v, digest)) if *v == version => Some(digest.clone()),
            _ => lib
                .steps
                .iter()
                .find(|s| s.version() == version)
                .map(|s| s.step.patch.digest.clone()),
        }
    }

    /// The `patch` frame from `from` to `to`, if the history spans it (a patch that changes
    /// nothing when `from` = `to` is the latest version). Composed at most once per pair.
    pub fn patch(&self, library_id: Uuid, from: i64, to: i64) -> Option<ByteString> {
        let (steps, span) = {
            let mut inner = self.lock();
            let lib = inner.libs.get_mut(&library_id)?;
            if from == to {
                let (latest, digest) = lib.latest.as_ref()?;
                return (*latest == to)
                    .then(|| ByteString::from(Patch::empty(to, digest.clone()).frame_json()));
            }
            let first = lib.steps.iter().position(|s| s.from_version() == from)?;
            let last = lib.steps.iter().position(|s| s.version() == to)?;
            if last < first {
                return None;
            }
            if first == last {
                return Some(lib.steps[first].frame.clone());
            }
            let steps: Vec<Arc<StepFrame>> = lib.steps.range(first..=last).cloned().collect();
            let span = lib.spans.entry((from, to)).or_default().clone();
            (steps, span)
        };
        span.get_or_init(|| {
            let steps: Vec<&Step> = steps.iter().map(|s| &s.step).collect();
            compose(&steps).map(|p| ByteString::from(p.frame_json()))
        })
        .clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use librarian_core::{ContextBlock, LibrarySnapshot, Timestamp};

    fn library(version: i64, titles: &[(u128, i64)]) -> Arc<LibrarySnapshot> {
        Arc::new(LibrarySnapshot {
            version,
            context_blocks: titles
                .iter()
                .map(|&(n, v)| ContextBlock {
                    id: Uuid::from_u128(n),
                    project_id: None,
                    title: format!("t{n}.{v}"),
                    content: String::new(),
                    tags: vec![],
                    version: v,
                    created_at: Timestamp(n as i64),
                    updated_at: Timestamp(n as i64 + v),
                })
                .collect(),
            ..Default::default()
        })
    }

    fn record(
        h: &History,
        lib: Uuid,
        prev: Option<&Arc<LibrarySnapshot>>,
        new: &Arc<LibrarySnapshot>,
    ) {
        let digest = new.digest();
        let step = prev.map(|p| Arc::new(StepFrame::new(Step::between(p, new, digest.clone()))));
        let rows = Arc::new(Rows::new(LibrarySnapshot::clone(new)).unwrap());
        h.record(lib, &rows, step.as_ref());
    }

    fn apply(from: &LibrarySnapshot, frame: &str) -> LibrarySnapshot {
        let librarian_core::protocol::ServerFrame::Patch(patch) =
            serde_json::from_str(frame).unwrap()
        else {
            panic!("not a patch")
        };
        let mut held = from.clone();
        held.apply(&patch).unwrap();
        held.verify(&patch.digest).unwrap();
        held
    }

    #[test]
    fn patches_span_any_recorded_steps_and_are_composed_once() {
        let h = History::new(1 << 20);
        let lib = Uuid::from_u128(7);
        let v1 = library(1, &[(1, 1)]);
        let v2 = library(2, &[(1, 2), (2, 1)]);
        let v3 = library(3, &[(2, 1), (3, 1)]);
        record(&h, lib, None, &v1);
        record(&h, lib, Some(&v1), &v2);
        record(&h, lib, Some(&v2), &v3);
        assert_eq!(apply(&v2, &h.patch(lib, 2, 3).unwrap()), *v3);
        let span = h.patch(lib, 1, 3).unwrap();
        assert_eq!(apply(&v1, &span), *v3);
        // The same bytes again, not a second composition.
        assert_eq!(h.patch(lib, 1, 3).unwrap().as_ptr(), span.as_ptr());
        assert_eq!(apply(&v3, &h.patch(lib, 3, 3).unwrap()), *v3);
        assert!(h.patch(lib, 0, 3).is_none(), "older than the history");
        assert!(h.patch(lib, 3, 2).is_none());
        assert_eq!(h.base(lib).unwrap().version, 3);
    }

    #[test]
    fn a_gap_or_a_step_back_starts_the_history_over() {
        let h = History::new(1 << 20);
        let lib = Uuid::from_u128(7);
        let (v1, v2, v5) = (
            library(1, &[]),
            library(2, &[(1, 1)]),
            library(5, &[(2, 1)]),
        );
        record(&h, lib, None, &v1);
        record(&h, lib, Some(&v1), &v2);
        // Diffed against something else than the recorded version 2: no patch across.
        record(&h, lib, Some(&v1), &v5);
        assert!(h.patch(lib, 1, 5).is_none());
        assert!(h.patch(lib, 2, 5).is_none());
        // The database went back to version 3.
        let v3 = library(3, &[]);
        record(&h, lib, None, &v3);
        assert!(h.patch(lib, 2, 3).is_none());
        assert_eq!(h.base(lib).unwrap().version, 3);
    }

    #[test]
    fn the_budget_drops_the_oldest_entries_first() {
        let lib = Uuid::from_u128(7);
        let versions: Vec<_> = (1..=30).map(|v| library(v, &[(v as u128, 1)])).collect();
        let h = History::new(4096);
        record(&h, lib, None, &versions[0]);
        for w in versions.windows(2) {
            record(&h, lib, Some(&w[0]), &w[1]);
            assert!(h.used() <= 4096, "{} over the budget", h.used());
        }
        assert!(h.patch(lib, 29, 30).is_some(), "the newest step is kept");
        assert!(h.patch(lib, 1, 30).is_none(), "the oldest ones went");
        // Another library's entries push this one's out.
        let other = Uuid::from_u128(8);
        let big: Vec<(u128, i64)> = (100..110).map(|n| (n, 1)).collect();
        record(&h, other, None, &library(1, &big));
        assert!(h.used() <= 4096);
    }
}
