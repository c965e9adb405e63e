//! The messages the [`LibraryActor`](super::LibraryActor) answers: subscriptions, write and
//! version events, refreshes.

use super::LibraryActor;
use super::view::LibraryView;
use actix::prelude::*;
use tokio::sync::watch;
use uuid::Uuid;

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
    pub(crate) _guard: SubscriberGuard,
}

#[derive(Debug)]
pub(crate) struct SubscriberGuard {
    pub(crate) library_id: Uuid,
    pub(crate) actor: Addr<LibraryActor>,
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
pub(crate) struct Unsubscribe {
    pub(crate) library_id: Uuid,
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
/// a late SQLite commit, or reconciliation).
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

/// The cross-instance listener (re)connected: notifications may have been lost meanwhile, so
/// one reconciliation runs (one query for every served library, not one reload each).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ListenerConnected;
