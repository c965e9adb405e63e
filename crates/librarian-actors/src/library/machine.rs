//! The sync core's decisions, without I/O or a clock: events in (a subscription, a version
//! seen, a write starting or ending, a load finished, a timer), [`Action`]s out (start a
//! load, publish a view, wake me at). The actor glue in `mod.rs` performs the actions; tests
//! drive the machine with made-up instants, so coalescing, throttling, backoff and the
//! `syncing` delay are checked without waiting for anything.
//!
//! Rules, per library with at least one subscriber:
//! - a version above the held one starts a load, unless one is in flight: then one trailing
//!   load runs after it, and only if the version it loaded is still below the newest seen;
//! - while writes to the library are under way in this process, the load waits for them, up
//!   to `max_coalesce`, so a burst of N writes costs a few loads (G6) while a lone edit loads
//!   at once; two load starts are at least `min_reload_interval` apart;
//! - the view only moves to a higher version (G3), except when a load finds the database
//!   below it (restored from a backup): then it follows, as a new `generation`;
//! - `syncing` is announced only once the library has been behind for `syncing_after`;
//! - a failed load sets an `error` status and retries with backoff;
//! - reconciliation (one query for the versions of every served library) runs one at a time;
//!   a failed one sets an `error` status on every library until one succeeds.

use super::stats::SyncStats;
use super::view::{LibraryView, Snapshot};
use librarian_core::backoff::Backoff;
use librarian_core::protocol::SyncState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The machine's time constants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub max_coalesce: Duration,
    pub min_reload_interval: Duration,
    pub syncing_after: Duration,
    /// Announced as `retry_in_ms` when reconciliation fails.
    pub reconcile_interval: Duration,
    pub backoff: Backoff,
}

/// What the glue must do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Load the library; report with [`Machine::load_done`] and the same `epoch` and `seq`.
    Load {
        library_id: Uuid,
        epoch: u64,
        seq: u64,
    },
    /// Replace the view subscribers see.
    Publish { library_id: Uuid, view: LibraryView },
    /// Call [`Machine::wake`] at `at`.
    WakeAt {
        library_id: Uuid,
        epoch: u64,
        at: Instant,
    },
}

/// How a load ended.
#[derive(Debug)]
pub(crate) enum Loaded {
    Ok(Snapshot),
    /// `unavailable`: the database could not be reached (as opposed to any other failure).
    Failed {
        unavailable: bool,
    },
    /// The library no longer exists (deleted).
    Gone,
}

struct Lib {
    /// Tells this state from an earlier one of the same library (dropped, re-subscribed), so
    /// late loads and timers of the earlier one are ignored.
    epoch: u64,
    subscribers: usize,
    /// What subscribers see; changed only through [`Machine::step`].
    view: LibraryView,
    view_changed: bool,
    /// Version of the snapshot in `view`, -1 before the first load.
    held: i64,
    /// The highest version seen in any event.
    target: i64,
    /// Loads started so far; the one in flight, if any.
    seq: u64,
    loading: Option<u64>,
    /// Load once more whatever versions say (a refresh, or a failed load to retry).
    recheck: bool,
    failures: u32,
    /// The error status of the last failed load, until one succeeds.
    failure: Option<SyncState>,
    retry_at: Option<Instant>,
    writes_in_flight: u32,
    /// Since when a load has been held back for writes in flight.
    deferred_since: Option<Instant>,
    last_load: Option<Instant>,
    /// Since when the library has been behind (a version seen, not yet loaded).
    behind_since: Option<Instant>,
    generation: u64,
    /// The earliest wake-up already asked for.
    wake_at: Option<Instant>,
}

pub(crate) struct Machine {
    timing: Timing,
    stats: Arc<SyncStats>,
    /// A number in [0.5, 1] per retry (random in production, fixed in tests).
    jitter: fn() -> f64,
    libraries: HashMap<Uuid, Lib>,
    next_epoch: u64,
    /// Set while reconciliation failed: every library shows it.
    db_error: Option<SyncState>,
    reconciling: bool,
    /// Reconcile once more when the one in flight ends (it may predate a listener reconnect).
    reconcile_again: bool,
}

impl Machine {
    pub fn new(timing: Timing, stats: Arc<SyncStats>, jitter: fn() -> f64) -> Machine {
        Machine {
            timing,
            stats,
            jitter,
            libraries: HashMap::new(),
            next_epoch: 0,
            db_error: None,
            reconciling: false,
            reconcile_again: false,
        }
    }

