//! `librarian`: the one binary. Parses the command line, loads the configuration and hands
//! over to `librarian-server`.

use clap::{Parser, Subcommand};
use librarian_server::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Real-time sync server for a prompt-builder's library"
)]
struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables still win).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a bearer token for USER, signed with the configured secret.
    Token {
        /// The user id (the token's `sub`).
        user: String,
    },
    /// Print the OpenAPI document served at /api/v1/openapi.json (REST bodies and WebSocket
    /// frames; the TypeScript client's types are generated from it).
    Openapi,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        #[allow(clippy::print_stdout)] // the command's output
        {
            println!("{}", librarian_server::api::openapi::document());
        }
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    librarian_server::telemetry::init(&config.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => librarian_server::serve(config).await,
        Command::Migrate => librarian_server::migrate(config).await,
        Command::Token { user } => librarian_server::mint_token(&config, &user).map(|token| {
            #[allow(clippy::print_stdout)] // the command's output
            {
                println!("{token}");
            }
        }),
        Command::Openapi => Ok(()), // answered above, before any configuration is loaded
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "librarian failed");
    }
    Ok(result?)
}
