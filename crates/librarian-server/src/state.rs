//! What every request handler shares.

use crate::auth::AuthUser;
use crate::problem::Problem;
use librarian_actors::SyncCore;
use librarian_store::Store;
use std::collections::HashMap;
use std::sync::RwLock;
use uuid::Uuid;

/// Entries kept in the user → library cache before it starts over.
const LIBRARY_CACHE_MAX: usize = 100_000;

pub struct AppState {
    pub store: Store,
    pub sync: SyncCore,
    /// WebSocket sessions currently open.
    pub sessions_open: std::sync::atomic::AtomicI64,
    /// user id → library id. The mapping never changes once made, so caching it saves a query
    /// per request.
    libraries: RwLock<HashMap<String, Uuid>>,
}

impl AppState {
    pub fn new(store: Store, sync: SyncCore) -> AppState {
        AppState {
            store,
            sync,
            sessions_open: std::sync::atomic::AtomicI64::new(0),
            libraries: RwLock::new(HashMap::new()),
        }
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
