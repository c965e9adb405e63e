//! The key set of `auth.jwks_url`: fetched at start, kept in memory, fetched again every
//! `auth.jwks_refresh_s` (or sooner per its `Cache-Control: max-age`) and when a token names a
//! `kid` it lacks, but never more often than every `auth.jwks_min_refresh_s`. A failed fetch
//! keeps the last good keys. Only signature keys of RSA, EC (P-256, P-384) and OKP (Ed25519)
//! are taken, each with the one algorithm it is for (its `alg`, or the one its type implies);
//! symmetric (`oct`) keys are never taken from a key set.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use librarian_core::backoff::Backoff;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// One verification key.
pub struct Key {
    pub decoding: DecodingKey,
    /// The only algorithm a token may use with this key.
    pub alg: Algorithm,
}

pub struct Timing {
    pub refresh: Duration,
    pub min_refresh: Duration,
    /// One fetch, connect to last byte.
    pub timeout: Duration,
}

/// What a `kid` resolved to.
pub enum Lookup {
    Found(Arc<Key>),
    /// Not in the key set, which is fresh (fetched now, or fine at the last fetch within the
    /// refresh window).
    Unknown,
    /// Not in the keys held, and the key set could not be fetched: the token may be fine.
    Unavailable,
}

pub struct Jwks {
    url: String,
    timing: Timing,
    keys: RwLock<Arc<HashMap<String, Arc<Key>>>>,
    /// A key set was loaded once (`/readyz` waits for it).
    loaded: AtomicBool,
    /// One fetch at a time; what the last one did.
    fetching: tokio::sync::Mutex<LastFetch>,
    fetches: IntCounterVec,
    key_count: IntGauge,
}

#[derive(Default)]
struct LastFetch {
    at: Option<Instant>,
    failed: bool,
    /// When the answer's `Cache-Control: max-age` says to fetch again.
    max_age: Option<Duration>,
    /// Failures in a row (the loop's backoff while none ever succeeded).
    failures: u32,
}

