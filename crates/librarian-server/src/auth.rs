//! Who is calling: HS256 bearer tokens (DESIGN §7) through `jsonwebtoken`.
//!
//! - `jwt` mode verifies tokens signed with `auth.jwt_secret` (compatible with hosted auth
//!   services that sign HS256 with a shared secret): `sub` is the user id, `exp` is required,
//!   `nbf` is honoured, `aud`/`iss` are checked when configured, and only HS256 is accepted
//!   (`alg: none` and every other algorithm are refused).
//! - `dev` mode is the same check with a secret generated once into `auth.dev_secret_file`;
//!   `librarian token <user>` mints tokens with it. It only listens on loopback.
//!
//! Tokens and secrets are never logged.

use crate::config::{AuthConfig, AuthMode};
use crate::problem::Problem;
use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::future::{Ready, ready};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

/// The longest user id (`sub`) accepted.
const SUB_MAX: usize = 255;
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(
        "auth.mode = \"dev\" only listens on a loopback address, but server.bind is {0}; \
         use auth.mode = \"jwt\" with auth.jwt_secret to listen on other interfaces"
    )]
    DevNotLoopback(String),
    #[error("auth.mode = \"jwt\" needs auth.jwt_secret (at least {MIN_SECRET_BYTES} bytes)")]
    MissingSecret,
    #[error("cannot read or create the dev secret {path}: {source}")]
    DevSecret {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
}

/// Verifies (and, for `librarian token`, mints) tokens.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    audience: Option<String>,
    issuer: Option<String>,
    token_ttl_s: u64,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: String,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthSetupError> {
        let secret: Vec<u8> = match config.mode {
            AuthMode::Jwt => config
                .jwt_secret
                .as_deref()
                .filter(|s| s.len() >= MIN_SECRET_BYTES)
                .ok_or(AuthSetupError::MissingSecret)?
                .as_bytes()
                .to_vec(),
            AuthMode::Dev => dev_secret(&config.dev_secret_file)?.into_bytes(),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Authenticator {
            decoding: DecodingKey::from_secret(&secret),
            encoding: EncodingKey::from_secret(&secret),
            validation,
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
            token_ttl_s: config.token_ttl_s,
        })
    }

    /// Checks a bearer token and returns its user.
    pub fn verify(&self, token: &str) -> Result<AuthUser, Problem> {
        self.verify_with_expiry(token).map(|(user, _)| user)
    }

    /// Like [`Authenticator::verify`], also telling how long the token stays valid.
    pub fn verify_with_expiry(
        &self,
        token: &str,
    ) -> Result<(AuthUser, Option<std::time::Duration>), Problem> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let why = match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet",
                    K::InvalidSignature => "the token's signature is not valid",
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                        "the token is not signed with HS256"
                    }
                    K::InvalidAudience => "the token is for another audience",
                    K::InvalidIssuer => "the token is from another issuer",
                    K::MissingRequiredClaim(_) => "the token lacks a required claim (sub, exp)",
                    _ => "the token is malformed",
                };
                Problem::unauthorized(why)
            })?;
        let sub = data.claims.sub;
        if !valid_user_id(&sub) {
            return Err(Problem::unauthorized(
                "the token's subject is not a valid user id",
            ));
        }
        let now = jsonwebtoken::get_current_timestamp();
        let remaining = (data.claims.exp + self.validation.leeway).saturating_sub(now);
        Ok((
            AuthUser { user_id: sub },
            Some(std::time::Duration::from_secs(remaining)),
        ))
    }

    /// A token for `user`, valid for `auth.token_ttl_s`.
    pub fn mint(&self, user: &str) -> Result<String, AuthSetupError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_owned(),
            exp: now + self.token_ttl_s,
            iat: Some(now),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
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
    type Future = Ready<Result<AuthUser, Problem>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(auth) = req.app_data::<web::Data<Authenticator>>() else {
            return ready(Err(Problem::unauthorized(
                "authentication is not configured",
            )));
        };
        let user = match bearer_token(req, false) {
            None => Err(Problem::unauthorized(
                "missing bearer token (Authorization: Bearer <token>)",
            )),
            Some(token) => auth.verify(&token),
        };
        if let Ok(user) = &user {
            // For the request log line.
            actix_web::HttpMessage::extensions_mut(req).insert(user.clone());
        }
        ready(user)
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

    #[test]
    fn a_minted_token_verifies_and_names_its_user() {
        let auth = Authenticator::new(&config(AuthMode::Jwt)).unwrap();
        let token = auth.mint("alice").unwrap();
        assert_eq!(auth.verify(&token).unwrap().user_id, "alice");
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let mut c = config(AuthMode::Jwt);
        c.jwt_secret = Some("short".into());
        assert!(matches!(
            Authenticator::new(&c),
            Err(AuthSetupError::MissingSecret)
        ));
    }
}
