//! Librarian's actix-web application: configuration, logging, startup and shutdown, and the
//! HTTP endpoints. The binary (`src/main.rs` of the root package) only parses the command line
//! and calls [`serve`] or [`migrate`].

pub mod config;
mod health;
pub mod telemetry;

use actix_web::{App, HttpServer, web};
use config::Config;
use librarian_store::Store;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] librarian_core::Error),
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

/// `librarian serve`: run until SIGINT or SIGTERM, then finish in-flight requests (up to
/// `server.shutdown_timeout_s`) and return.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    let store = open_store(&config).await?;
    let data = web::Data::new(store);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(health::healthz)
            .service(health::readyz)
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
