//! Librarian's actix-web application: configuration, logging, auth, the REST API, startup and
//! shutdown. The binary (`src/main.rs` of the root package) only parses the command line and
//! calls [`serve`], [`migrate`] or [`mint_token`].

pub mod api;
pub mod auth;
pub mod body;
pub mod config;
mod connection;
mod health;
mod metrics;
pub mod origin;
pub mod problem;
mod state;
pub mod telemetry;
mod web;
pub mod ws;

use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpServer, web as aweb};
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

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `librarian token <user>`: a bearer token for `user`, signed with the configured secret.
pub fn mint_token(config: &Config, user: &str) -> Result<String, ServerError> {
    if !auth::valid_user_id(user) {
        return Err(librarian_core::Error::invalid(
            "user",
            "must be 1 to 255 printable characters",
        )
        .into());
    }
    Ok(Authenticator::new(&config.auth)?.mint(user)?)
}

/// `librarian serve`: run until SIGINT or SIGTERM, then finish in-flight requests (up to
/// `server.shutdown_timeout_s`) and return.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    auth::check_bind(&config.auth, &config.server.bind)?;
    let authenticator = aweb::Data::new(Authenticator::new(&config.auth)?);
    let store = open_store(&config).await?;
    // Idempotency records past their retention go at start, then hourly.
    let (purging, retention) = (store.clone(), config.idempotency_retention());
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match purging.purge_idempotency(retention).await {
                Ok(removed) => tracing::info!(
                    removed,
                    retention_s = retention.as_secs(),
                    "idempotency records purged"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency purge failed; next try in an hour")
                }
            }
        }
    });
    let sync = SyncCore::start_with(
        store.clone(),
        librarian_actors::SyncOptions {
            max_coalesce: Duration::from_millis(config.sync.max_coalesce_ms),
            reconcile_interval: Duration::from_millis(config.sync.reconcile_interval_ms),
            min_reload_interval: Duration::from_millis(config.sync.min_reload_interval_ms),
            patch_history_bytes: config.sync.patch_history_bytes,
            presence: config.presence.options(),
        },
    );
    let metrics = metrics::Metrics::new(&sync.stats)
        .and_then(|m| authenticator.register(m.registry()).map(|()| m))
        .map_err(|e| librarian_core::Error::Internal(format!("metrics: {e}")))?;
    if let Some(jwks) = authenticator.jwks() {
        // Fetched now and kept fresh; `/readyz` answers 503 until a key set is loaded.
        actix_web::rt::spawn(jwks.clone().run());
    }
    let presence = sync.presence.clone();
    let state = aweb::Data::new(AppState::new(store.clone(), sync, metrics));
    let store = aweb::Data::new(store);
    let limits = aweb::Data::new(config.limits.clone());
    let ws_config = aweb::Data::new(std::sync::Arc::new(config.ws()));
    let dev_mode = config.auth.mode == config::AuthMode::Dev;
    let origins = std::sync::Arc::new(config.server.allowed_origins.clone());
    let ws_origins = aweb::Data::new(ws::AllowedOrigins(origins.clone()));
    // A client that stops reading is closed by its session after the send timeout; the
    // kernel then frees its connection within 5 s more (connection.rs).
    let user_timeout = Duration::from_millis(config.ws.send_timeout_ms.saturating_add(5_000));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let shutdown = aweb::Data::new(ws::Shutdown(shutdown_rx));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(problem::rewrite_plain_errors))
            .wrap(origin::cors(origins.clone()))
            .wrap(actix_web::middleware::from_fn(api::track))
            .app_data(state.clone())
            .app_data(store.clone())
            .app_data(authenticator.clone())
            .app_data(limits.clone())
            .app_data(ws_config.clone())
            .app_data(shutdown.clone())
            .app_data(ws_origins.clone())
            .configure(api::mount)
            .configure(|cfg| {
                if dev_mode {
                    api::mount_dev(cfg);
                }
            })
            .default_service(aweb::to(api::fallback))
    })
    .on_connect(move |conn, ext| connection::on_connect(conn, ext, user_timeout))
    .shutdown_timeout(config.server.shutdown_timeout_s)
    .client_disconnect_timeout(Duration::from_millis(config.server.drain_timeout_ms))
    // Signals are handled below, so that WebSocket sessions close (1001) before the server
    // waits for connections to finish.
    .disable_signals()
    .bind(&config.server.bind)
    .map_err(|source| ServerError::Bind {
        bind: config.server.bind.clone(),
        source,
    })?;
    for addr in server.addrs() {
        tracing::info!(address = %addr, "listening");
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
        // Other instances stop counting this one's sessions now rather than at expiry.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            presence.send(librarian_actors::presence::PresenceStop),
        )
        .await;
        // Let sessions put their close frames on the wire.
        tokio::time::sleep(Duration::from_millis(100)).await;
        handle.stop(true).await;
    });
    server.await?;
    tracing::info!("stopped");
    // Let the log line out before the process exits.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
