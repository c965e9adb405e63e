//! `LibraryActor`: turns [`Mutated`] events into snapshots for subscribers.
//!
//! Per library with at least one subscriber it keeps one `watch` channel holding the latest
//! [`LibraryView`]: the newest snapshot it loaded (version + frame bytes, serialized once and
//! shared by every subscriber) and a sync status. Rules:
//! - a `Mutated` above the held version starts a reload, unless one is in flight: then one
//!   trailing reload runs after it, and only if the version it loaded is still below the
//!   newest announced;
//! - while more writes to the library are under way in this process (the entity actors report
//!   [`WriteStarted`]/[`WriteEnded`]), the reload waits for them, up to `max_coalesce`, so a
//!   burst of N writes costs a few reloads (G6) while a lone edit reloads at once;
//! - a view only ever moves to a higher snapshot version (G3);
//! - a second subscriber of a loaded library gets the current view at once, no reload;
//! - the last subscriber leaving drops the library's state;
//! - a failed reload sets an `Error` status and retries with exponential backoff and jitter;
//! - versions committed by other instances arrive as [`VersionSeen`] (PostgreSQL NOTIFY), a
//!   listener reconnect as [`ReloadAll`]; every `reconcile_interval` one query compares the
//!   versions of all served libraries with the database, healing any lost notification.

use crate::event::Mutated;
use actix::prelude::*;
use bytestring::ByteString;
use librarian_core::Error;
use librarian_core::protocol::{ServerFrame, SyncState};
use librarian_store::Store;
use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// One loaded version of a library, serialized once as its `snapshot` frame.
#[derive(Debug)]
pub struct Snapshot {
    pub version: i64,
    /// The whole `{"type":"snapshot",…}` frame; cloning it shares the bytes.
    pub frame: ByteString,
    /// Number of rows, for metrics and logs.
    pub items: usize,
    /// When this instance first heard of a commit this snapshot is the first to include (for
    /// the commit → frame latency sessions report). `None` for loads no event asked for.
    pub pending_since: Option<Instant>,
}

impl Snapshot {
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
    /// The number of the last reload whose result this view shows (see [`Refresh`]).
    pub loaded: u64,
    /// Bumped when the database was found at a lower version than the view held (restored
    /// from a backup): the snapshot then steps back, and sessions say so (`reset`).
    pub generation: u64,
}

impl LibraryView {
    pub fn version(&self) -> Option<i64> {
        self.snapshot.as_ref().map(|s| s.version)
    }
}

/// Counters of the sync core, readable at any time (tests) and exported as Prometheus metrics.
#[derive(Debug, Clone)]
pub struct SyncStats {
    pub reloads_started: IntCounter,
    pub reloads_failed: IntCounter,
    /// `Mutated` events that needed no reload of their own (absorbed by one in flight).
    pub events_coalesced: IntCounter,
    pub snapshots_published: IntCounter,
    pub snapshot_bytes: IntCounter,
    /// Newer versions found by reconciliation (a notification had been lost).
    pub reconcile_catches: IntCounter,
    /// Times the cross-instance listener (re)connected.
    pub listener_connects: IntCounter,
    /// How long reloads take (read transaction + serialization).
    pub reload_seconds: Histogram,
}

impl Default for SyncStats {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric())
        };
        SyncStats {
            reloads_started: counter(
                "librarian_reloads_started_total",
                "Library reloads started.",
            ),
            reloads_failed: counter(
                "librarian_reloads_failed_total",
                "Library reloads that failed.",
            ),
            events_coalesced: counter(
                "librarian_events_coalesced_total",
                "Change events that needed no reload of their own.",
            ),
            snapshots_published: counter(
                "librarian_snapshots_published_total",
                "New snapshot versions published to sessions.",
            ),
            snapshot_bytes: counter(
                "librarian_snapshot_bytes_total",
                "Bytes of snapshot frames serialized (once per version).",
            ),
            reconcile_catches: counter(
                "librarian_reconcile_catches_total",
                "Newer versions found by reconciliation.",
            ),
            listener_connects: counter(
                "librarian_listener_connects_total",
                "Times the cross-instance listener (re)connected.",
            ),
            reload_seconds: Histogram::with_opts(
                HistogramOpts::new("librarian_reload_seconds", "Duration of library reloads.")
                    .buckets(prometheus::exponential_buckets(0.0002, 2.0, 14).unwrap_or_default()),
            )
            .unwrap_or_else(|_| unreachable_metric()),
        }
    }
}

