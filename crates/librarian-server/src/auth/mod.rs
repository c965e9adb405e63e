//! Who is calling: bearer JWTs (DESIGN §7, §11) through `jsonwebtoken`.
//!
//! - `jwt` mode verifies HS256 tokens signed with `auth.jwt_secret` and/or asymmetric tokens
//!   (RS256, ES256, EdDSA, …) against the key set at `auth.jwks_url` (`jwks.rs`). The key is
//!   chosen by the token's `kid`, and the algorithm is the key's, never the token header's:
//!   `alg: none`, HS256 signed with a public key, or an algorithm that does not match the key
//!   are refused. The user is the `auth.user_claim` claim (default `sub`); `exp` is required,
//!   `nbf` is honoured, `aud`/`iss` are checked when configured, within `auth.leeway_s`.
//! - `dev` mode is the HS256 check with a secret generated once into `auth.dev_secret_file`;
//!   `librarian token <user>` mints tokens with it. It only listens on loopback.
//!
//! Every refusal is a 401 naming what was wrong, except a token that cannot be checked because
//! the JWKS endpoint is unreachable: 503 with `Retry-After`. Refusals are counted by reason.
//! Tokens and secrets are never logged.

mod jwks;

use crate::config::{AuthConfig, AuthMode};
use crate::problem::Problem;
use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
pub use jwks::Jwks;
use librarian_core::time::Timestamp;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use serde_json::Value;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every algorithm a token may be verified with: HS256 with the shared secret, the others with
/// a key of the key set whose algorithm it is.
const ACCEPTED: [Algorithm; 10] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The longest user id accepted.
const SUB_MAX: usize = 255;
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(
        "auth.mode = \"dev\" only listens on a loopback address, but server.bind is {0}; \
         use auth.mode = \"jwt\" with auth.jwt_secret or auth.jwks_url to listen on other interfaces"
    )]
    DevNotLoopback(String),
    #[error(
        "auth.mode = \"jwt\" needs auth.jwt_secret (at least {MIN_SECRET_BYTES} bytes), \
         auth.jwks_url, or both"
    )]
    MissingSecret,
    #[error("auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("auth.jwks_url is not an http(s) URL: {0}")]
    BadJwksUrl(String),
    #[error(
        "auth.jwks_url and auth.jwt_secret are for auth.mode = \"jwt\"; dev mode signs its own \
         tokens (set auth.mode = \"jwt\", or remove them)"
    )]
    JwtSettingsInDevMode,
    #[error("cannot read or create the dev secret {path}: {source}")]
    DevSecret {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error("`librarian token` signs with an HS256 secret; this configuration has none")]
    NoSigningSecret,
    #[error("auth metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The claims `librarian token` writes.
#[derive(Debug, Serialize)]
struct MintedClaims {
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
}

/// The HS256 secret (`auth.jwt_secret`, or the dev secret).
#[derive(Clone)]
struct Secret {
    decoding: DecodingKey,
    encoding: EncodingKey,
}

/// Verifies (and, for `librarian token`, mints) tokens.
pub struct Authenticator {
    secret: Option<Secret>,
    jwks: Option<Arc<Jwks>>,
    /// The claims checks, one per algorithm a token may use (built once, not per token).
    validations: Vec<Validation>,
    leeway_s: u64,
    user_claim: String,
    audience: Option<String>,
    issuer: Option<String>,
    token_ttl_s: u64,
    refused: IntCounterVec,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: String,
}

/// A token that passed: its user, and until when it may be used.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: AuthUser,
    /// The token's `exp`, in seconds since the epoch.
    pub exp: u64,
    /// `exp` plus the leeway: when a session on this token must end.
    pub valid_until: std::time::SystemTime,
}

impl Verified {
    /// `exp` as the wire writes times (`hello.expires_at`, `auth_ok.expires_at`).
    pub fn expires_at(&self) -> Timestamp {
        Timestamp(i64::try_from(self.exp.saturating_mul(1000)).unwrap_or(i64::MAX))
    }
}

