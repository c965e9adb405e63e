//! Hosted auth against the real binary (DESIGN §11): a fresh token on the open socket (`auth`
//! → `auth_ok`) keeps a session past the first token's `exp`; another user's or a bad token
//! closes it with 4401. The JWKS half (RS256 / ES256 / EdDSA, rotation, an unreachable key
//! set) is in `tests/jwks.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{Got, connect, frame, recv, send, until};
use serde_json::json;
use std::time::Duration;

const SECRET: &str = "a-secret-for-the-auth-tests-0123456789abcdef";

fn start() -> TestServer {
    TestServer::start(&[
        ("LIBRARIAN__AUTH__MODE", "jwt"),
        ("LIBRARIAN__AUTH__JWT_SECRET", SECRET),
        ("LIBRARIAN__AUTH__LEEWAY_S", "0"),
    ])
}

/// An HS256 token for `user` that expires `ttl_s` from now.
fn token(user: &str, ttl_s: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": user, "exp": now + ttl_s, "iat": now}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rfc3339(secs: u64) -> String {
    librarian_core::time::Timestamp((secs * 1000) as i64).to_string()
}

#[tokio::test]
async fn a_fresh_token_on_the_open_socket_keeps_the_session_past_the_first_tokens_exp() {
    let server = start();
    let first = token("alice", 3);
    let mut ws = connect(&server, &first).await;
    let hello = frame(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    let exp = jsonwebtoken::get_current_timestamp() + 3;
    let said = hello["expires_at"].as_str().unwrap().to_owned();
    assert!(
        [rfc3339(exp - 1), rfc3339(exp)].contains(&said),
        "hello.expires_at {said} is not the token's exp"
    );
    until(&mut ws, "snapshot").await;

    let fresh = token("alice", 120);
    send(&mut ws, json!({"type": "auth", "token": fresh})).await;
    let (ok, _) = until(&mut ws, "auth_ok").await;
    let exp = jsonwebtoken::get_current_timestamp() + 120;
    let said = ok["expires_at"].as_str().unwrap().to_owned();
    assert!([rfc3339(exp - 1), rfc3339(exp)].contains(&said), "{ok}");

    // Past the first token's exp (leeway 0): the session is still there and serves writes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    send(
        &mut ws,
        json!({"type": "mutate", "mutation_id": "m1", "op": "project.create", "data": {"name": "p"}}),
    )
    .await;
    let (ack, _) = until(&mut ws, "ack").await;
    assert_eq!(ack["mutation_id"], "m1");
}

#[tokio::test]
async fn without_a_refresh_the_session_closes_at_expiry_with_4401() {
    let server = start();
    let mut ws = connect(&server, &token("alice", 2)).await;
    until(&mut ws, "snapshot").await;
    loop {
        match recv(&mut ws).await {
            Got::Closed(code) => {
                assert_eq!(code, Some(4401));
                break;
            }
            Got::Frame(_) => {}
        }
    }
}

/// Reads to the session's end: the `error` frame's code and the close code.
async fn ending(ws: &mut librarian_testkit::ws::Ws) -> (String, Option<u16>) {
    let mut code = String::new();
    loop {
        match recv(ws).await {
            Got::Frame(f) if f["type"] == "error" => code = f["code"].as_str().unwrap().into(),
            Got::Frame(f) => assert_ne!(f["type"], "auth_ok", "{f}"),
            Got::Closed(close) => return (code, close),
        }
    }
}

#[tokio::test]
async fn another_users_token_on_the_socket_closes_it_with_4401() {
    let server = start();
    let mut ws = connect(&server, &token("alice", 60)).await;
    until(&mut ws, "snapshot").await;
    send(
        &mut ws,
        json!({"type": "auth", "token": token("mallory", 60)}),
    )
    .await;
    assert_eq!(ending(&mut ws).await, ("invalid_token".into(), Some(4401)));
}

#[tokio::test]
async fn a_bad_token_on_the_socket_closes_it_with_4401_and_a_malformed_auth_frame_with_4400() {
    let server = start();
    let now = jsonwebtoken::get_current_timestamp();
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "exp": now - 10}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "exp": now + 60}),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes-long!"),
    )
    .unwrap();
    for bad in [expired, forged, "not.a.jwt".to_owned()] {
        let mut ws = connect(&server, &token("alice", 60)).await;
        until(&mut ws, "snapshot").await;
        send(&mut ws, json!({"type": "auth", "token": bad})).await;
        assert_eq!(ending(&mut ws).await, ("invalid_token".into(), Some(4401)));
    }
    for malformed in [
        json!({"type": "auth"}),
        json!({"type": "auth", "token": 7}),
        json!({"type": "auth", "token": "t", "extra": 1}),
    ] {
        let mut ws = connect(&server, &token("alice", 60)).await;
        until(&mut ws, "snapshot").await;
        send(&mut ws, malformed).await;
        assert_eq!(
            ending(&mut ws).await,
            ("malformed_frame".into(), Some(4400))
        );
    }
}
