//! Where a [`Library`](crate::Library) gets its tokens: a [`TokenProvider`], called before every
//! connection attempt and ahead of each token's expiry, so that a session outlives any one
//! token (DESIGN §11).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Why a [`TokenProvider`] could not give a token (e.g. the user signed out). Shown in
/// [`SyncStatus::Unauthorized`](crate::SyncStatus::Unauthorized) and in the SDK's logs, so it
/// must not contain a token.
pub type TokenError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`TokenProvider`] returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send>>;

/// A function returning a fresh token (for a hosted identity provider: its current access
/// token, refreshed by its own SDK as needed).
///
/// The connection calls it
/// - before every connection attempt, the first and each reconnect (so after a 401 refusal or a
///   4401 close the next attempt has a new token); if it fails there, the library stops with
///   [`SyncStatus::Unauthorized`](crate::SyncStatus::Unauthorized) until
///   [`Library::reconnect`](crate::Library::reconnect);
/// - on an open session, ahead of the token's expiry (`hello.expires_at`), and sends the
///   result in an `auth` frame; if it fails there, it is called again after a backoff while the
///   session lives.
///
/// It is never called twice at once by one [`Library`](crate::Library). A call that never
/// returns holds up the connection (there is no timeout: the provider knows best how long its
/// identity provider may take).
///
/// ```
/// use librarian_client::TokenProvider;
/// let fixed = TokenProvider::fixed("dev-token");
/// let fresh = TokenProvider::new(|| async {
///     // e.g. ask the identity provider's SDK for its current access token
///     Ok("a fresh token".to_owned())
/// });
/// # let _ = (fixed, fresh);
/// ```
#[derive(Clone)]
pub struct TokenProvider(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenProvider {
    /// A provider from an async function.
    pub fn new<F, Fut>(provide: F) -> TokenProvider
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, TokenError>> + Send + 'static,
    {
        TokenProvider(Arc::new(move || Box::pin(provide())))
    }

    /// A provider that always returns `token` (a dev token, or a long-lived one): once it
    /// expired, every reconnect is refused (401) and retried with backoff.
    pub fn fixed(token: impl Into<String>) -> TokenProvider {
        let token: Arc<str> = token.into().into();
        TokenProvider::new(move || {
            let token = token.to_string();
            async move { Ok(token) }
        })
    }

    pub(crate) fn token(&self) -> TokenFuture {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    // Never the token, even a fixed one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider(..)")
    }
}