/// Metric names and help texts above are constants that cannot be invalid.
fn unreachable_metric<T>() -> T {
    unreachable!("a constant metric definition was refused")
}

/// A plain copy of [`SyncStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStatsSnapshot {
    pub reloads_started: u64,
    pub reloads_failed: u64,
    pub events_coalesced: u64,
    pub snapshots_published: u64,
    pub snapshot_bytes: u64,
    pub reconcile_catches: u64,
    pub listener_connects: u64,
}

impl SyncStats {
    pub fn read(&self) -> SyncStatsSnapshot {
        SyncStatsSnapshot {
            reloads_started: self.reloads_started.get(),
            reloads_failed: self.reloads_failed.get(),
            events_coalesced: self.events_coalesced.get(),
            snapshots_published: self.snapshots_published.get(),
            snapshot_bytes: self.snapshot_bytes.get(),
            reconcile_catches: self.reconcile_catches.get(),
            listener_connects: self.listener_connects.get(),
        }
    }

    /// Adds every metric to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        for c in [
            &self.reloads_started,
            &self.reloads_failed,
            &self.events_coalesced,
            &self.snapshots_published,
            &self.snapshot_bytes,
            &self.reconcile_catches,
            &self.listener_connects,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(self.reload_seconds.clone()))
    }

    fn bump(counter: &IntCounter, by: u64) {
        counter.inc_by(by);
    }
}

/// Subscribe to a library. The answer's receiver holds the current view at once (a loading
/// status if this is the library's first subscriber) and changes with every newer view.
#[derive(Debug, Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe {
    pub library_id: Uuid,
}

/// A live subscription. Dropping it unsubscribes.
#[derive(Debug, MessageResponse)]
pub struct Subscription {
    pub views: watch::Receiver<LibraryView>,
    _guard: SubscriberGuard,
}

#[derive(Debug)]
struct SubscriberGuard {
    library_id: Uuid,
    actor: Addr<LibraryActor>,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.actor.do_send(Unsubscribe {
            library_id: self.library_id,
        });
    }
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Unsubscribe {
    library_id: Uuid,
}

/// A write to `library_id` is about to run in this process.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct WriteStarted {
    pub library_id: Uuid,
}

/// A write announced by [`WriteStarted`] is over (committed, refused or failed).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct WriteEnded {
    pub library_id: Uuid,
}

/// Library `library_id` is at `version` in the database (a notification from any instance,
/// or reconciliation).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct VersionSeen {
    pub library_id: Uuid,
    pub version: i64,
}

/// Load `library_id` afresh. Answers the number of the reload that will reflect the database
/// as of now or later: once a view's `loaded` reaches it, the view is not behind the database
/// as it was when this was sent. Sessions resuming above the view they are given use it to
/// tell a lagging instance (wait) from a database that went back (reset), G9.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "u64")]
pub struct Refresh {
    pub library_id: Uuid,
}

/// Events may have been missed (the listener reconnected): reload every served library.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ReloadAll;

/// A library behind the database for this long (a slow load, or a burst of writes that keeps
/// it behind) is announced as `syncing`; a shorter gap would flash a status nobody can read
/// and wake every session once more per version.
const SYNCING_AFTER: Duration = Duration::from_millis(50);

/// Backoff after failed reloads: 100 ms doubling up to 5 s, each delay jittered to 50–100 %.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

