//! Configuration, layered (DESIGN §7): the defaults of `config/default.toml` (embedded in the
//! binary), then an optional file, then environment variables `LIBRARIAN__SECTION__KEY`.
//! Unknown keys are refused, so a typo is an error at start and not a silently ignored setting.
//!
//! Plain data only, at the bottom of the crate: every other module may read these types, and
//! this one uses none of theirs.

use librarian_core::Limits;
use librarian_store::{SqliteSync, StoreConfig};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The defaults, embedded so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub sync: SyncConfig,
    pub presence: PresenceConfig,
    pub ws: WsSection,
    /// Core's field limits, from `[limits]` (copied out of `limits_section` on load).
    #[serde(skip)]
    pub limits: Limits,
    /// `[limits]` as written: core's `Limits` does not know `idempotency_retention_s`.
    #[serde(rename = "limits")]
    limits_section: LimitsSection,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    /// How long an idempotency key is honoured, in seconds; older records are purged.
    idempotency_retention_s: u64,
    #[serde(flatten)]
    fields: Limits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub shutdown_timeout_s: u64,
    /// How long a finished connection with unread request bytes is drained before it closes.
    pub drain_timeout_ms: u64,
    /// Web origins besides the server's own page that may call the API and open WebSockets.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub query_timeout_ms: u64,
    pub sqlite_synchronous: SqliteSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Dev,
    Jwt,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub dev_secret_file: std::path::PathBuf,
    pub token_ttl_s: u64,
    #[serde(default)]
    pub jwt_secret: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    /// A JWKS endpoint (jwt mode): asymmetric tokens are checked against its keys.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the key set is fetched again (sooner if its `Cache-Control: max-age` says so).
    pub jwks_refresh_s: u64,
    /// The least time between two fetches (an unknown `kid` fetches at most this often).
    pub jwks_min_refresh_s: u64,
    /// The longest one fetch of the key set may take.
    pub jwks_timeout_ms: u64,
    /// The claim that names the user.
    pub user_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_s: u64,
}

// Hand-written so that the secret never reaches a log line.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("dev_secret_file", &self.dev_secret_file)
            .field("token_ttl_s", &self.token_ttl_s)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh_s", &self.jwks_refresh_s)
            .field("jwks_min_refresh_s", &self.jwks_min_refresh_s)
            .field("jwks_timeout_ms", &self.jwks_timeout_ms)
            .field("user_claim", &self.user_claim)
            .field("leeway_s", &self.leeway_s)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSection {
    pub heartbeat_ms: u64,
    pub idle_timeout_ms: u64,
    pub send_timeout_ms: u64,
    pub max_inflight_mutations: usize,
    pub max_sessions_per_user: usize,
    pub max_frames_per_second: u32,
}

/// Session limits, from the `[ws]` section (resolved by [`Config::ws`]).
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// How often the server pings.
    pub heartbeat: Duration,
    /// A session that sends nothing (not even a pong) for this long is closed with 4408.
    pub idle_timeout: Duration,
    /// A session that takes no frame for this long is closed with 4429.
    pub send_timeout: Duration,
    /// Largest accepted client message, in bytes.
    pub max_frame_bytes: usize,
    /// Mutations one session may have in flight at once.
    pub max_inflight: usize,
    /// Sessions one user may have open on this instance.
    pub max_sessions_per_user: usize,
    /// Frames a client may send per second (and in a burst).
    pub max_frames_per_second: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    pub max_coalesce_ms: u64,
    pub reconcile_interval_ms: u64,
    pub min_reload_interval_ms: u64,
    pub patch_history_bytes: usize,
}

/// `[presence]`: who has a library open, across instances (DESIGN §9).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceConfig {
    pub heartbeat_ms: u64,
    pub expiry_ms: u64,
}

impl PresenceConfig {
    pub fn options(&self) -> librarian_actors::presence::PresenceOptions {
        librarian_actors::presence::PresenceOptions {
            heartbeat: Duration::from_millis(self.heartbeat_ms.max(1)),
            expiry: Duration::from_millis(self.expiry_ms),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, None)
    }

    /// Like [`Config::load`], reading the environment from `env` instead of the process (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let environment = config::Environment::with_prefix("LIBRARIAN")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            // LIBRARIAN__SERVER__ALLOWED_ORIGINS=https://a.example,https://b.example
            .list_separator(",")
            .with_list_parse_key("server.allowed_origins")
            .source(env);
        let mut config: Config = builder.add_source(environment).build()?.try_deserialize()?;
        config.limits = config.limits_section.fields.clone();
        Ok(config)
    }

    /// `limits.idempotency_retention_s`: how long an idempotency key is honoured.
    pub fn idempotency_retention(&self) -> Duration {
        Duration::from_secs(self.limits_section.idempotency_retention_s)
    }

    pub fn ws(&self) -> WsConfig {
        WsConfig {
            heartbeat: Duration::from_millis(self.ws.heartbeat_ms.max(1)),
            idle_timeout: Duration::from_millis(self.ws.idle_timeout_ms),
            send_timeout: Duration::from_millis(self.ws.send_timeout_ms),
            max_frame_bytes: self.limits.body_max_bytes,
            max_inflight: self.ws.max_inflight_mutations.max(1),
            max_sessions_per_user: self.ws.max_sessions_per_user.max(1),
            max_frames_per_second: self.ws.max_frames_per_second.max(1),
        }
    }

    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            url: self.database.url.clone(),
            pool_size: self.database.pool_size,
            connect_timeout: Duration::from_millis(self.database.connect_timeout_ms),
            query_timeout: Duration::from_millis(self.database.query_timeout_ms),
            sqlite_sync: self.database.sqlite_synchronous,
            limits: self.limits.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_run_sqlite_on_loopback() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://data/librarian.db");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(
            c.idempotency_retention(),
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(c.log.format, LogFormat::Pretty);
    }

    #[test]
    fn file_then_environment_override_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("librarian.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"127.0.0.1:9000\"\n[limits]\ntitle_max = 10\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&path),
            env(&[
                ("LIBRARIAN__SERVER__BIND", "127.0.0.1:0"),
                ("LIBRARIAN__DATABASE__POOL_SIZE", "3"),
                ("LIBRARIAN__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.server.bind, "127.0.0.1:0",
            "environment wins over the file"
        );
        assert_eq!(c.limits.title_max, 10, "the file wins over the defaults");
        assert_eq!(
            c.limits.name_max, 200,
            "keys the file leaves out keep their default"
        );
        assert_eq!(c.database.pool_size, 3);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn the_jwt_secret_never_shows_in_debug_output() {
        let c = Config::load_from(
            None,
            env(&[(
                "LIBRARIAN__AUTH__JWT_SECRET",
                "s3cr3t-value-that-is-long-enough!!",
            )]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_idempotency_retention_is_set_like_the_field_limits() {
        let c = Config::load_from(
            None,
            env(&[
                ("LIBRARIAN__LIMITS__IDEMPOTENCY_RETENTION_S", "60"),
                ("LIBRARIAN__LIMITS__TITLE_MAX", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(c.idempotency_retention(), Duration::from_secs(60));
        assert_eq!(c.limits.title_max, 10);
        let err =
            Config::load_from(None, env(&[("LIBRARIAN__LIMITS__TITLE_MAXX", "1")])).unwrap_err();
        assert!(err.to_string().contains("title_maxx"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = Config::load_from(None, env(&[("LIBRARIAN__SERVER__BINDD", "x")])).unwrap_err();
        assert!(err.to_string().contains("bindd"), "{err}");
    }
}
