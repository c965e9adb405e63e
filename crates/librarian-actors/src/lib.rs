//! Librarian's write path and sync core (DESIGN §1).
//!
//! Writes go through one actor per entity kind ([`ContextActor`], [`PromptActor`],
//! [`ProjectActor`]); each runs the mutation through the store and, only once it committed,
//! publishes a [`Mutated`] event. The [`LibraryActor`] turns those events into snapshots: per
//! library with subscribers, one reload in flight and at most one trailing, each version
//! serialized once and handed to every subscriber through one shared `watch` channel (a slow
//! subscriber skips versions, it never holds anyone up).

mod context;
mod event;
mod library;
mod project;
mod prompt;
mod write;

pub use context::{ContextActor, ContextBlockWrite, WriteContextBlock};
pub use event::Mutated;
pub use library::{
    LibraryActor, LibraryView, Snapshot, Subscribe, Subscription, SyncStats, SyncStatsSnapshot,
    WriteEnded, WriteStarted,
};
pub use project::{ProjectActor, ProjectWrite, WriteProject};
pub use prompt::{PromptActor, SavedPromptWrite, WriteSavedPrompt};
pub use write::Writers;

use actix::{Actor, Addr};
use librarian_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How long a reload may wait for more writes to the same library before it starts anyway.
pub const DEFAULT_MAX_COALESCE: Duration = Duration::from_millis(20);

/// The running actors. Cheap to clone; every address can be used from any thread.
#[derive(Clone)]
pub struct SyncCore {
    pub library: Addr<LibraryActor>,
    pub writers: Writers,
    pub stats: Arc<SyncStats>,
}

impl SyncCore {
    /// Starts the actors on the current actix arbiter (call inside an actix `System`) with the
    /// default coalescing window.
    pub fn start(store: Store) -> SyncCore {
        Self::start_with(store, DEFAULT_MAX_COALESCE)
    }

    /// Starts the actors; a reload waits at most `max_coalesce` for writes still in flight.
    pub fn start_with(store: Store, max_coalesce: Duration) -> SyncCore {
        let stats = Arc::new(SyncStats::default());
        let library = LibraryActor::new(store.clone(), stats.clone(), max_coalesce).start();
        let writers = Writers {
            projects: ProjectActor::new(store.clone(), library.clone()).start(),
            contexts: ContextActor::new(store.clone(), library.clone()).start(),
            prompts: PromptActor::new(store, library.clone()).start(),
        };
        SyncCore {
            library,
            writers,
            stats,
        }
    }
}