struct LibraryState {
    views: watch::Sender<LibraryView>,
    subscribers: usize,
    /// Version of the snapshot in `views`, -1 before the first load.
    held: i64,
    /// The highest version announced by any event.
    target: i64,
    loading: bool,
    failures: u32,
    /// Writes to this library under way in this process.
    writes_in_flight: u32,
    /// Since when a reload has been held back for writes in flight.
    deferred_since: Option<Instant>,
    /// Reload once more after the one in flight, whatever versions say ([`ReloadAll`]).
    recheck: bool,
    /// When the last reload started (for `min_reload_interval`).
    last_reload: Option<Instant>,
    /// A reload is scheduled for when `min_reload_interval` has passed.
    throttled: bool,
    /// Counts reloads started, so a timer can tell whether the one it was set for is still
    /// running, and [`Refresh`] which one will do.
    reload_seq: u64,
    /// Times the database was found below the held version.
    generation: u64,
    /// Since when the library has been behind (a commit announced, not yet published).
    behind_since: Option<Instant>,
    /// Distinguishes this state from an earlier one of the same library, so a reload that
    /// finishes after its library was dropped and re-subscribed is ignored.
    epoch: u64,
}

pub struct LibraryActor {
    store: Store,
    stats: Arc<SyncStats>,
    libraries: HashMap<Uuid, LibraryState>,
    next_epoch: u64,
    max_coalesce: Duration,
    reconcile_interval: Duration,
    min_reload_interval: Duration,
}

impl LibraryActor {
    pub fn new(store: Store, stats: Arc<SyncStats>, options: crate::SyncOptions) -> Self {
        LibraryActor {
            store,
            stats,
            libraries: HashMap::new(),
            next_epoch: 0,
            max_coalesce: options.max_coalesce,
            reconcile_interval: options.reconcile_interval,
            min_reload_interval: options.min_reload_interval,
        }
    }

    /// The database holds `version` of `library_id`: reload if that is news.
    fn seen(&mut self, library_id: Uuid, version: i64, ctx: &mut Context<Self>) -> bool {
        // A library nobody subscribes to needs no snapshot.
        let Some(state) = self.libraries.get_mut(&library_id) else {
            return false;
        };
        if version <= state.held.max(state.target) {
            SyncStats::bump(&self.stats.events_coalesced, 1);
            return false;
        }
        // The previous target, if still unloaded, is now covered by this one.
        if state.target > state.held {
            SyncStats::bump(&self.stats.events_coalesced, 1);
        }
        if state.behind_since.is_none() {
            state.behind_since = Some(Instant::now());
            let epoch = state.epoch;
            ctx.run_later(SYNCING_AFTER, move |act, ctx| {
                act.announce_if_still_behind(library_id, epoch, ctx)
            });
        }
        state.target = version;
        self.maybe_reload(library_id, ctx);
        true
    }

    /// `syncing` once the library has been behind for [`SYNCING_AFTER`] (re-armed until it
    /// catches up). An error status stays: it says more.
    fn announce_if_still_behind(&mut self, library_id: Uuid, epoch: u64, ctx: &mut Context<Self>) {
        let Some(state) = self.libraries.get_mut(&library_id) else {
            return;
        };
        let Some(since) = state.behind_since.filter(|_| state.epoch == epoch) else {
            return;
        };
        if state.held < 0 || state.target <= state.held {
            return;
        }
        let waited = since.elapsed();
        if waited < SYNCING_AFTER {
            ctx.run_later(SYNCING_AFTER - waited, move |act, ctx| {
                act.announce_if_still_behind(library_id, epoch, ctx)
            });
            return;
        }
        let target_version = state.target;
        state.views.send_if_modified(|v| {
            let next = SyncState::Syncing { target_version };
            let change =
                matches!(v.state, SyncState::Live | SyncState::Syncing { .. }) && v.state != next;
            if change {
                v.state = next;
            }
            change
        });
    }

