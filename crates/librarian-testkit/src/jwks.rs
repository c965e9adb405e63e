//! A JWKS endpoint for tests, with keys it generates (RSA 2048 for RS256, P-256 for ES256,
//! Ed25519 for EdDSA) and tokens it signs with them. It can go down (connections closed
//! unanswered), answer slowly, send a `Cache-Control`, and counts the fetches it answered.
//! Rotation: `add` a key with a new `kid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The kinds of key the server must verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rs256,
    Es256,
    EdDsa,
}

/// A private key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `alg`, `use: sig`).
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh key of `kind` named `kid`.
    pub fn generate(kind: KeyKind, kid: &str) -> SigningKey {
        let mut rng = rand_core::OsRng;
        match kind {
            KeyKind::Rs256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::traits::PublicKeyParts;
                let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key");
                let public = private.to_public_key();
                let der = private.to_pkcs1_der().expect("PKCS#1 DER");
                SigningKey {
                    kid: kid.into(),
                    alg: Algorithm::RS256,
                    encoding: EncodingKey::from_rsa_der(der.as_bytes()),
                    jwk: json!({
                        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                        "n": B64.encode(public.n().to_bytes_be()),
                        "e": B64.encode(public.e().to_bytes_be()),
                    }),
                }
            }
            KeyKind::Es256 => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                use p256::pkcs8::EncodePrivateKey;
                let secret = p256::SecretKey::random(&mut rng);
                let point = secret.public_key().to_encoded_point(false);
                let der = secret.to_pkcs8_der().expect("PKCS#8 DER");
                SigningKey {
                    kid: kid.into(),
                    alg: Algorithm::ES256,
                    encoding: EncodingKey::from_ec_der(der.as_bytes()),
                    jwk: json!({
                        "kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256",
                        "x": B64.encode(point.x().expect("x")),
                        "y": B64.encode(point.y().expect("y")),
                    }),
                }
            }
            KeyKind::EdDsa => {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                let mut seed = [0u8; 32];
                rand_core::RngCore::fill_bytes(&mut rng, &mut seed);
                let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
                let der = signing.to_pkcs8_der().expect("PKCS#8 DER");
                SigningKey {
                    kid: kid.into(),
                    alg: Algorithm::EdDSA,
                    encoding: EncodingKey::from_ed_der(der.as_bytes()),
                    jwk: json!({
                        "kty": "OKP", "kid": kid, "alg": "EdDSA", "use": "sig", "crv": "Ed25519",
                        "x": B64.encode(signing.verifying_key().as_bytes()),
                    }),
                }
            }
        }
    }

    /// A token signed with this key, with its `kid` and algorithm in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// Claims for `user` expiring `ttl_s` from now.
pub fn claims(user: &str, ttl_s: u64) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({"sub": user, "exp": now + ttl_s, "iat": now})
}

struct Shared {
    keys: Mutex<Vec<Value>>,
    up: AtomicBool,
    delay_ms: AtomicU64,
    cache_control: Mutex<Option<String>>,
    fetches: AtomicU64,
}

/// The endpoint: `url` serves `{"keys": [...]}`.
pub struct JwksServer {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves the public halves of `keys` on 127.0.0.1, port 0.
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            up: AtomicBool::new(true),
            delay_ms: AtomicU64::new(0),
            cache_control: Mutex::new(None),
            fetches: AtomicU64::new(0),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                        if read == buf.len() {
                            return;
                        }
                    }
                    if !shared.up.load(Ordering::SeqCst) {
                        return; // down: closed unanswered
                    }
                    let delay = shared.delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let body = json!({"keys": *shared.keys.lock().expect("keys")}).to_string();
                    let cache = shared
                        .cache_control
                        .lock()
                        .expect("cache")
                        .as_ref()
                        .map(|c| format!("Cache-Control: {c}\r\n"))
                        .unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{cache}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(response.as_bytes()).await.is_ok() {
                        shared.fetches.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = conn.shutdown().await;
                });
            }
        });
        JwksServer { url, shared, task }
    }

    /// Publishes one more key (rotation).
    pub fn add(&self, key: &SigningKey) {
        self.shared.keys.lock().expect("keys").push(key.jwk.clone());
    }

    /// Publishes exactly these JWKs (e.g. a hand-made one).
    pub fn set_jwks(&self, keys: Vec<Value>) {
        *self.shared.keys.lock().expect("keys") = keys;
    }

    /// Up: answers; down: closes every connection unanswered.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::SeqCst);
    }

    /// Answers only after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.shared.cache_control.lock().expect("cache") = value.map(str::to_owned);
    }

    /// How many key sets it has sent.
    pub fn fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