    /// The view a new subscriber starts from, if the library is already served.
    pub fn current(&self, library_id: Uuid) -> Option<&LibraryView> {
        self.libraries.get(&library_id).map(|l| &l.view)
    }

    /// One more subscriber. A library's first subscriber starts its first load.
    pub fn subscribe(&mut self, library_id: Uuid, now: Instant) -> Vec<Action> {
        if let Some(lib) = self.libraries.get_mut(&library_id) {
            lib.subscribers += 1;
            return Vec::new();
        }
        self.next_epoch += 1;
        self.libraries.insert(
            library_id,
            Lib {
                epoch: self.next_epoch,
                subscribers: 1,
                view: LibraryView::loading(),
                view_changed: false,
                held: -1,
                target: 0,
                seq: 0,
                loading: None,
                recheck: false,
                failures: 0,
                failure: None,
                retry_at: None,
                writes_in_flight: 0,
                deferred_since: None,
                last_load: None,
                behind_since: None,
                generation: 0,
                wake_at: None,
            },
        );
        self.step(library_id, now)
    }

    /// One subscriber fewer; the last one leaving drops the library's state. Answers whether
    /// it was dropped.
    pub fn unsubscribe(&mut self, library_id: Uuid) -> bool {
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return false;
        };
        lib.subscribers = lib.subscribers.saturating_sub(1);
        if lib.subscribers == 0 {
            self.libraries.remove(&library_id);
            return true;
        }
        false
    }

    /// The database holds `version` of the library. Answers whether that was news.
    pub fn seen(&mut self, library_id: Uuid, version: i64, now: Instant) -> (bool, Vec<Action>) {
        // A library nobody subscribes to needs no snapshot.
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return (false, Vec::new());
        };
        if version <= lib.held.max(lib.target) {
            self.stats.events_coalesced.inc();
            return (false, Vec::new());
        }
        // The previous target, if still unloaded, is now covered by this one.
        if lib.target > lib.held {
            self.stats.events_coalesced.inc();
        }
        lib.behind_since.get_or_insert(now);
        lib.target = version;
        (true, self.step(library_id, now))
    }

    pub fn write_started(&mut self, library_id: Uuid) {
        if let Some(lib) = self.libraries.get_mut(&library_id) {
            lib.writes_in_flight += 1;
        }
    }

    pub fn write_ended(&mut self, library_id: Uuid, now: Instant) -> Vec<Action> {
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return Vec::new();
        };
        // Saturating: a write that started before the first subscriber was not counted.
        lib.writes_in_flight = lib.writes_in_flight.saturating_sub(1);
        self.step(library_id, now)
    }

    /// Load afresh; answers the number of the load that will reflect the database as of now.
    pub fn refresh(&mut self, library_id: Uuid, now: Instant) -> (u64, Vec<Action>) {
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return (0, Vec::new());
        };
        // The next load to start begins after this call: one in flight may have read the
        // database before the caller's reason to ask.
        let wanted = lib.seq + 1;
        lib.recheck = true;
        (wanted, self.step(library_id, now))
    }

    /// A timer asked for with [`Action::WakeAt`] fired.
    pub fn wake(&mut self, library_id: Uuid, epoch: u64, now: Instant) -> Vec<Action> {
        let Some(lib) = self
            .libraries
            .get_mut(&library_id)
            .filter(|l| l.epoch == epoch)
        else {
            return Vec::new();
        };
        if lib.wake_at.is_some_and(|at| at <= now) {
            lib.wake_at = None;
        }
        self.step(library_id, now)
    }

    /// Load `seq` of the library ended.
    pub fn load_done(
        &mut self,
        library_id: Uuid,
        epoch: u64,
        seq: u64,
        loaded: Loaded,
        now: Instant,
    ) -> Vec<Action> {
        let Some(lib) = self
            .libraries
            .get_mut(&library_id)
            .filter(|l| l.epoch == epoch)
        else {
            return Vec::new();
        };
        if lib.loading != Some(seq) {
            return Vec::new();
        }
        lib.loading = None;
        match loaded {
            Loaded::Ok(mut snapshot) => {
                lib.failures = 0;
                lib.failure = None;
                lib.retry_at = None;
                // Below the held version only if the database went back (restored from a
                // backup): then the view follows it, as a new generation.
                let went_back = lib.held >= 0 && snapshot.version < lib.held;
                if went_back {
                    tracing::warn!(%library_id, held = lib.held, version = snapshot.version,
                        "the database holds an older version of the library than this instance served");
                    lib.generation += 1;
                    lib.target = snapshot.version;
                }
                lib.target = lib.target.max(snapshot.version);
                lib.view.loaded = seq;
                lib.view.generation = lib.generation;
                lib.view_changed = true;
                if snapshot.version > lib.held || went_back {
                    snapshot.pending_since = lib.behind_since;
                    if snapshot.version >= lib.target {
                        lib.behind_since = None;
                    }
                    lib.held = snapshot.version;
                    self.stats.snapshots_published.inc();
                    self.stats.snapshot_bytes.inc_by(snapshot.rows.bytes as u64);
                    lib.view.snapshot = Some(Arc::new(snapshot));
                }
            }
            Loaded::Gone => {
                lib.failures = 0;
                lib.failure = None;
                lib.retry_at = None;
                lib.view.loaded = seq;
                if !lib.view.gone {
                    tracing::info!(%library_id, "the library was deleted");
                    lib.view.gone = true;
                    lib.view_changed = true;
                }
            }
            Loaded::Failed { unavailable } => {
                lib.failures += 1;
                self.stats.reloads_failed.inc();
                let delay = self.timing.backoff.delay(lib.failures, (self.jitter)());
                let (code, message) = if unavailable {
                    ("database_unavailable", "the database is unavailable")
                } else {
                    ("reload_failed", "the library could not be loaded")
                };
                lib.failure = Some(SyncState::Error {
                    code: code.to_owned(),
                    message: message.to_owned(),
                    retry_in_ms: delay.as_millis() as u64,
                });
                lib.retry_at = Some(now + delay);
                // Retried whatever the versions say (the failed load may have been a recheck).
                lib.recheck = true;
            }
        }
        self.step(library_id, now)
    }

    /// The libraries to reconcile, unless a reconciliation is already running.
    pub fn reconcile_start(&mut self) -> Option<Vec<Uuid>> {
        if self.reconciling {
            self.reconcile_again = true;
            return None;
        }
        if self.libraries.is_empty() {
            return None;
        }
        self.reconciling = true;
        Some(self.libraries.keys().copied().collect())
    }

    /// Reconciliation ended: the versions it read, or whether it failed for lack of a
    /// database. Answers the libraries it found behind, the actions, and whether another
    /// reconciliation should start at once.
    pub fn reconcile_done(
        &mut self,
        result: Result<Vec<(Uuid, i64)>, bool>,
        now: Instant,
    ) -> (Vec<Uuid>, Vec<Action>, bool) {
        self.reconciling = false;
        let again = std::mem::take(&mut self.reconcile_again);
        let mut caught = Vec::new();
        let mut actions = Vec::new();
        match result {
            Ok(versions) => {
                self.db_error = None;
                // A served library the query did not find was deleted: one load says so.
                let found: std::collections::HashSet<Uuid> =
                    versions.iter().map(|(id, _)| *id).collect();
                for (library_id, lib) in self.libraries.iter_mut() {
                    if !found.contains(library_id) && !lib.view.gone {
                        lib.recheck = true;
                    }
                }
                for (library_id, version) in versions {
                    let (news, a) = self.seen(library_id, version, now);
                    if news {
                        self.stats.reconcile_catches.inc();
                        caught.push(library_id);
                    }
                    actions.extend(a);
                }
            }
            Err(unavailable) => {
                let (code, message) = if unavailable {
                    ("database_unavailable", "the database is unavailable")
                } else {
                    (
                        "reconcile_failed",
                        "the library versions could not be checked",
                    )
                };
                self.db_error = Some(SyncState::Error {
                    code: code.to_owned(),
                    message: message.to_owned(),
                    retry_in_ms: self.timing.reconcile_interval.as_millis() as u64,
                });
            }
        }
        // Every library's status may have changed (an error set or cleared).
        let ids: Vec<Uuid> = self.libraries.keys().copied().collect();
        for library_id in ids {
            actions.extend(self.step(library_id, now));
        }
        (caught, actions, again)
    }

    /// Starts a load if one is due, publishes the view if it changed, and asks to be woken
    /// for the next deadline.
    fn step(&mut self, library_id: Uuid, now: Instant) -> Vec<Action> {
        let timing = self.timing;
        let mut actions = Vec::new();
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return actions;
        };
        let mut wake: Option<Instant> = None;
        let mut wake_for = |at: Instant| wake = Some(wake.map_or(at, |w| w.min(at)));

        let wants_load = lib.loading.is_none() && (lib.target > lib.held || lib.recheck);
        if wants_load {
            let mut ready_at = lib.retry_at.unwrap_or(now);
            if lib.writes_in_flight > 0 {
                let since = *lib.deferred_since.get_or_insert(now);
                ready_at = ready_at.max(since + timing.max_coalesce);
            }
            if let Some(last) = lib.last_load {
                ready_at = ready_at.max(last + timing.min_reload_interval);
            }
            if ready_at <= now {
                lib.seq += 1;
                lib.loading = Some(lib.seq);
                lib.recheck = false;
                lib.last_load = Some(now);
                lib.deferred_since = None;
                lib.retry_at = None;
                self.stats.reloads_started.inc();
                actions.push(Action::Load {
                    library_id,
                    epoch: lib.epoch,
                    seq: lib.seq,
                });
            } else {
                wake_for(ready_at);
            }
        }

        let behind = lib.held >= 0 && lib.target > lib.held;
        let announce_at = lib
            .behind_since
            .filter(|_| behind)
            .map(|since| since + timing.syncing_after);
        let state = if let Some(failure) = &lib.failure {
            failure.clone()
        } else if lib.held < 0 {
            SyncState::Loading
        } else if let Some(db_error) = &self.db_error {
            db_error.clone()
        } else if announce_at.is_some_and(|at| at <= now) {
            SyncState::Syncing {
                target_version: lib.target,
            }
        } else {
            if let Some(at) = announce_at {
                wake_for(at);
            }
            SyncState::Live
        };
        if state != lib.view.state {
            lib.view.state = state;
            lib.view_changed = true;
        }
        if std::mem::take(&mut lib.view_changed) {
            actions.push(Action::Publish {
                library_id,
                view: lib.view.clone(),
            });
        }
        if let Some(at) = wake
            && lib.wake_at.is_none_or(|w| at < w || w <= now)
        {
            lib.wake_at = Some(at);
            actions.push(Action::WakeAt {
                library_id,
                epoch: lib.epoch,
                at,
            });
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn machine(min_reload_interval: Duration) -> Machine {
        Machine::new(
            Timing {
                max_coalesce: 20 * MS,
                min_reload_interval,
                syncing_after: 50 * MS,
                reconcile_interval: 5000 * MS,
                backoff: Backoff::DEFAULT,
            },
            Arc::new(SyncStats::default()),
            || 1.0,
        )
    }

    fn snapshot(version: i64) -> Snapshot {
        Snapshot::new(
            super::super::Rows::new(librarian_core::LibrarySnapshot {
                version,
                ..Default::default()
            })
            .unwrap(),
            None,
        )
    }

    fn loads(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Load { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    fn published(actions: &[Action]) -> Vec<(Option<i64>, SyncState)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Publish { view, .. } => Some((view.version(), view.state.clone())),
                _ => None,
            })
            .collect()
    }

    fn wakes(actions: &[Action]) -> Vec<Instant> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::WakeAt { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    /// A library subscribed and loaded at `version`, at `t0`.
    fn loaded_at(m: &mut Machine, lib: Uuid, version: i64, t0: Instant) -> u64 {
        let a = m.subscribe(lib, t0);
        assert_eq!(loads(&a), vec![1]);
        let epoch = m.libraries[&lib].epoch;
        let a = m.load_done(lib, epoch, 1, Loaded::Ok(snapshot(version)), t0);
        assert_eq!(published(&a), vec![(Some(version), SyncState::Live)]);
        epoch
    }

    #[test]
    fn a_lone_edit_loads_at_once_and_a_second_version_waits_for_the_load_in_flight() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        let epoch = loaded_at(&mut m, lib, 0, t0);
        let (news, a) = m.seen(lib, 1, t0);
        assert!(news);
        assert_eq!(loads(&a), vec![2]);
        // Versions 2 and 3 while load 2 runs: no load now, one trailing load after it.
        assert!(loads(&m.seen(lib, 2, t0).1).is_empty());
        assert!(loads(&m.seen(lib, 3, t0).1).is_empty());
        let a = m.load_done(lib, epoch, 2, Loaded::Ok(snapshot(1)), t0 + MS);
        assert_eq!(loads(&a), vec![3]);
        assert_eq!(published(&a), vec![(Some(1), SyncState::Live)]);
        let a = m.load_done(lib, epoch, 3, Loaded::Ok(snapshot(3)), t0 + 2 * MS);
        assert!(loads(&a).is_empty());
        assert_eq!(published(&a), vec![(Some(3), SyncState::Live)]);
        // A version already held is no news.
        assert!(!m.seen(lib, 2, t0 + 3 * MS).0);
    }

    #[test]
    fn a_load_waits_for_writes_in_flight_but_at_most_max_coalesce() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        loaded_at(&mut m, lib, 0, t0);
        m.write_started(lib);
        m.write_started(lib);
        let a = m.seen(lib, 1, t0).1;
        assert!(loads(&a).is_empty());
        assert_eq!(wakes(&a), vec![t0 + 20 * MS]);
        // The other write ends before the deadline: load at once.
        assert!(loads(&m.write_ended(lib, t0 + 5 * MS)).is_empty());
        assert_eq!(loads(&m.write_ended(lib, t0 + 6 * MS)), vec![2]);

        // A write that never ends: the deadline loads anyway.
        let (mut m, lib) = (machine(Duration::ZERO), Uuid::now_v7());
        let epoch = loaded_at(&mut m, lib, 0, t0);
        m.write_started(lib);
        assert!(loads(&m.seen(lib, 1, t0).1).is_empty());
        assert!(loads(&m.wake(lib, epoch, t0 + 19 * MS)).is_empty());
        assert_eq!(loads(&m.wake(lib, epoch, t0 + 20 * MS)), vec![2]);
    }

    #[test]
    fn min_reload_interval_spaces_load_starts() {
        let (mut m, lib, t0) = (machine(30 * MS), Uuid::now_v7(), Instant::now());
        let epoch = loaded_at(&mut m, lib, 0, t0);
        let a = m.seen(lib, 1, t0 + 10 * MS).1;
        assert!(loads(&a).is_empty());
        assert_eq!(wakes(&a), vec![t0 + 30 * MS]);
        assert_eq!(loads(&m.wake(lib, epoch, t0 + 30 * MS)), vec![2]);
    }

    #[test]
    fn syncing_is_announced_only_after_being_behind_for_a_while() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        let epoch = loaded_at(&mut m, lib, 0, t0);
        let a = m.seen(lib, 1, t0).1;
        assert!(
            published(&a).is_empty(),
            "no syncing for a load that may be quick"
        );
        assert_eq!(wakes(&a), vec![t0 + 50 * MS]);
        // A write committed during the load: still no flicker when the load ends quickly.
        m.seen(lib, 2, t0 + MS);
        let a = m.load_done(lib, epoch, 2, Loaded::Ok(snapshot(1)), t0 + 2 * MS);
        assert_eq!(published(&a), vec![(Some(1), SyncState::Live)]);
        // Behind for 50 ms: announced, with the version being loaded.
        let a = m.wake(lib, epoch, t0 + 50 * MS);
        assert_eq!(
            published(&a),
            vec![(Some(1), SyncState::Syncing { target_version: 2 })]
        );
        let a = m.load_done(lib, epoch, 3, Loaded::Ok(snapshot(2)), t0 + 60 * MS);
        assert_eq!(published(&a), vec![(Some(2), SyncState::Live)]);
    }

    #[test]
    fn a_failed_load_reports_an_error_and_retries_with_backoff() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        let epoch = loaded_at(&mut m, lib, 0, t0);
        m.seen(lib, 1, t0);
        let a = m.load_done(lib, epoch, 2, Loaded::Failed { unavailable: true }, t0);
        let error = SyncState::Error {
            code: "database_unavailable".into(),
            message: "the database is unavailable".into(),
            retry_in_ms: 100,
        };
        assert_eq!(published(&a), vec![(Some(0), error)]);
        // Woken before the retry is due (e.g. for the syncing delay): it asks again.
        let a = m.wake(lib, epoch, t0 + 50 * MS);
        assert!(loads(&a).is_empty());
        assert_eq!(wakes(&a), vec![t0 + 100 * MS]);
        assert!(loads(&m.wake(lib, epoch, t0 + 99 * MS)).is_empty());
        assert_eq!(loads(&m.wake(lib, epoch, t0 + 100 * MS)), vec![3]);
        // Twice in a row: twice as long.
        let a = m.load_done(
            lib,
            epoch,
            3,
            Loaded::Failed { unavailable: false },
            t0 + 100 * MS,
        );
        assert_eq!(wakes(&a), vec![t0 + 300 * MS]);
        assert!(loads(&m.wake(lib, epoch, t0 + 299 * MS)).is_empty());
        let a = m.wake(lib, epoch, t0 + 300 * MS);
        let a2 = m.load_done(
            lib,
            epoch,
            loads(&a)[0],
            Loaded::Ok(snapshot(1)),
            t0 + 301 * MS,
        );
        assert_eq!(published(&a2), vec![(Some(1), SyncState::Live)]);
    }

    #[test]
    fn a_refresh_loads_again_after_the_load_in_flight_and_says_which_load_settles_it() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        let epoch = loaded_at(&mut m, lib, 5, t0);
        m.seen(lib, 6, t0);
        // Load 2 is in flight: the refresh is settled by load 3.
        let (wanted, a) = m.refresh(lib, t0);
        assert_eq!((wanted, loads(&a)), (3, vec![]));
        let a = m.load_done(lib, epoch, 2, Loaded::Ok(snapshot(6)), t0 + MS);
        assert_eq!(loads(&a), vec![3]);
        let a = m.load_done(lib, epoch, 3, Loaded::Ok(snapshot(6)), t0 + 2 * MS);
        let Some(Action::Publish { view, .. }) = a.first() else {
            panic!("{a:?}")
        };
        assert_eq!((view.loaded, view.version()), (3, Some(6)));
    }

    #[test]
    fn a_database_that_went_back_is_followed_as_a_new_generation() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        let epoch = loaded_at(&mut m, lib, 9, t0);
        let (_, a) = m.refresh(lib, t0);
        assert_eq!(loads(&a), vec![2]);
        let a = m.load_done(lib, epoch, 2, Loaded::Ok(snapshot(4)), t0);
        let Some(Action::Publish { view, .. }) = a.first() else {
            panic!("{a:?}")
        };
        assert_eq!((view.version(), view.generation), (Some(4), 1));
        // And then moves on from there.
        assert!(m.seen(lib, 5, t0).0);
    }

    #[test]
    fn reconciliation_runs_one_at_a_time_and_its_failure_shows_on_every_library() {
        let (mut m, t0) = (machine(Duration::ZERO), Instant::now());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        loaded_at(&mut m, a, 1, t0);
        loaded_at(&mut m, b, 1, t0);
        assert_eq!(m.reconcile_start().map(|ids| ids.len()), Some(2));
        assert!(m.reconcile_start().is_none(), "one in flight");
        let (caught, actions, again) = m.reconcile_done(Err(true), t0);
        assert!(
            caught.is_empty() && again,
            "the refused one asks for another run"
        );
        let errors = published(&actions)
            .into_iter()
            .filter(|(_, s)| matches!(s, SyncState::Error { .. }))
            .count();
        assert_eq!(errors, 2);
        m.reconcile_start();
        let (caught, actions, again) = m.reconcile_done(Ok(vec![(a, 2), (b, 1)]), t0);
        assert_eq!((caught, again), (vec![a], false));
        assert_eq!(loads(&actions), vec![2]);
        assert_eq!(
            published(&actions)
                .into_iter()
                .filter(|(_, s)| *s == SyncState::Live)
                .count(),
            2
        );
    }

    #[test]
    fn late_events_of_a_dropped_library_are_ignored() {
        let (mut m, lib, t0) = (machine(Duration::ZERO), Uuid::now_v7(), Instant::now());
        let old = loaded_at(&mut m, lib, 1, t0);
        m.seen(lib, 2, t0);
        assert!(m.unsubscribe(lib));
        let a = m.subscribe(lib, t0);
        assert_eq!(loads(&a), vec![1]);
        assert!(
            m.load_done(lib, old, 2, Loaded::Ok(snapshot(2)), t0)
                .is_empty()
        );
        assert!(m.wake(lib, old, t0 + 100 * MS).is_empty());
        assert_eq!(
            m.current(lib).map(|v| v.state.clone()),
            Some(SyncState::Loading)
        );
    }
}