    /// One query for the versions of every served library; reloads those that moved.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.libraries.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.libraries.keys().copied().collect();
        let store = self.store.clone();
        ctx.spawn(
            async move { store.library_versions(&ids).await }
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(versions) => {
                        act.database_reachable();
                        for (library_id, version) in versions {
                            if act.seen(library_id, version, ctx) {
                                tracing::info!(%library_id, version, "reconciliation found a newer version");
                                SyncStats::bump(&act.stats.reconcile_catches, 1);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation failed");
                        act.database_unreachable(&e);
                    }
                }),
        );
    }

    /// Starts a reload if the library is behind and none is in flight, unless writes are still
    /// under way and the reload has waited less than `max_coalesce` for them.
    fn maybe_reload(&mut self, library_id: Uuid, ctx: &mut Context<Self>) {
        let Some(state) = self.libraries.get_mut(&library_id) else {
            return;
        };
        if state.loading || state.target <= state.held {
            return;
        }
        if state.writes_in_flight > 0 {
            let now = Instant::now();
            match state.deferred_since {
                None => {
                    state.deferred_since = Some(now);
                    let epoch = state.epoch;
                    ctx.run_later(self.max_coalesce, move |act, ctx| {
                        if act
                            .libraries
                            .get(&library_id)
                            .is_some_and(|s| s.epoch == epoch)
                        {
                            act.maybe_reload(library_id, ctx);
                        }
                    });
                    return;
                }
                Some(since) if now.duration_since(since) < self.max_coalesce => return,
                Some(_) => {}
            }
        }
        if let Some(last) = state.last_reload {
            let since = last.elapsed();
            if since < self.min_reload_interval {
                if !state.throttled {
                    state.throttled = true;
                    let epoch = state.epoch;
                    ctx.run_later(self.min_reload_interval - since, move |act, ctx| {
                        if let Some(s) = act.libraries.get_mut(&library_id)
                            && s.epoch == epoch
                        {
                            s.throttled = false;
                            act.maybe_reload(library_id, ctx);
                        }
                    });
                }
                return;
            }
        }
        self.start_reload(library_id, ctx);
    }

    /// Reconciliation could not reach the database: every session learns it (`status error`),
    /// even when no write is under way to fail on its own.
    fn database_unreachable(&mut self, e: &Error) {
        let (code, message) = match e {
            Error::Unavailable(_) => ("database_unavailable", "the database is unavailable"),
            _ => (
                "reconcile_failed",
                "the library versions could not be checked",
            ),
        };
        let retry_in_ms = self.reconcile_interval.as_millis() as u64;
        for state in self.libraries.values() {
            state.views.send_modify(|v| {
                v.state = SyncState::Error {
                    code: code.to_owned(),
                    message: message.to_owned(),
                    retry_in_ms,
                }
            });
        }
    }

    /// Reconciliation reached the database again: clear errors it had set on libraries that
    /// are neither loading nor failing on their own.
    fn database_reachable(&mut self) {
        for state in self.libraries.values() {
            if state.loading || state.failures > 0 || state.held < 0 {
                continue;
            }
            let next = if state.target > state.held {
                SyncState::Syncing {
                    target_version: state.target,
                }
            } else {
                SyncState::Live
            };
            state.views.send_if_modified(|v| {
                let was_error = matches!(v.state, SyncState::Error { .. });
                if was_error {
                    v.state = next.clone();
                }
                was_error
            });
        }
    }

    fn start_reload(&mut self, library_id: Uuid, ctx: &mut Context<Self>) {
        let Some(state) = self.libraries.get_mut(&library_id) else {
            return;
        };
        if state.loading {
            return;
        }
        state.loading = true;
        state.deferred_since = None;
        state.last_reload = Some(Instant::now());
        state.reload_seq += 1;
        SyncStats::bump(&self.stats.reloads_started, 1);
        let (epoch, seq) = (state.epoch, state.reload_seq);
        let store = self.store.clone();
        let load = async move {
            let started = Instant::now();
            let result = store.load_library(library_id).await.and_then(serialize);
            (result, started.elapsed())
        };
        ctx.spawn(load.into_actor(self).map(move |(result, took), act, ctx| {
            act.reload_done(library_id, epoch, seq, result, took, ctx);
        }));
    }

    fn reload_done(
        &mut self,
        library_id: Uuid,
        epoch: u64,
        seq: u64,
        result: Result<Snapshot, Error>,
        took: Duration,
        ctx: &mut Context<Self>,
    ) {
        let Some(state) = self.libraries.get_mut(&library_id) else {
            return;
        };
        if state.epoch != epoch {
            return;
        }
        state.loading = false;
        match result {
            Ok(snapshot) => {
                state.failures = 0;
                state.target = state.target.max(snapshot.version);
                self.stats.reload_seconds.observe(took.as_secs_f64());
                tracing::debug!(%library_id, version = snapshot.version, items = snapshot.items,
                    bytes = snapshot.frame.len(), took_ms = took.as_secs_f64() * 1e3, "reloaded");
                let behind = state.target > snapshot.version || std::mem::take(&mut state.recheck);
                // Still behind after this load: `syncing` only if it has been so for a while
                // (otherwise the timer armed in `seen` announces it if it lasts).
                let next_state = match state.behind_since {
                    Some(since)
                        if state.target > snapshot.version && since.elapsed() >= SYNCING_AFTER =>
                    {
                        SyncState::Syncing {
                            target_version: state.target,
                        }
                    }
                    _ => SyncState::Live,
                };
                // Below the held version only if the database went back (restored from a
                // backup): then the view follows it, as a new generation.
                let went_back = state.held >= 0 && snapshot.version < state.held;
                if went_back {
                    tracing::warn!(%library_id, held = state.held, version = snapshot.version,
                        "the database holds an older version of the library than this instance served");
                    state.generation += 1;
                    state.target = snapshot.version;
                }
                if snapshot.version > state.held || went_back {
                    let mut snapshot = snapshot;
                    snapshot.pending_since = state.behind_since;
                    if snapshot.version >= state.target {
                        state.behind_since = None;
                    }
                    state.held = snapshot.version;
                    SyncStats::bump(&self.stats.snapshots_published, 1);
                    SyncStats::bump(&self.stats.snapshot_bytes, snapshot.frame.len() as u64);
                    state.views.send_replace(LibraryView {
                        snapshot: Some(Arc::new(snapshot)),
                        state: next_state,
                        loaded: seq,
                        generation: state.generation,
                    });
                } else {
                    // Same version as held (a recheck, or recovering from an error): the
                    // status and the reload number only.
                    state.views.send_if_modified(|v| {
                        let changed = v.state != next_state || v.loaded != seq;
                        v.state = next_state;
                        v.loaded = seq;
                        changed
                    });
                }
                if behind {
                    if state.target <= state.held {
                        // A recheck: versions say nothing, reload anyway.
                        self.start_reload(library_id, ctx);
                    } else {
                        self.maybe_reload(library_id, ctx);
                    }
                }
            }
            Err(e) => {
                state.failures += 1;
                SyncStats::bump(&self.stats.reloads_failed, 1);
                let delay = retry_delay(state.failures);
                tracing::warn!(%library_id, error = %e, retry_in_ms = delay.as_millis() as u64,
                    "reload failed");
                let (code, message) = match &e {
                    Error::Unavailable(_) => {
                        ("database_unavailable", "the database is unavailable")
                    }
                    _ => ("reload_failed", "the library could not be loaded"),
                };
                state.views.send_modify(|v| {
                    v.state = SyncState::Error {
                        code: code.to_owned(),
                        message: message.to_owned(),
                        retry_in_ms: delay.as_millis() as u64,
                    }
                });
                ctx.run_later(delay, move |act, ctx| {
                    if act
                        .libraries
                        .get(&library_id)
                        .is_some_and(|s| s.epoch == epoch)
                    {
                        act.start_reload(library_id, ctx);
                    }
                });
            }
        }
    }
}

