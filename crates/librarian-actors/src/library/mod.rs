//! `LibraryActor`: turns [`Mutated`] events into snapshots for subscribers.
//!
//! - [`machine`]: every decision (when to load, what to publish, when to wake), pure and
//!   unit-tested with made-up instants;
//! - [`view`]: what subscribers see, one `watch` per library holding a [`LibraryView`] whose
//!   snapshot frame is serialized once and shared by every session;
//! - [`history`]: recent patches between loaded versions, shared with sessions and HTTP;
//! - [`messages`]: what the actor answers; [`stats`]: its counters;
//! - this file: the glue that performs the machine's actions: loads (off the actor's thread
//!   for large libraries), `watch` updates, timers, and reconciliation every
//!   `reconcile_interval` (one query for the versions of the served libraries, healing any
//!   lost notification; also once each time the cross-instance listener reconnects).

mod bulk;
mod history;
mod machine;
mod messages;
mod rows;
mod stats;
mod view;

pub use history::{History, StepFrame};
pub use messages::{
    ListenerConnected, Refresh, Subscribe, Subscription, VersionSeen, WriteEnded, WriteStarted,
};
pub use rows::Rows;
pub use stats::{SyncStats, SyncStatsSnapshot};
pub use view::{LibraryView, Snapshot};

use crate::event::Mutated;
use actix::prelude::*;
use librarian_core::Error;
use librarian_core::backoff::Backoff;
use librarian_store::Store;
use machine::{Action, Loaded, Machine, Timing};
use messages::{SubscriberGuard, Unsubscribe};
use rand::Rng;
use rows::Next;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// A library behind the database for this long (a slow load, or a burst of writes that keeps
/// it behind) is announced as `syncing`; a shorter gap would flash a status nobody can read
/// and wake every session once more per version.
const SYNCING_AFTER: Duration = Duration::from_millis(50);

/// Libraries with more rows than this are serialized, updated and hashed on the bulk threads
/// (low priority, see `bulk`), so that one large library does not hold up every other
/// library's reload on the actor's thread, nor take the CPU from them.
const SERIALIZE_OFF_THREAD_ITEMS: usize = 500;

/// Library ids per reconciliation query: far below SQLite's limit on bound parameters.
const RECONCILE_CHUNK: usize = 500;

pub struct LibraryActor {
    store: Store,
    stats: Arc<SyncStats>,
    machine: Machine,
    views: HashMap<Uuid, watch::Sender<LibraryView>>,
    history: Arc<History>,
    bulk: Arc<bulk::Bulk>,
    reconcile_interval: Duration,
    /// Libraries whose next load reads them whole: reconciliation found them at a version
    /// no notification announced, i.e. written outside Librarian, maybe without `changed_in`.
    whole: HashSet<Uuid>,
}

impl LibraryActor {
    pub fn new(
        store: Store,
        stats: Arc<SyncStats>,
        history: Arc<History>,
        options: crate::SyncOptions,
    ) -> Self {
        let timing = Timing {
            max_coalesce: options.max_coalesce,
            min_reload_interval: options.min_reload_interval,
            syncing_after: SYNCING_AFTER,
            reconcile_interval: options.reconcile_interval,
            backoff: Backoff::DEFAULT,
        };
        LibraryActor {
            store,
            machine: Machine::new(timing, stats.clone(), || {
                rand::rng().random_range(0.5..=1.0)
            }),
            stats,
            views: HashMap::new(),
            history,
            bulk: Arc::new(bulk::Bulk::new(
                std::thread::available_parallelism().map_or(1, usize::from),
            )),
            reconcile_interval: options.reconcile_interval,
            whole: HashSet::new(),
        }
    }

    fn perform(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Load {
                    library_id,
                    epoch,
                    seq,
                } => self.load(library_id, epoch, seq, ctx),
                Action::Publish { library_id, view } => {
                    if let Some(s) = &view.snapshot {
                        self.history.record(library_id, &s.rows, s.step.as_ref());
                    }
                    if let Some(views) = self.views.get(&library_id) {
                        views.send_replace(view.with_status_frame());
                    }
                }
                Action::WakeAt {
                    library_id,
                    epoch,
                    at,
                } => {
                    ctx.run_later(
                        at.saturating_duration_since(Instant::now()),
                        move |act, ctx| {
                            let actions = act.machine.wake(library_id, epoch, Instant::now());
                            act.perform(actions, ctx);
                        },
                    );
                }
            }
        }
    }

    fn load(&mut self, library_id: Uuid, epoch: u64, seq: u64, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let bulk = self.bulk.clone();
        // The changes are applied to what sessions hold now (one load runs at a time, so it is
        // still the view when this one ends), or after a pause without sessions, to the last
        // version the history kept.
        let whole = self.whole.remove(&library_id);
        let previous = self
            .machine
            .current(library_id)
            .and_then(|v| v.snapshot.as_ref())
            .map(|s| s.rows.clone())
            .or_else(|| self.history.base(library_id))
            .filter(|_| !whole);
        let load = async move {
            let started = Instant::now();
            (
                load(&store, &bulk, library_id, previous).await,
                started.elapsed(),
            )
        };
        ctx.spawn(load.into_actor(self).map(move |(result, took), act, ctx| {
            let loaded = match result {
                Ok(snapshot) => {
                    act.stats.reload_seconds.observe(took.as_secs_f64());
                    tracing::debug!(%library_id, version = snapshot.version, items = snapshot.rows.len(),
                        bytes = snapshot.rows.bytes, took_ms = took.as_secs_f64() * 1e3, "reloaded");
                    Loaded::Ok(snapshot)
                }
                Err(Error::NoSuchLibrary(_)) => Loaded::Gone,
                Err(e) => {
                    tracing::warn!(%library_id, error = %e, "reload failed");
                    Loaded::Failed {
                        unavailable: matches!(e, Error::Unavailable(_)),
                    }
                }
            };
            let actions = act
                .machine
                .load_done(library_id, epoch, seq, loaded, Instant::now());
            act.perform(actions, ctx);
        }));
    }

    /// One query per chunk of served libraries for their versions; reloads those that moved.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let Some(ids) = self.machine.reconcile_start() else {
            return;
        };
        let store = self.store.clone();
        let query = async move {
            let mut versions = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(RECONCILE_CHUNK) {
                versions.extend(store.library_versions(chunk).await?);
            }
            Ok::<_, Error>(versions)
        };
        ctx.spawn(query.into_actor(self).map(|result, act, ctx| {
            let result = result.map_err(|e| {
                tracing::warn!(error = %e, "reconciliation failed");
                matches!(e, Error::Unavailable(_))
            });
            let (caught, actions, again) = act.machine.reconcile_done(result, Instant::now());
            for library_id in caught {
                tracing::info!(%library_id, "reconciliation found a newer version");
                act.whole.insert(library_id);
            }
            act.perform(actions, ctx);
            if again {
                act.reconcile(ctx);
            }
        }));
    }
}