impl Jwks {
    pub fn new(url: String, timing: Timing) -> prometheus::Result<Jwks> {
        Ok(Jwks {
            url,
            timing,
            keys: RwLock::new(Arc::new(HashMap::new())),
            loaded: AtomicBool::new(false),
            fetching: tokio::sync::Mutex::new(LastFetch::default()),
            fetches: IntCounterVec::new(
                Opts::new(
                    "librarian_jwks_fetches_total",
                    "Fetches of the key set (auth.jwks_url), by result (ok, error).",
                ),
                &["result"],
            )?,
            key_count: IntGauge::new("librarian_jwks_keys", "Keys held from the key set.")?,
        })
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.fetches.clone()))?;
        registry.register(Box::new(self.key_count.clone()))
    }

    /// A key set was loaded at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// `Retry-After` for a token refused because the key set is unreachable.
    pub fn retry_after_s(&self) -> u64 {
        self.timing.min_refresh.as_secs().clamp(1, 30)
    }

    fn held(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    /// The key for `kid`; fetches the key set once if it lacks it and the last fetch is older
    /// than `jwks_min_refresh_s`.
    pub async fn key(&self, kid: &str) -> Lookup {
        if let Some(key) = self.held(kid) {
            return Lookup::Found(key);
        }
        let mut last = self.fetching.lock().await;
        // Fetched by another caller while this one waited?
        if let Some(key) = self.held(kid) {
            return Lookup::Found(key);
        }
        let recent = last
            .at
            .is_some_and(|at| at.elapsed() < self.timing.min_refresh);
        if !recent {
            self.fetch(&mut last).await;
        }
        match self.held(kid) {
            Some(key) => Lookup::Found(key),
            None if last.failed => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    /// Fetches the key set now and again when due, for as long as the server runs.
    pub async fn run(self: Arc<Self>) {
        loop {
            let wait = {
                let mut last = self.fetching.lock().await;
                let due = last
                    .at
                    .is_none_or(|at| at.elapsed() >= self.next_interval(&last));
                if due {
                    self.fetch(&mut last).await;
                }
                let next = self.next_interval(&last);
                next.saturating_sub(last.at.map_or(Duration::ZERO, |at| at.elapsed()))
            };
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
    }

    /// How long after the last fetch the next is due.
    fn next_interval(&self, last: &LastFetch) -> Duration {
        if last.failed && !self.loaded() {
            // Nothing to serve asymmetric tokens with yet: try again soon.
            let jitter = rand::random::<f64>();
            return Backoff::DEFAULT.delay(last.failures, jitter);
        }
        if last.failed {
            return self.timing.min_refresh.max(Duration::from_secs(1));
        }
        let every = last
            .max_age
            .map_or(self.timing.refresh, |age| age.min(self.timing.refresh));
        every.max(self.timing.min_refresh)
    }

    async fn fetch(&self, last: &mut LastFetch) {
        last.at = Some(Instant::now());
        match self.download().await {
            Ok((keys, max_age)) => {
                let n = keys.len();
                if let Ok(mut held) = self.keys.write() {
                    *held = Arc::new(keys);
                }
                self.loaded.store(true, Ordering::Release);
                self.key_count.set(n as i64);
                self.fetches.with_label_values(&["ok"]).inc();
                last.failed = false;
                last.failures = 0;
                last.max_age = max_age;
                tracing::info!(url = %self.url, keys = n, "key set fetched");
            }
            Err(why) => {
                self.fetches.with_label_values(&["error"]).inc();
                last.failed = true;
                last.failures = last.failures.saturating_add(1);
                tracing::warn!(url = %self.url, error = %why, "key set fetch failed; keeping the last keys");
            }
        }
    }

    async fn download(&self) -> Result<(HashMap<String, Arc<Key>>, Option<Duration>), String> {
        // A client per fetch: fetches are rare, and it is then bound to no one runtime.
        let client = reqwest::Client::builder()
            .timeout(self.timing.timeout)
            .connect_timeout(self.timing.timeout.min(Duration::from_secs(2)))
            .build()
            .map_err(|e| e.to_string())?;
        let res = client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        let max_age = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let set: JwkSet = res.json().await.map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            match usable(jwk) {
                Ok((kid, key)) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(why) => tracing::warn!(
                    kid = jwk.common.key_id.as_deref().unwrap_or(""),
                    why,
                    "key set entry skipped"
                ),
            }
        }
        if keys.is_empty() {
            return Err("the key set holds no usable signature key".into());
        }
        Ok((keys, max_age))
    }
}

/// A key of the set, if it is a signature key this server verifies with.
fn usable(jwk: &Jwk) -> Result<(String, Key), &'static str> {
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key");
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported curve"),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKeyPair(_) => return Err("unsupported curve"),
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not taken"),
    };
    let alg = match &jwk.common.key_algorithm {
        None => implied,
        Some(named) => {
            let named = Algorithm::from_str(&named.to_string()).map_err(|_| "unsupported alg")?;
            let same_family = match implied {
                Algorithm::RS256 => matches!(
                    named,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ),
                other => named == other,
            };
            if !same_family {
                return Err("alg does not fit the key type");
            }
            named
        }
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "malformed key")?;
    Ok((kid, Key { decoding, alg }))
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|part| {
        let (name, n) = part.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| n.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age("Max-Age=5,must-revalidate"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn symmetric_and_mismatched_keys_are_not_taken() {
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "k", "k": "c2VjcmV0"
        }))
        .unwrap();
        assert_eq!(usable(&oct).err(), Some("symmetric keys are not taken"));
        let ec_as_rsa: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "kid": "k", "crv": "P-256", "alg": "RS256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }))
        .unwrap();
        assert_eq!(
            usable(&ec_as_rsa).err(),
            Some("alg does not fit the key type")
        );
        let no_kid: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }))
        .unwrap();
        assert_eq!(usable(&no_kid).err(), Some("no kid"));
    }
}