/// Why a token was not accepted: the label of `librarian_auth_refused_total` and the detail.
struct Refusal {
    reason: &'static str,
    detail: &'static str,
}

fn refuse(reason: &'static str, detail: &'static str) -> Failure {
    Failure::Refused(Refusal { reason, detail })
}

enum Failure {
    Refused(Refusal),
    /// The key set could not be fetched: the token may be fine.
    Unavailable,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthSetupError> {
        let secret: Option<Vec<u8>> = match config.mode {
            AuthMode::Jwt => match config.jwt_secret.as_deref() {
                Some(s) if s.len() >= MIN_SECRET_BYTES => Some(s.as_bytes().to_vec()),
                Some(_) => return Err(AuthSetupError::ShortSecret),
                None => None,
            },
            AuthMode::Dev => {
                // Ignoring them would leave someone believing their provider's tokens work.
                if config.jwks_url.is_some() || config.jwt_secret.is_some() {
                    return Err(AuthSetupError::JwtSettingsInDevMode);
                }
                Some(dev_secret(&config.dev_secret_file)?.into_bytes())
            }
        };
        let jwks = match (&config.mode, &config.jwks_url) {
            (AuthMode::Jwt, Some(url)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(AuthSetupError::BadJwksUrl(url.clone()));
                }
                Some(Arc::new(Jwks::new(
                    url.clone(),
                    jwks::Timing {
                        refresh: Duration::from_secs(config.jwks_refresh_s.max(1)),
                        min_refresh: Duration::from_secs(config.jwks_min_refresh_s),
                        timeout: Duration::from_millis(config.jwks_timeout_ms.max(1)),
                    },
                )?))
            }
            _ => None,
        };
        if secret.is_none() && jwks.is_none() {
            return Err(AuthSetupError::MissingSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_s;
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Authenticator {
            secret: secret.map(|s| Secret {
                decoding: DecodingKey::from_secret(&s),
                encoding: EncodingKey::from_secret(&s),
            }),
            jwks,
            validations: ACCEPTED
                .iter()
                .map(|alg| {
                    let mut v = validation.clone();
                    v.algorithms = vec![*alg];
                    v
                })
                .collect(),
            leeway_s: config.leeway_s,
            user_claim: config.user_claim.clone(),
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
            token_ttl_s: config.token_ttl_s,
            refused: IntCounterVec::new(
                Opts::new("librarian_auth_refused_total", "Tokens refused, by reason."),
                &["reason"],
            )?,
        })
    }

    /// The key set, when `auth.jwks_url` is set (its refresh loop is started by `serve`).
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Adds the auth counters (and the key set's) to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.refused.clone()))?;
        if let Some(jwks) = &self.jwks {
            jwks.register(registry)?;
        }
        Ok(())
    }

    /// Checks a bearer token: its user and expiry, or the problem to answer (401, or 503 when
    /// the key set cannot be fetched).
    pub async fn verify(&self, token: &str) -> Result<Verified, Problem> {
        match self.check(token).await {
            Ok(verified) => Ok(verified),
            Err(Failure::Refused(r)) => {
                self.refused.with_label_values(&[r.reason]).inc();
                Err(Problem::unauthorized(r.detail))
            }
            Err(Failure::Unavailable) => {
                self.refused.with_label_values(&["jwks_unavailable"]).inc();
                Err(Problem {
                    retry_after_s: Some(self.jwks.as_ref().map_or(5, |j| j.retry_after_s())),
                    ..Problem::new(
                        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                        "auth_unavailable",
                        "the token cannot be checked now: the key set (auth.jwks_url) is unreachable",
                    )
                })
            }
        }
    }

