//! `PresenceActor`: who has a library open right now, and which version each session holds
//! (DESIGN §9, presence and delivery receipts).
//!
//! Sessions join a library (and leave by dropping their [`PresenceSubscription`]) and report
//! each `seen` version. Per library the actor publishes one `presence` frame, serialized once
//! and shared through a `watch` (latest wins: a slow session skips lists, it never holds up
//! anyone), at most every `min_interval` (100 ms): a burst of changes costs one frame.
//!
//! With PostgreSQL, sessions of other instances count too: each instance writes its own
//! sessions of a library (coalesced like frames) and notifies `librarian_presence`; the others
//! read that library's rows again. Each instance heartbeats every `heartbeat`; an instance
//! silent for `expiry` is ignored by readers and reaped by the next live heartbeat, which
//! notifies the libraries it had. So a killed instance's sessions stop counting within
//! `expiry + heartbeat` (+ one `min_interval`). On SQLite (one instance) all of it is memory.

use actix::prelude::*;
use bytestring::ByteString;
use librarian_core::protocol::{Presence, PresenceSession, ServerFrame};
use librarian_store::Store;
use librarian_store::presence::PresenceRow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Presence timing (`[presence]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct PresenceOptions {
    /// The least time between two `presence` frames of one library (and between two writes
    /// or reads of its rows on PostgreSQL).
    pub min_interval: Duration,
    /// How often this instance proves it is alive (PostgreSQL).
    pub heartbeat: Duration,
    /// An instance silent this long no longer counts (PostgreSQL).
    pub expiry: Duration,
}

impl Default for PresenceOptions {
    fn default() -> Self {
        PresenceOptions {
            min_interval: Duration::from_millis(100),
            heartbeat: Duration::from_secs(5),
            expiry: Duration::from_secs(15),
        }
    }
}

/// A session opens on a library. Answers the library's `presence` frames.
#[derive(Debug, Message)]
#[rtype(result = "PresenceSubscription")]
pub struct Join {
    pub library_id: Uuid,
    pub session: PresenceSession,
}

/// The latest `presence` frame of a library (`None` before the first). Dropping it leaves.
#[derive(Debug, MessageResponse)]
pub struct PresenceSubscription {
    pub frames: watch::Receiver<Option<ByteString>>,
    _guard: LeaveGuard,
}

#[derive(Debug)]
struct LeaveGuard {
    library_id: Uuid,
    session_id: Uuid,
    actor: Addr<PresenceActor>,
}

impl Drop for LeaveGuard {
    fn drop(&mut self) {
        self.actor.do_send(Leave {
            library_id: self.library_id,
            session_id: self.session_id,
        });
    }
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Leave {
    library_id: Uuid,
    session_id: Uuid,
}

/// A session applied `version` (its client's `seen`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SeenVersion {
    pub library_id: Uuid,
    pub session_id: Uuid,
    pub version: i64,
}

/// Another instance's sessions of a library changed (a `librarian_presence` notification).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct RemoteChanged {
    pub library_id: Uuid,
    pub instance_id: Uuid,
}

/// The listener (re)connected: notifications may have been lost, read every library again.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct PresenceResync;

#[derive(Default)]
struct Lib {
    local: BTreeMap<Uuid, PresenceSession>,
    remote: Vec<PresenceSession>,
    frames: Option<watch::Sender<Option<ByteString>>>,
    publish: Gate,
    // PostgreSQL only: this instance's rows to write, and the others' to read.
    dirty: HashSet<Uuid>,
    gone: HashSet<Uuid>,
    write: Gate,
    read: Gate,
}

/// Coalesces one kind of work of one library: at most one at a time, at most every
/// `min_interval`, and one more afterwards if asked for meanwhile.
#[derive(Default)]
struct Gate {
    last: Option<Instant>,
    /// A timer or the work itself is pending.
    busy: bool,
    again: bool,
}

impl Gate {
    /// When the work may run (now or later), or `None` if it is already pending (it will
    /// run again afterwards).
    fn ask(&mut self, now: Instant, min: Duration) -> Option<Duration> {
        if self.busy {
            self.again = true;
            return None;
        }
        self.busy = true;
        Some(
            self.last
                .map_or(Duration::ZERO, |l| (l + min).saturating_duration_since(now)),
        )
    }

    fn started(&mut self, now: Instant) {
        self.last = Some(now);
        self.again = false;
    }

    /// The work ended; answers whether it must run again.
    fn ended(&mut self) -> bool {
        self.busy = false;
        std::mem::take(&mut self.again)
    }
}

#[derive(Clone, Copy)]
enum Work {
    Publish,
    Write,
    Read,
}

pub struct PresenceActor {
    store: Store,
    instance: Uuid,
    shared: bool,
    options: PresenceOptions,
    libraries: HashMap<Uuid, Lib>,
}

impl PresenceActor {
    pub fn new(store: Store, options: PresenceOptions) -> Self {
        PresenceActor {
            shared: store.presence_is_shared(),
            store,
            instance: Uuid::now_v7(),
            options,
            libraries: HashMap::new(),
        }
    }

    /// This instance's id in the presence tables.
    pub fn instance(&self) -> Uuid {
        self.instance
    }

    fn ask(&mut self, library_id: Uuid, work: Work, ctx: &mut Context<Self>) {
        if matches!(work, Work::Write | Work::Read) && !self.shared {
            return;
        }
        let min = self.options.min_interval;
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return;
        };
        let gate = match work {
            Work::Publish => &mut lib.publish,
            Work::Write => &mut lib.write,
            Work::Read => &mut lib.read,
        };
        if let Some(delay) = gate.ask(Instant::now(), min) {
            ctx.run_later(delay, move |act, ctx| act.run(library_id, work, ctx));
        }
    }

    fn run(&mut self, library_id: Uuid, work: Work, ctx: &mut Context<Self>) {
        let Some(lib) = self.libraries.get_mut(&library_id) else {
            return;
        };
        let now = Instant::now();
        match work {
            Work::Publish => {
                lib.publish.started(now);
                publish(lib);
                if lib.publish.ended() {
                    self.ask(library_id, Work::Publish, ctx);
                }
            }
            Work::Write => {
                lib.write.started(now);
                let upsert: Vec<PresenceRow> = lib
                    .dirty
                    .drain()
                    .filter_map(|id| lib.local.get(&id))
                    .map(|s| PresenceRow {
                        session_id: s.session_id,
                        user_id: s.user_id.clone(),
                        seen_version: s.seen_version,
                        connected_at: s.connected_at,
                    })
                    .collect();
                let gone: Vec<Uuid> = lib.gone.drain().collect();
                let (store, instance) = (self.store.clone(), self.instance);
                let work = async move {
                    let result = store
                        .presence_write(instance, library_id, &upsert, &gone)
                        .await;
                    (result, upsert, gone)
                };
                ctx.spawn(
                    work.into_actor(self)
                        .map(move |(result, upsert, gone), act, ctx| {
                            let Some(lib) = act.libraries.get_mut(&library_id) else {
                                return;
                            };
                            let mut again = lib.write.ended();
                            if let Err(e) = result {
                                // Kept for the next try (the next change or heartbeat).
                                tracing::warn!(%library_id, error = %e, "presence write failed");
                                lib.dirty.extend(upsert.iter().map(|r| r.session_id));
                                lib.gone.extend(gone);
                                again = false;
                            }
                            if again {
                                act.ask(library_id, Work::Write, ctx);
                            }
                            act.drop_if_idle(library_id);
                        }),
                );
            }
            Work::Read => {
                lib.read.started(now);
                let (store, instance) = (self.store.clone(), self.instance);
                let expiry_ms = self.options.expiry.as_millis() as i64;
                let work =
                    async move { store.presence_read(instance, library_id, expiry_ms).await };
                ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
                    let Some(lib) = act.libraries.get_mut(&library_id) else {
                        return;
                    };
                    let again = lib.read.ended();
                    match result {
                        Ok(remote) if remote != lib.remote => {
                            lib.remote = remote;
                            act.ask(library_id, Work::Publish, ctx);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%library_id, error = %e, "presence read failed"),
                    }
                    if again {
                        act.ask(library_id, Work::Read, ctx);
                    }
                }));
            }
        }
    }

    /// A library with no local session left goes once its last rows are written.
    fn drop_if_idle(&mut self, library_id: Uuid) {
        if let Some(lib) = self.libraries.get(&library_id)
            && lib.local.is_empty()
            && lib.gone.is_empty()
            && !lib.write.busy
        {
            self.libraries.remove(&library_id);
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let (store, instance) = (self.store.clone(), self.instance);
        let expiry_ms = self.options.expiry.as_millis() as i64;
        let work = async move { store.presence_heartbeat(instance, expiry_ms).await };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok((created, reaped)) => {
                let ids: Vec<Uuid> = act.libraries.keys().copied().collect();
                for library_id in ids {
                    let Some(lib) = act.libraries.get_mut(&library_id) else {
                        continue;
                    };
                    // New, or reaped while stalled: our sessions are written again. Changes a
                    // failed write left behind are retried now too.
                    if created {
                        lib.dirty.extend(lib.local.keys().copied());
                    }
                    if !lib.dirty.is_empty() || !lib.gone.is_empty() {
                        act.ask(library_id, Work::Write, ctx);
                    }
                    if reaped.contains(&library_id) {
                        act.ask(library_id, Work::Read, ctx);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
        }));
    }
}

/// Builds and shares the library's `presence` frame, if it changed.
fn publish(lib: &mut Lib) {
    let mut sessions: Vec<PresenceSession> = lib
        .local
        .values()
        .chain(lib.remote.iter())
        .cloned()
        .collect();
    // Remote rows never hold this instance's sessions (the read skips them): no duplicates.
    sessions.sort_by_key(|s| (s.connected_at, s.session_id));
    let frame = serde_json::to_string(&ServerFrame::Presence(Presence { sessions }))
        .map(ByteString::from)
        .ok();
    if let Some(frames) = &lib.frames {
        frames.send_if_modified(|current| {
            if *current == frame {
                return false;
            }
            *current = frame;
            true
        });
    }
}

impl Actor for PresenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.shared {
            self.heartbeat(ctx);
            ctx.run_interval(self.options.heartbeat, |act, ctx| act.heartbeat(ctx));
        }
    }
}

impl Handler<Join> for PresenceActor {
    type Result = PresenceSubscription;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> PresenceSubscription {
        let library_id = msg.library_id;
        let session_id = msg.session.session_id;
        let first = !self.libraries.contains_key(&library_id);
        let lib = self.libraries.entry(library_id).or_default();
        let frames = match &lib.frames {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(None);
                lib.frames = Some(tx);
                rx
            }
        };
        lib.local.insert(session_id, msg.session);
        lib.gone.remove(&session_id);
        lib.dirty.insert(session_id);
        self.ask(library_id, Work::Publish, ctx);
        self.ask(library_id, Work::Write, ctx);
        if first {
            self.ask(library_id, Work::Read, ctx);
        }
        PresenceSubscription {
            frames,
            _guard: LeaveGuard {
                library_id,
                session_id,
                actor: ctx.address(),
            },
        }
    }
}

impl Handler<Leave> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        let Some(lib) = self.libraries.get_mut(&msg.library_id) else {
            return;
        };
        if lib.local.remove(&msg.session_id).is_none() {
            return;
        }
        lib.dirty.remove(&msg.session_id);
        if self.shared {
            lib.gone.insert(msg.session_id);
        }
        if lib.local.is_empty() {
            lib.frames = None;
        } else {
            self.ask(msg.library_id, Work::Publish, ctx);
        }
        self.ask(msg.library_id, Work::Write, ctx);
        self.drop_if_idle(msg.library_id);
    }
}

impl Handler<SeenVersion> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: SeenVersion, ctx: &mut Context<Self>) {
        let Some(lib) = self.libraries.get_mut(&msg.library_id) else {
            return;
        };
        let Some(session) = lib.local.get_mut(&msg.session_id) else {
            return;
        };
        // Sessions send only increasing versions, except after a `reset` snapshot (the
        // database went back): the latest report is the truth.
        if session.seen_version == Some(msg.version) {
            return;
        }
        session.seen_version = Some(msg.version);
        lib.dirty.insert(msg.session_id);
        self.ask(msg.library_id, Work::Publish, ctx);
        self.ask(msg.library_id, Work::Write, ctx);
    }
}

impl Handler<RemoteChanged> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteChanged, ctx: &mut Context<Self>) {
        if msg.instance_id != self.instance {
            self.ask(msg.library_id, Work::Read, ctx);
        }
    }
}

impl Handler<PresenceResync> for PresenceActor {
    type Result = ();

    fn handle(&mut self, _: PresenceResync, ctx: &mut Context<Self>) {
        let ids: Vec<Uuid> = self.libraries.keys().copied().collect();
        for library_id in ids {
            self.ask(library_id, Work::Read, ctx);
        }
    }
}

/// Ends this instance's presence (its rows go, the other instances are told). For a clean
/// shutdown; a killed instance expires instead.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct PresenceStop;

impl Handler<PresenceStop> for PresenceActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: PresenceStop, _ctx: &mut Context<Self>) -> Self::Result {
        let (store, instance) = (self.store.clone(), self.instance);
        Box::pin(async move {
            if let Err(e) = store.presence_leave(instance).await {
                tracing::warn!(error = %e, "could not withdraw this instance's presence");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_runs_at_most_every_interval_and_once_more_if_asked_meanwhile() {
        let min = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut gate = Gate::default();
        assert_eq!(gate.ask(t0, min), Some(Duration::ZERO));
        gate.started(t0);
        // Asked again while pending: no second timer, but one more run afterwards.
        assert_eq!(gate.ask(t0, min), None);
        assert!(gate.ended());
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(gate.ask(t1, min), Some(Duration::from_millis(70)));
        gate.started(t0 + min);
        assert!(!gate.ended());
        let t2 = t0 + Duration::from_millis(500);
        assert_eq!(gate.ask(t2, min), Some(Duration::ZERO));
    }
}
