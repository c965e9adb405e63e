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
    /// user id → library id. The mapping never changes once made, so caching it saves a query
    /// per request.
    libraries: RwLock<HashMap<String, Uuid>>,
}

impl AppState {
    pub fn new(store: Store, sync: SyncCore, metrics: crate::metrics::Metrics) -> AppState {
        AppState {
            store,
            sync,
            metrics,
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
        let result = self.sync.writers.apply(library_id, mutation, opts).await;
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
}
