//! JWKS verification against the real binary (DESIGN §11), with a key set the testkit serves
//! and keys it generates: RS256, ES256 and EdDSA tokens chosen by `kid`; every refusal (and
//! the algorithm-confusion attacks) is a 401 counted by its reason; rotation fetches a new
//! `kid` once; a key set that is down at start keeps `/readyz` at 503, and a token that cannot
//! be checked while it is down is a 503 with `Retry-After`, not a 401.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use librarian_testkit::jwks::{JwksServer, KeyKind, SigningKey, claims};
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect, frame, send, until};
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;

const SECRET: &str = "an-hs256-secret-beside-the-key-set-0123456789";
const PATIENCE: Duration = Duration::from_secs(60);

/// Keys are generated once per test binary (RSA generation is the slow part).
fn keys() -> &'static [SigningKey; 3] {
    static KEYS: OnceLock<[SigningKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            SigningKey::generate(KeyKind::Rs256, "rsa-1"),
            SigningKey::generate(KeyKind::Es256, "ec-1"),
            SigningKey::generate(KeyKind::EdDsa, "ed-1"),
        ]
    })
}

fn start(jwks: &JwksServer, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![
        ("LIBRARIAN__AUTH__MODE", "jwt"),
        ("LIBRARIAN__AUTH__JWKS_URL", jwks.url.as_str()),
        ("LIBRARIAN__AUTH__JWT_SECRET", SECRET),
    ];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

async fn ready(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while reqwest::get(server.url("/readyz")).await.unwrap().status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/v1/library` with `token`: the status and the body.
async fn library(server: &TestServer, token: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = reqwest::Client::new()
        .get(server.url("/api/v1/library"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

async fn refused(server: &TestServer, reason: &str) -> f64 {
    server
        .metrics()
        .await
        .get("librarian_auth_refused_total", &[("reason", reason)])
}

/// A token with any header and claims, and a signature of junk (for refusals that never get
/// as far as the signature).
fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode([7u8; 64])
    )
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_by_kid_over_http_and_websocket() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0], &k[1], &k[2]]).await;
    let server = start(&jwks, &[]);
    ready(&server).await;
    for (key, user) in k.iter().zip(["rosa", "eric", "edda"]) {
        let token = key.sign(&claims(user, 60));
        let (status, _, body) = library(&server, &token).await;
        assert_eq!(status, 200, "{:?}: {body}", key.alg);
        let mut ws = connect(&server, &token).await;
        let hello = frame(&mut ws).await;
        assert_eq!(hello["user_id"], user, "{:?}", key.alg);
    }
    // HS256 beside the key set (a provider migrating keys).
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("hana", 60),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(library(&server, &hs).await.0, 200);
    // One fetch at start served every kid.
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn each_refusal_is_a_401_counted_by_its_reason() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0], &k[1], &k[2]]).await;
    let server = start(
        &jwks,
        &[
            ("LIBRARIAN__AUTH__AUDIENCE", "authenticated"),
            ("LIBRARIAN__AUTH__ISSUER", "https://issuer.example/auth/v1"),
            ("LIBRARIAN__AUTH__LEEWAY_S", "5"),
        ],
    );
    ready(&server).await;
    let now = jsonwebtoken::get_current_timestamp();
    let good = |extra: Value| {
        let mut c = json!({"sub": "alice", "exp": now + 60, "aud": "authenticated",
                           "iss": "https://issuer.example/auth/v1"});
        for (key, value) in extra.as_object().unwrap() {
            c[key] = value.clone();
        }
        c
    };
    assert_eq!(library(&server, &k[0].sign(&good(json!({})))).await.0, 200);

    let rsa_public_as_secret = {
        // "HS256 signed with the public key": the JWK's modulus as the HMAC secret.
        let n = B64.decode(k[0].jwk["n"].as_str().unwrap()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, &good(json!({})), &EncodingKey::from_secret(&n)).unwrap()
    };
    let rs384_on_an_rs256_key = {
        let mut header = Header::new(Algorithm::RS384);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, &good(json!({})), &k[0].encoding).unwrap()
    };
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &good(json!({})),
        &k[1].encoding,
    )
    .unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "malformed",
            unsigned(json!({"alg": "none", "typ": "JWT"}), &good(json!({}))),
        ),
        (
            "malformed",
            format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none"}"#),
                B64.encode(good(json!({})).to_string())
            ),
        ),
        ("bad_signature", rsa_public_as_secret),
        ("algorithm_mismatch", rs384_on_an_rs256_key),
        (
            "algorithm_mismatch",
            unsigned(json!({"alg": "ES256", "kid": "rsa-1"}), &good(json!({}))),
        ),
        ("missing_kid", no_kid),
        (
            "bad_signature",
            unsigned(json!({"alg": "EdDSA", "kid": "ed-1"}), &good(json!({}))),
        ),
        ("audience", k[1].sign(&good(json!({"aud": "someone-else"})))),
        (
            "issuer",
            k[2].sign(&good(json!({"iss": "https://evil.example"}))),
        ),
        ("expired", k[0].sign(&good(json!({"exp": now - 10})))),
        ("not_yet_valid", k[1].sign(&good(json!({"nbf": now + 60})))),
        (
            "missing_claim",
            k[2].sign(&json!({"exp": now + 60, "aud": "authenticated",
                                            "iss": "https://issuer.example/auth/v1"})),
        ),
        ("invalid_user", k[2].sign(&good(json!({"sub": ""})))),
    ];
    for (reason, token) in cases {
        let before = refused(&server, reason).await;
        let (status, _, body) = library(&server, &token).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert_eq!(body["status"], 401, "a problem document: {body}");
        assert_eq!(
            refused(&server, reason).await,
            before + 1.0,
            "{reason}: {body}"
        );
    }
    // Within the leeway, expired and not-yet-valid tokens still pass.
    let lenient = k[0].sign(&good(json!({"exp": now - 2, "nbf": now + 2})));
    assert_eq!(library(&server, &lenient).await.0, 200);
    // None of them cost a fetch of the key set (each kid was known, or there was none).
    assert_eq!(jwks.fetches(), 1);
    // And no token reached a log line.
    let logs = server.logs().join("\n");
    assert!(
        !logs.contains(&k[0].sign(&good(json!({})))[..40]),
        "a token was logged"
    );
}

#[tokio::test]
async fn a_rotated_in_kid_is_fetched_once_then_both_keys_verify_without_a_fetch() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    let server = start(&jwks, &[("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0")]);
    ready(&server).await;
    assert_eq!(jwks.fetches(), 1);

    // The provider rotates: a new key with a new kid, then tokens signed with it.
    let rotated = SigningKey::generate(KeyKind::Es256, "ec-2");
    jwks.add(&rotated);
    assert_eq!(
        library(&server, &rotated.sign(&claims("alice", 60)))
            .await
            .0,
        200
    );
    assert_eq!(
        jwks.fetches(),
        2,
        "the unknown kid fetched the key set once"
    );
    assert_eq!(
        library(&server, &k[0].sign(&claims("alice", 60))).await.0,
        200
    );
    assert_eq!(
        library(&server, &rotated.sign(&claims("alice", 60)))
            .await
            .0,
        200
    );
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_inside_the_min_refresh_window_is_a_401_without_a_fetch() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    // The default window, 30 s: the fetch at start is within it.
    let server = start(&jwks, &[]);
    ready(&server).await;
    let stranger = SigningKey::generate(KeyKind::EdDsa, "stranger");
    let (status, _, body) = library(&server, &stranger.sign(&claims("alice", 60))).await;
    assert_eq!(
        (status, &body["detail"]),
        (401, &json!("the token's kid is not in the key set"))
    );
    assert_eq!(jwks.fetches(), 1);
    assert_eq!(refused(&server, "unknown_kid").await, 1.0);
}

#[tokio::test]
async fn an_unknown_kid_past_the_window_is_refused_after_exactly_one_more_fetch() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    let server = start(&jwks, &[("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0")]);
    ready(&server).await;
    let before = jwks.fetches();
    let stranger = SigningKey::generate(KeyKind::Es256, "stranger");
    let (status, _, _) = library(&server, &stranger.sign(&claims("alice", 60))).await;
    assert_eq!(status, 401);
    assert_eq!(jwks.fetches(), before + 1);
}

#[tokio::test]
async fn a_key_set_down_at_start_keeps_readyz_at_503_and_tokens_at_503_until_it_is_up() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[1]]).await;
    jwks.set_up(false);
    let server = start(&jwks, &[("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0")]);
    let health = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(health.status(), 503);
    let token = k[1].sign(&claims("alice", 60));
    let (status, headers, body) = library(&server, &token).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert_eq!(body["code"], "auth_unavailable");
    // HS256 tokens need no key set: they pass meanwhile.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice", 60),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(library(&server, &hs).await.0, 200);

    jwks.set_up(true);
    ready(&server).await;
    assert_eq!(library(&server, &token).await.0, 200);
    server
        .wait_for_metric(
            "librarian_jwks_fetches_total",
            &[("result", "error")],
            |v| v >= 1.0,
        )
        .await;
}

#[tokio::test]
async fn while_the_key_set_is_down_known_kids_pass_and_an_unknown_kid_is_503() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    let server = start(&jwks, &[("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0")]);
    ready(&server).await;
    jwks.set_up(false);
    // The failed fetch keeps the last good keys.
    assert_eq!(
        library(&server, &k[0].sign(&claims("alice", 60))).await.0,
        200
    );
    let (status, headers, body) = library(&server, &k[2].sign(&claims("alice", 60))).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        library(&server, &k[0].sign(&claims("alice", 60))).await.0,
        200
    );
}

#[tokio::test]
async fn a_slow_key_set_is_given_up_after_the_fetch_timeout() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    let server = start(
        &jwks,
        &[
            ("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0"),
            ("LIBRARIAN__AUTH__JWKS_TIMEOUT_MS", "300"),
        ],
    );
    ready(&server).await;
    jwks.set_delay(Duration::from_secs(30));
    // The unknown kid's fetch waits at most the timeout, then the token gets 503.
    let (status, _, _) = library(&server, &k[1].sign(&claims("alice", 60))).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn the_key_set_is_fetched_again_per_its_max_age() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    jwks.set_cache_control(Some("public, max-age=1"));
    let _server = start(&jwks, &[("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0")]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // jwks_refresh_s is 600: only max-age can bring a third fetch within the patience.
    while jwks.fetches() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "max-age was not honoured"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_user_comes_from_auth_user_claim_and_an_auth_frame_takes_a_jwks_token() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0], &k[1]]).await;
    let server = start(&jwks, &[("LIBRARIAN__AUTH__USER_CLAIM", "email")]);
    ready(&server).await;
    let now = jsonwebtoken::get_current_timestamp();
    let token = |key: &SigningKey| {
        key.sign(&json!({"sub": "0b5c", "email": "ada@example.com", "exp": now + 60}))
    };
    let mut ws = connect(&server, &token(&k[0])).await;
    let hello = frame(&mut ws).await;
    assert_eq!(hello["user_id"], "ada@example.com");
    until(&mut ws, "snapshot").await;
    send(&mut ws, json!({"type": "auth", "token": token(&k[1])})).await;
    until(&mut ws, "auth_ok").await;
}

#[tokio::test]
async fn an_auth_frame_that_cannot_be_checked_while_the_key_set_is_down_closes_1013() {
    let k = keys();
    let jwks = JwksServer::start(&[&k[0]]).await;
    let server = start(&jwks, &[("LIBRARIAN__AUTH__JWKS_MIN_REFRESH_S", "0")]);
    ready(&server).await;
    let mut ws = connect(&server, &k[0].sign(&claims("alice", 60))).await;
    until(&mut ws, "snapshot").await;
    jwks.set_up(false);
    send(
        &mut ws,
        json!({"type": "auth", "token": k[1].sign(&claims("alice", 60))}),
    )
    .await;
    let (error, _) = until(&mut ws, "error").await;
    assert_eq!(error["code"], "auth_unavailable", "{error}");
    match librarian_testkit::ws::recv(&mut ws).await {
        librarian_testkit::ws::Got::Closed(code) => assert_eq!(code, Some(1013)),
        other => panic!("expected the close, got {other:?}"),
    }
}