/// Loads the library's current version: the rows written since `previous` applied to it
/// (O(change)), or the whole library when there is no previous version or the changes do not
/// continue it.
async fn load(
    store: &Store,
    bulk: &bulk::Bulk,
    library_id: Uuid,
    previous: Option<Arc<Rows>>,
) -> Result<Snapshot, Error> {
    if let Some(prev) = previous {
        let changes = store.load_changes(library_id, prev.version).await?;
        let next = off_thread(bulk, prev.len(), move || {
            Ok(match prev.next(changes)? {
                Next::Applied(applied) => {
                    let (rows, step) = *applied;
                    Some(Snapshot::new(rows, Some(step)))
                }
                Next::Reload => None,
            })
        })
        .await?;
        if let Some(snapshot) = next {
            return Ok(snapshot);
        }
    }
    let library = store.load_library(library_id).await?;
    off_thread(bulk, library.len(), move || {
        Ok(Snapshot::new(Rows::new(library)?, None))
    })
    .await
}

/// Runs `work` on the low-priority bulk threads when the library is large, here otherwise.
async fn off_thread<T: Send + 'static>(
    bulk: &bulk::Bulk,
    items: usize,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    if items > SERIALIZE_OFF_THREAD_ITEMS {
        bulk.run(work)
            .await
            .unwrap_or_else(|| Err(Error::Internal("a library build failed".into())))
    } else {
        work()
    }
}

impl Actor for LibraryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.reconcile_interval.is_zero() {
            ctx.run_interval(self.reconcile_interval, |act, ctx| act.reconcile(ctx));
        }
    }
}

impl Handler<Subscribe> for LibraryActor {
    type Result = Subscription;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Subscription {
        let library_id = msg.library_id;
        let _guard = SubscriberGuard {
            library_id,
            actor: ctx.address(),
        };
        let actions = self.machine.subscribe(library_id, Instant::now());
        let views = match self.views.get(&library_id) {
            Some(views) => views.subscribe(),
            None => {
                let current = self
                    .machine
                    .current(library_id)
                    .cloned()
                    .unwrap_or_else(LibraryView::loading);
                let (tx, rx) = watch::channel(current.with_status_frame());
                self.views.insert(library_id, tx);
                rx
            }
        };
        self.perform(actions, ctx);
        Subscription { views, _guard }
    }
}

impl Handler<Unsubscribe> for LibraryActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        if self.machine.unsubscribe(msg.library_id) {
            self.views.remove(&msg.library_id);
        }
    }
}

impl Handler<Mutated> for LibraryActor {
    type Result = ();

    fn handle(&mut self, event: Mutated, ctx: &mut Context<Self>) {
        let (_, actions) = self
            .machine
            .seen(event.library_id, event.version, Instant::now());
        self.perform(actions, ctx);
    }
}

impl Handler<VersionSeen> for LibraryActor {
    type Result = ();

    fn handle(&mut self, event: VersionSeen, ctx: &mut Context<Self>) {
        let (_, actions) = self
            .machine
            .seen(event.library_id, event.version, Instant::now());
        self.perform(actions, ctx);
    }
}

impl Handler<Refresh> for LibraryActor {
    type Result = u64;

    fn handle(&mut self, msg: Refresh, ctx: &mut Context<Self>) -> u64 {
        let (wanted, actions) = self.machine.refresh(msg.library_id, Instant::now());
        self.perform(actions, ctx);
        wanted
    }
}

impl Handler<ListenerConnected> for LibraryActor {
    type Result = ();

    fn handle(&mut self, _: ListenerConnected, ctx: &mut Context<Self>) {
        self.stats.listener_connects.inc();
        self.reconcile(ctx);
    }
}

impl Handler<WriteStarted> for LibraryActor {
    type Result = ();

    fn handle(&mut self, msg: WriteStarted, _ctx: &mut Context<Self>) {
        self.machine.write_started(msg.library_id);
    }
}

impl Handler<WriteEnded> for LibraryActor {
    type Result = ();

    fn handle(&mut self, msg: WriteEnded, ctx: &mut Context<Self>) {
        let actions = self.machine.write_ended(msg.library_id, Instant::now());
        self.perform(actions, ctx);
    }
}
