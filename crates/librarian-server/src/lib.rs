//! Librarian's actix-web application: configuration, logging, auth, the REST API, startup and
//! shutdown. The binary (`src/main.rs` of the root package) only parses the command line and
//! calls [`serve`], [`migrate`] or [`mint_token`].

mod api;
pub mod auth;
mod body;
pub mod config;
mod health;
pub mod problem;
mod state;
pub mod telemetry;

use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpServer, web};
use auth::{AuthSetupError, Authenticator};
use config::Config;
use librarian_actors::SyncCore;
use librarian_store::Store;
use state::AppState;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] librarian_core::Error),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("server stopped with an error: {0}")]
    Io(#[from] std::io::Error),
}

/// Connects the store and applies pending migrations.
pub async fn open_store(config: &Config) -> Result<Store, ServerError> {
    let store = Store::connect(&config.store()).await?;
    let ran = store.migrate().await?;
    tracing::info!(backend = ?store.backend(), migrations_applied = ran, "database ready");
    Ok(store)
}

/// `librarian migrate`: apply pending migrations and exit.
pub async fn migrate(config: Config) -> Result<(), ServerError> {
    open_store(&config).await.map(drop)
}

/// `librarian token <user>`: a bearer token for `user`, signed with the configured secret.
pub fn mint_token(config: &Config, user: &str) -> Result<String, ServerError> {
    Ok(Authenticator::new(&config.auth)?.mint(user)?)
}

/// `librarian serve`: run until SIGINT or SIGTERM, then finish in-flight requests (up to
/// `server.shutdown_timeout_s`) and return.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    auth::check_bind(&config.auth, &config.server.bind)?;
    let authenticator = web::Data::new(Authenticator::new(&config.auth)?);
    let store = open_store(&config).await?;
    let sync = SyncCore::start_with(
        store.clone(),
        Duration::from_millis(config.sync.max_coalesce_ms),
    );
    let state = web::Data::new(AppState::new(store.clone(), sync));
    let store = web::Data::new(store);
    let limits = web::Data::new(config.limits.clone());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(problem::rewrite_plain_errors))
            .app_data(state.clone())
            .app_data(store.clone())
            .app_data(authenticator.clone())
            .app_data(limits.clone())
            .service(health::healthz)
            .service(health::readyz)
            .configure(api::routes)
    })
    // Nagle + delayed ACK would hold a small second frame for ~40 ms (STACK.md).
    .on_connect(|conn, _ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .shutdown_timeout(config.server.shutdown_timeout_s)
    .bind(&config.server.bind)
    .map_err(|source| ServerError::Bind {
        bind: config.server.bind.clone(),
        source,
    })?;
    for addr in server.addrs() {
        tracing::info!(address = %addr, "listening");
    }
    server.run().await?;
    tracing::info!("stopped");
    // Let the log line out before the process exits.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
