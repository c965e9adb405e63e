//! What every request handler shares.

use crate::auth::AuthUser;
use crate::problem::Problem;
use librarian_actors::SyncCore;
use librarian_core::{Committed, Mutation, MutationOptions};
use librarian_store::Store;
use std::collections::HashMap;
use std::sync::RwLock;
use uuid::Uuid;

/// Entries kept in the user → library cache before it starts over.
const LIBRARY_CACHE_MAX: usize = 100_000;

pub struct AppState {
    pub store: Store,
    pub sync: SyncCore,
    pub metrics: crate::metrics::Metrics,
    /// Open WebSocket sessions per user, for `ws.max_sessions_per_user`.
    pub sessions: SessionCounts,
    /// user id → library id, saving a query per request. The mapping changes only if the
    /// library row is deleted behind the server's back: a write then fails with
    /// [`librarian_store::is_library_gone`] and the entry goes (see [`AppState::apply`]).
    libraries: RwLock<HashMap<String, Uuid>>,
}

impl AppState {
    pub fn new(store: Store, sync: SyncCore, metrics: crate::metrics::Metrics) -> AppState {
        AppState {
            store,
            sync,
            metrics,
            sessions: SessionCounts::default(),
            libraries: RwLock::new(HashMap::new()),
        }
    }

    /// Runs one mutation through the write path, counting and logging it.
    pub async fn apply(
        &self,
        user: &AuthUser,
        library_id: Uuid,
        mutation: Mutation,
        opts: MutationOptions,
    ) -> Result<Committed, librarian_core::Error> {
        let (kind, op) = (mutation.kind(), mutation.op());
        let started = std::time::Instant::now();
        let result = self
            .sync
            .writers
            .apply(library_id, &user.user_id, mutation, opts)
            .await;
        if let Err(e) = &result
            && librarian_store::is_library_gone(e)
        {
            // If it was the user's own, the next request finds (or creates) it again.
            self.forget_library(&user.user_id, library_id);
        }
        let outcome = match &result {
            Ok(c) if c.replayed => "replayed",
            Ok(_) => {
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                "committed"
            }
            Err(e) => e.code(),
        };
        self.metrics
            .mutations
            .with_label_values(&[kind.as_str(), op.as_str(), outcome])
            .inc();
        match &result {
            Ok(c) => tracing::info!(user_id = %user.user_id, %library_id, op = op.as_str(),
                id = %c.id, library_version = c.library_version, replayed = c.replayed, "mutation"),
            Err(e) => tracing::info!(user_id = %user.user_id, %library_id, op = op.as_str(),
                outcome, error = %e, "mutation refused"),
        }
        result
    }

    /// The caller's library id, creating the library on first use.
    pub async fn library_id(&self, user: &AuthUser) -> Result<Uuid, Problem> {
        if let Some(id) = self
            .libraries
            .read()
            .ok()
            .and_then(|m| m.get(&user.user_id).copied())
        {
            return Ok(id);
        }
        let library = self.store.library_for_user(&user.user_id).await?;
        if let Ok(mut cache) = self.libraries.write() {
            if cache.len() >= LIBRARY_CACHE_MAX {
                cache.clear();
            }
            cache.insert(user.user_id.clone(), library.id);
        }
        Ok(library.id)
    }

    /// Drops `user`'s cached library id if it is still `library_id` (a concurrent request may
    /// already have cached the new one).
    fn forget_library(&self, user: &str, library_id: Uuid) {
        if let Ok(mut cache) = self.libraries.write()
            && cache.get(user) == Some(&library_id)
        {
            tracing::warn!(user_id = %user, %library_id,
                "the user's library row is gone; its cached id is forgotten");
            cache.remove(user);
        }
    }
}

/// Open sessions per user.
#[derive(Default)]
pub struct SessionCounts(std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>);

/// One open session's place in [`SessionCounts`]; freed when dropped.
pub struct Seat {
    counts: std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>,
    user: String,
}

impl SessionCounts {
    /// A seat for one more session of `user`, unless `max` are open.
    pub fn claim(&self, user: &str, max: usize) -> Option<Seat> {
        let mut counts = self.0.lock().ok()?;
        let n = counts.entry(user.to_owned()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Seat {
            counts: self.0.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(n) = counts.get_mut(&self.user)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}