    async fn check(&self, token: &str) -> Result<Verified, Failure> {
        // `alg: none` and unknown algorithms fail here: the header does not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            refuse(
                "malformed",
                "the token is malformed or its algorithm is not accepted",
            )
        })?;
        let jwks_key;
        let (key, alg) = match header.alg {
            // A shared secret, never a key of the key set: a token "signed" with a public key
            // as an HMAC secret fails here.
            Algorithm::HS256 => match &self.secret {
                Some(secret) => (&secret.decoding, Algorithm::HS256),
                None => {
                    return Err(refuse(
                        "algorithm",
                        "HS256 tokens are not accepted (no auth.jwt_secret)",
                    ));
                }
            },
            Algorithm::HS384 | Algorithm::HS512 => {
                return Err(refuse("algorithm", "the token's algorithm is not accepted"));
            }
            asymmetric => {
                let Some(jwks) = &self.jwks else {
                    return Err(refuse(
                        "algorithm",
                        "only HS256 tokens are accepted (no auth.jwks_url)",
                    ));
                };
                let Some(kid) = header.kid.as_deref() else {
                    return Err(refuse("missing_kid", "the token has no kid"));
                };
                jwks_key = match jwks.key(kid).await {
                    jwks::Lookup::Found(key) => key,
                    jwks::Lookup::Unknown => {
                        return Err(refuse(
                            "unknown_kid",
                            "the token's kid is not in the key set",
                        ));
                    }
                    jwks::Lookup::Unavailable => return Err(Failure::Unavailable),
                };
                // The key fixes the algorithm; the header only has to agree.
                if jwks_key.alg != asymmetric {
                    return Err(refuse(
                        "algorithm_mismatch",
                        "the token's algorithm does not match its key",
                    ));
                }
                (&jwks_key.decoding, jwks_key.alg)
            }
        };
        let Some(validation) = self.validations.iter().find(|v| v.algorithms == [alg]) else {
            return Err(refuse("algorithm", "the token's algorithm is not accepted"));
        };
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, validation)
            .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => refuse("expired", "the token has expired"),
                K::ImmatureSignature => refuse("not_yet_valid", "the token is not valid yet"),
                K::InvalidSignature => {
                    refuse("bad_signature", "the token's signature is not valid")
                }
                K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                    refuse("algorithm", "the token's algorithm is not accepted")
                }
                K::InvalidAudience => refuse("audience", "the token is for another audience"),
                K::InvalidIssuer => refuse("issuer", "the token is from another issuer"),
                K::MissingRequiredClaim(_) => {
                    refuse("missing_claim", "the token lacks a required claim (exp)")
                }
                _ => refuse("malformed", "the token is malformed"),
            }
        })?;
        let claims = data.claims;
        let Some(user) = claims.get(&self.user_claim).and_then(Value::as_str) else {
            return Err(refuse(
                "missing_claim",
                "the token lacks its user claim (auth.user_claim, default sub)",
            ));
        };
        if !valid_user_id(user) {
            return Err(refuse(
                "invalid_user",
                "the token's user claim is not a valid user id",
            ));
        }
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok(Verified {
            user: AuthUser {
                user_id: user.to_owned(),
            },
            exp,
            valid_until: std::time::UNIX_EPOCH
                + Duration::from_secs(exp.saturating_add(self.leeway_s)),
        })
    }

    /// A token for `user`, valid for `auth.token_ttl_s` (HS256 with the configured secret).
    pub fn mint(&self, user: &str) -> Result<String, AuthSetupError> {
        let secret = self
            .secret
            .as_ref()
            .ok_or(AuthSetupError::NoSigningSecret)?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = MintedClaims {
            sub: user.to_owned(),
            exp: now + self.token_ttl_s,
            iat: now,
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret.encoding)
            .map_err(AuthSetupError::Sign)
    }
}

/// A user id (a token's `sub`) is 1–255 characters with no control characters.
pub fn valid_user_id(user: &str) -> bool {
    !user.is_empty() && user.chars().count() <= SUB_MAX && !user.chars().any(char::is_control)
}