fn serialize(snapshot: librarian_core::LibrarySnapshot) -> Result<Snapshot, Error> {
    let version = snapshot.version;
    let items = snapshot.len();
    let frame = serde_json::to_string(&ServerFrame::Snapshot(snapshot.into()))
        .map_err(|e| Error::Internal(format!("cannot serialize snapshot: {e}")))?;
    Ok(Snapshot {
        version,
        frame: ByteString::from(frame),
        items,
        pending_since: None,
    })
}

fn retry_delay(failures: u32) -> Duration {
    let exp = RETRY_BASE.saturating_mul(1 << failures.saturating_sub(1).min(10));
    let capped = exp.min(RETRY_MAX);
    capped.mul_f64(rand::rng().random_range(0.5..=1.0))
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
        let guard = SubscriberGuard {
            library_id,
            actor: ctx.address(),
        };
        if let Some(state) = self.libraries.get_mut(&library_id) {
            state.subscribers += 1;
            return Subscription {
                views: state.views.subscribe(),
                _guard: guard,
            };
        }
        let (views, rx) = watch::channel(LibraryView {
            snapshot: None,
            state: SyncState::Loading,
            loaded: 0,
            generation: 0,
        });
        self.next_epoch += 1;
        self.libraries.insert(
            library_id,
            LibraryState {
                views,
                subscribers: 1,
                held: -1,
                target: 0,
                loading: false,
                failures: 0,
                writes_in_flight: 0,
                deferred_since: None,
                recheck: false,
                last_reload: None,
                throttled: false,
                reload_seq: 0,
                generation: 0,
                behind_since: None,
                epoch: self.next_epoch,
            },
        );
        self.start_reload(library_id, ctx);
        Subscription {
            views: rx,
            _guard: guard,
        }
    }
}

