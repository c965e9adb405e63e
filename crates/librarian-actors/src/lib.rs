//! Librarian's write path and sync core (DESIGN §1).
//!
//! Writes go through one actor per entity kind ([`ContextActor`], [`PromptActor`],
//! [`ProjectActor`]); each runs the mutation through the store and, only once it committed,
//! publishes a [`Mutated`] event. The [`LibraryActor`] turns those events into snapshots: per
//! library with subscribers, one reload in flight and at most one trailing, each version
//! serialized once and handed to every subscriber through one shared `watch` channel (a slow
//! subscriber skips versions, it never holds anyone up). Membership changes ([`SyncCore`]'s
//! member methods, `members.rs`) are published like writes; the [`presence::PresenceActor`]
//! tracks who has each library open.

mod event;
mod library;
mod members;
pub mod presence;
mod write;

pub use event::Mutated;
pub use library::{
    History, LibraryActor, LibraryView, ListenerConnected, Refresh, Snapshot, StepFrame, Subscribe,
    Subscription, SyncStats, SyncStatsSnapshot, VersionSeen, WriteEnded, WriteStarted,
};
pub use write::{
    ContextActor, ProjectActor, PromptActor, WriteContextBlock, WriteProject, WriteSavedPrompt,
    Writers,
};

use actix::{Actor, Addr};
use librarian_store::Store;
use librarian_store::listener::ListenerEvent;
use presence::{PresenceActor, PresenceOptions, PresenceResync, RemoteChanged};
use std::sync::Arc;
use std::time::Duration;

/// Tuning of the sync core (`[sync]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// How long a reload may wait for more writes to the same library before it starts anyway.
    pub max_coalesce: Duration,
    /// How often the versions of all served libraries are checked against the database
    /// (zero: never).
    pub reconcile_interval: Duration,
    /// The least time between two reload starts of one library (zero: none). Trades latency on
    /// a hot library for fewer reloads.
    pub min_reload_interval: Duration,
    /// Bytes of recent history kept for patch frames (DESIGN §10), across all libraries.
    pub patch_history_bytes: usize,
    pub presence: PresenceOptions,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_coalesce: Duration::from_millis(20),
            reconcile_interval: Duration::from_secs(5),
            min_reload_interval: Duration::ZERO,
            patch_history_bytes: 64 * 1024 * 1024,
            presence: PresenceOptions::default(),
        }
    }
}

/// The running actors. Cheap to clone; every address can be used from any thread.
#[derive(Clone)]
pub struct SyncCore {
    pub library: Addr<LibraryActor>,
    pub writers: Writers,
    pub presence: Addr<PresenceActor>,
    pub stats: Arc<SyncStats>,
    /// Recent patches, for sessions and `GET /library?since_version=`.
    pub history: Arc<History>,
    store: Store,
}

impl SyncCore {
    /// Starts the actors on the current actix arbiter (call inside an actix `System`) with the
    /// default options.
    pub fn start(store: Store) -> SyncCore {
        Self::start_with(store, SyncOptions::default())
    }

    /// Starts the actors and, on PostgreSQL, the listener for other instances' commits.
    pub fn start_with(store: Store, options: SyncOptions) -> SyncCore {
        let stats = Arc::new(SyncStats::default());
        let history = Arc::new(History::new(options.patch_history_bytes));
        // The library actor gets a thread of its own: loads and their bookkeeping never wait
        // behind the entity actors' writes (validation, fingerprints), nor they behind it.
        let library = {
            let (store, stats, history) = (store.clone(), stats.clone(), history.clone());
            LibraryActor::start_in_arbiter(&actix::Arbiter::new().handle(), move |_| {
                LibraryActor::new(store, stats, history, options)
            })
        };
        let presence = PresenceActor::new(store.clone(), options.presence).start();
        if let Some(mut events) = store.spawn_listener() {
            let (library, presence) = (library.clone(), presence.clone());
            actix::spawn(async move {
                while let Some(event) = events.recv().await {
                    match event {
                        ListenerEvent::Listening => {
                            library.do_send(ListenerConnected);
                            presence.do_send(PresenceResync);
                        }
                        ListenerEvent::Presence {
                            library_id,
                            instance_id,
                        } => presence.do_send(RemoteChanged {
                            library_id,
                            instance_id,
                        }),
                        ListenerEvent::Notified {
                            library_id,
                            version,
                        } => library.do_send(VersionSeen {
                            library_id,
                            version,
                        }),
                    }
                }
            });
        }
        // A write that committed after its request had timed out is announced like any other.
        let mut late = store.late_commits();
        let to_library = library.clone();
        actix::spawn(async move {
            loop {
                match late.recv().await {
                    Ok(c) => to_library.do_send(VersionSeen {
                        library_id: c.library_id,
                        version: c.version,
                    }),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let writers = Writers {
            projects: ProjectActor::new(store.clone(), library.clone()).start(),
            contexts: ContextActor::new(store.clone(), library.clone()).start(),
            prompts: PromptActor::new(store.clone(), library.clone()).start(),
        };
        SyncCore {
            library,
            writers,
            presence,
            stats,
            history,
            store,
        }
    }
}