/// Dev mode may only listen on loopback: its tokens are for one person's machine.
pub fn check_bind(config: &AuthConfig, bind: &str) -> Result<(), AuthSetupError> {
    if config.mode != AuthMode::Dev {
        return Ok(());
    }
    let loopback = bind
        .to_socket_addrs()
        .map(|mut addrs| addrs.all(|a| is_loopback(a.ip())))
        .unwrap_or(false);
    if loopback {
        Ok(())
    } else {
        Err(AuthSetupError::DevNotLoopback(bind.to_owned()))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Reads the dev secret, creating it (random, owner-only) on first use.
fn dev_secret(path: &Path) -> Result<String, AuthSetupError> {
    let err = |source| AuthSetupError::DevSecret {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= MIN_SECRET_BYTES => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(path, &secret).map_err(err)?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// The bearer token of a request: `Authorization: Bearer …`, or (for browsers opening a
/// WebSocket, which cannot set headers) the `access_token` query parameter when allowed.
pub fn bearer_token(req: &HttpRequest, allow_query: bool) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if allow_query {
        let query =
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                .ok()?;
        return query.get("access_token").cloned();
    }
    None
}

impl FromRequest for AuthUser {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<AuthUser, Problem>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer_token(req, false);
        let req = req.clone();
        Box::pin(async move {
            let Some(auth) = auth else {
                return Err(Problem::unauthorized("authentication is not configured"));
            };
            let Some(token) = token else {
                return Err(Problem::unauthorized(
                    "missing bearer token (Authorization: Bearer <token>)",
                ));
            };
            let user = auth.verify(&token).await?.user;
            // For the request log line.
            actix_web::HttpMessage::extensions_mut(&req).insert(user.clone());
            Ok(user)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: AuthMode) -> AuthConfig {
        AuthConfig {
            mode,
            dev_secret_file: "unused".into(),
            token_ttl_s: 60,
            jwt_secret: Some("x".repeat(40)),
            audience: None,
            issuer: None,
            jwks_url: None,
            jwks_refresh_s: 600,
            jwks_min_refresh_s: 30,
            jwks_timeout_ms: 5000,
            user_claim: "sub".into(),
            leeway_s: 30,
        }
    }

    #[test]
    fn dev_mode_listens_on_loopback_only() {
        let dev = config(AuthMode::Dev);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1:0",
            "[::1]:8080",
            "localhost:8080",
        ] {
            assert!(check_bind(&dev, ok).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080"] {
            assert!(check_bind(&dev, refused).is_err(), "{refused}");
        }
        assert!(check_bind(&config(AuthMode::Jwt), "0.0.0.0:8080").is_ok());
    }

    #[actix_web::test]
    async fn a_minted_token_verifies_and_names_its_user() {
        let auth = Authenticator::new(&config(AuthMode::Jwt)).unwrap();
        let token = auth.mint("alice").unwrap();
        let verified = auth.verify(&token).await.unwrap();
        assert_eq!(verified.user.user_id, "alice");
        let now = jsonwebtoken::get_current_timestamp();
        assert!(
            (now + 55..=now + 60).contains(&verified.exp),
            "{}",
            verified.exp
        );
    }

    #[test]
    fn jwt_settings_in_dev_mode_are_refused() {
        let mut c = config(AuthMode::Dev);
        assert!(matches!(
            Authenticator::new(&c),
            Err(AuthSetupError::JwtSettingsInDevMode)
        ));
        c.jwt_secret = None;
        c.jwks_url = Some("https://example.com/jwks.json".into());
        assert!(matches!(
            Authenticator::new(&c),
            Err(AuthSetupError::JwtSettingsInDevMode)
        ));
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let mut c = config(AuthMode::Jwt);
        c.jwt_secret = Some("short".into());
        assert!(matches!(
            Authenticator::new(&c),
            Err(AuthSetupError::ShortSecret)
        ));
        c.jwt_secret = None;
        assert!(matches!(
            Authenticator::new(&c),
            Err(AuthSetupError::MissingSecret)
        ));
    }
}