impl Handler<Unsubscribe> for LibraryActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        if let Some(state) = self.libraries.get_mut(&msg.library_id) {
            state.subscribers = state.subscribers.saturating_sub(1);
            if state.subscribers == 0 {
                self.libraries.remove(&msg.library_id);
            }
        }
    }
}

impl Handler<Mutated> for LibraryActor {
    type Result = ();

    fn handle(&mut self, event: Mutated, ctx: &mut Context<Self>) {
        self.seen(event.library_id, event.version, ctx);
    }
}

impl Handler<VersionSeen> for LibraryActor {
    type Result = ();

    fn handle(&mut self, event: VersionSeen, ctx: &mut Context<Self>) {
        self.seen(event.library_id, event.version, ctx);
    }
}

impl Handler<ReloadAll> for LibraryActor {
    type Result = ();

    fn handle(&mut self, _: ReloadAll, ctx: &mut Context<Self>) {
        SyncStats::bump(&self.stats.listener_connects, 1);
        let ids: Vec<Uuid> = self.libraries.keys().copied().collect();
        for library_id in ids {
            if let Some(state) = self.libraries.get_mut(&library_id) {
                if state.loading {
                    state.recheck = true;
                } else {
                    self.start_reload(library_id, ctx);
                }
            }
        }
    }
}

impl Handler<Refresh> for LibraryActor {
    type Result = u64;

    fn handle(&mut self, msg: Refresh, ctx: &mut Context<Self>) -> u64 {
        let Some(state) = self.libraries.get_mut(&msg.library_id) else {
            return 0;
        };
        // The next reload to start began after this message: one in flight may have read the
        // database before the caller's reason to ask.
        let wanted = state.reload_seq + 1;
        if state.loading {
            state.recheck = true;
        } else {
            self.start_reload(msg.library_id, ctx);
        }
        wanted
    }
}

impl Handler<WriteStarted> for LibraryActor {
    type Result = ();

    fn handle(&mut self, msg: WriteStarted, _ctx: &mut Context<Self>) {
        if let Some(state) = self.libraries.get_mut(&msg.library_id) {
            state.writes_in_flight += 1;
        }
    }
}

impl Handler<WriteEnded> for LibraryActor {
    type Result = ();

    fn handle(&mut self, msg: WriteEnded, ctx: &mut Context<Self>) {
        if let Some(state) = self.libraries.get_mut(&msg.library_id) {
            // Saturating: a write that started before the first subscriber was not counted.
            state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
            if state.writes_in_flight == 0 {
                self.maybe_reload(msg.library_id, ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_frame_is_the_snapshot_frame_with_reset_set() {
        let library = librarian_core::LibrarySnapshot {
            version: 3,
            ..Default::default()
        };
        let snapshot = serialize(library.clone()).unwrap();
        let expected = serde_json::to_string(&ServerFrame::Snapshot(
            librarian_core::protocol::SnapshotFrame {
                reset: true,
                library,
            },
        ))
        .unwrap();
        assert_eq!(&*snapshot.reset_frame(), expected.as_str());
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        for failures in 1..20 {
            let d = retry_delay(failures);
            let ceiling = RETRY_BASE
                .saturating_mul(1 << (failures - 1).min(10))
                .min(RETRY_MAX);
            assert!(d <= ceiling && d >= ceiling / 2, "{failures}: {d:?}");
        }
    }
}
