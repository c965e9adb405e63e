//! Security: another user's ids on every endpoint and WebSocket op, tokens of another
//! algorithm family, logs free of tokens and secrets, CORS and the WebSocket Origin check. On
//! both backends, except the checks that are settled before any store is involved (said at
//! the test). The asymmetric algorithms and their confusion attacks (`alg: none`, HS256 signed
//! with a public key, an algorithm that does not match its key, unknown or missing `kid`) are
//! in `tests/jwks.rs`, against a key set the testkit serves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect, connect_with, send, until};
use librarian_testkit::{TestDb, both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "a-jwt-secret-that-must-never-be-logged-0123456789";

fn start(db: &TestDb, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("LIBRARIAN__DATABASE__URL", db.url())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

both_backends! {
    async fn another_users_ids_on_every_endpoint_and_ws_op_change_and_reveal_nothing(db) {
        another_users_ids(&db).await;
    }
    async fn tokens_and_secrets_never_reach_the_logs(db) {
        tokens_and_secrets_in_logs(&db).await;
    }
}

async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn another_users_ids(db: &TestDb) {
    let server = start(db, &[]);
    let alice = server.token("alice");
    let mallory = server.token("mallory");
    let (_, p) = call(
        &server,
        &alice,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "secret p"})),
    )
    .await;
    let (_, b) = call(
        &server,
        &alice,
        Method::POST,
        "/api/v1/context-blocks",
        Some(json!({"title": "secret b"})),
    )
    .await;
    let (p, b) = (
        p["data"]["id"].as_str().unwrap().to_owned(),
        b["data"]["id"].as_str().unwrap().to_owned(),
    );
    let (_, s) = call(
        &server,
        &alice,
        Method::POST,
        "/api/v1/saved-prompts",
        Some(json!({"title": "secret s", "context_block_ids": [b]})),
    )
    .await;
    let s = s["data"]["id"].as_str().unwrap().to_owned();
    let before = call(&server, &alice, Method::GET, "/api/v1/library", None)
        .await
        .1;

    // HTTP: every route that takes an id, and every create that references one.
    let mut cases: Vec<(Method, String, Option<Value>, u16)> = Vec::new();
    for (kind, id) in [
        ("projects", &p),
        ("context-blocks", &b),
        ("saved-prompts", &s),
    ] {
        cases.push((Method::GET, format!("/api/v1/{kind}/{id}"), None, 404));
        cases.push((
            Method::PATCH,
            format!("/api/v1/{kind}/{id}"),
            Some(json!({})),
            404,
        ));
        cases.push((Method::DELETE, format!("/api/v1/{kind}/{id}"), None, 404));
    }
    cases.push((
        Method::POST,
        "/api/v1/projects".into(),
        Some(json!({"name": "x", "parent_id": p})),
        422,
    ));
    cases.push((
        Method::POST,
        "/api/v1/context-blocks".into(),
        Some(json!({"title": "x", "project_id": p})),
        422,
    ));
    cases.push((
        Method::POST,
        "/api/v1/saved-prompts".into(),
        Some(json!({"title": "x", "context_block_ids": [b]})),
        422,
    ));
    for (method, path, body, want) in cases {
        let (status, reply) = call(&server, &mallory, method.clone(), &path, body).await;
        assert_eq!(status, want, "{method} {path}: {reply}");
        assert!(
            !reply.to_string().contains("secret"),
            "{method} {path} leaked: {reply}"
        );
    }
    // WebSocket: all nine ops aimed at alice's rows.
    let mut ws = connect(&server, &mallory).await;
    until(&mut ws, "snapshot").await;
    let ops = [
        ("project.update", Some(&p), json!({"name": "mine"}), 404),
        ("project.delete", Some(&p), Value::Null, 404),
        (
            "context_block.update",
            Some(&b),
            json!({"title": "mine"}),
            404,
        ),
        ("context_block.delete", Some(&b), Value::Null, 404),
        (
            "saved_prompt.update",
            Some(&s),
            json!({"title": "mine"}),
            404,
        ),
        ("saved_prompt.delete", Some(&s), Value::Null, 404),
        (
            "project.create",
            None,
            json!({"name": "x", "parent_id": p}),
            422,
        ),
        (
            "context_block.create",
            None,
            json!({"title": "x", "project_id": p}),
            422,
        ),
        (
            "saved_prompt.create",
            None,
            json!({"title": "x", "context_block_ids": [b]}),
            422,
        ),
    ];
    for (i, (op, id, data, want)) in ops.into_iter().enumerate() {
        let mut frame =
            json!({"type": "mutate", "mutation_id": format!("m{i}"), "op": op, "data": data});
        if let Some(id) = id {
            frame["id"] = json!(id);
        }
        send(&mut ws, frame).await;
        let (reject, _) = until(&mut ws, "reject").await;
        assert_eq!(reject["error"]["status"], want, "{op}: {reject}");
        assert!(
            !reject.to_string().contains("secret"),
            "{op} leaked: {reject}"
        );
    }
    let after = call(&server, &alice, Method::GET, "/api/v1/library", None)
        .await
        .1;
    assert_eq!(after, before, "alice's library changed");
    let theirs = call(&server, &mallory, Method::GET, "/api/v1/library", None)
        .await
        .1;
    assert!(!theirs.to_string().contains("secret"));
}

async fn tokens_and_secrets_in_logs(db: &TestDb) {
    let server = start(
        db,
        &[
            ("LIBRARIAN__AUTH__MODE", "jwt"),
            ("LIBRARIAN__AUTH__JWT_SECRET", SECRET),
            ("LIBRARIAN__LOG__LEVEL", "trace"),
        ],
    );
    let token = server.token("alice");
    let (status, _) = call(
        &server,
        &token,
        Method::POST,
        "/api/v1/context-blocks",
        Some(json!({"title": "t"})),
    )
    .await;
    assert_eq!(status, 201);
    call(
        &server,
        &format!("{token}x"),
        Method::GET,
        "/api/v1/library",
        None,
    )
    .await;
    let mut ws = connect_with(&server, &format!("?access_token={token}"), None)
        .await
        .unwrap();
    until(&mut ws, "snapshot").await;
    drop(ws);
    // Everything the session logs, up to its last line. Then one more request, so that what
    // the server logged about the closed connection meanwhile is in too (one ordered stream).
    server
        .wait_for_log("the session's close", |l| l.contains("\"session closed\""))
        .await;
    call(&server, &token, Method::GET, "/healthz", None).await;
    server
        .wait_for_log("the last request", |l| {
            l.contains("\"request\"") && l.contains("\"route\":\"/healthz\"")
        })
        .await;
    let logs = server.logs().join("\n");
    assert!(logs.contains("request"), "expected request log lines");
    let signature = token.rsplit('.').next().unwrap();
    for needle in [token.as_str(), signature, SECRET] {
        assert!(
            !logs.contains(needle),
            "a log line carries a token or the secret"
        );
    }
}

/// SQLite only: a token is refused by the authentication middleware, before any store is used.
/// Without `auth.jwks_url` no asymmetric token is accepted, whatever its header says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_algorithm_family_is_refused() {
    let server = TestServer::start(&[
        ("LIBRARIAN__AUTH__MODE", "jwt"),
        ("LIBRARIAN__AUTH__JWT_SECRET", SECRET),
    ]);
    let claims = json!({"sub": "alice", "exp": jsonwebtoken::get_current_timestamp() + 600});
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let token = format!(
            "{}.{}.{}",
            B64.encode(json!({"alg": alg, "typ": "JWT"}).to_string()),
            B64.encode(claims.to_string()),
            B64.encode([7u8; 64])
        );
        let (status, body) = call(&server, &token, Method::GET, "/api/v1/library", None).await;
        assert_eq!(status, 401, "{alg}: {body}");
    }
    // HS384 / HS512 with the right secret: still not HS256.
    for alg in [
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let (status, body) = call(&server, &token, Method::GET, "/api/v1/library", None).await;
        assert_eq!(status, 401, "{alg:?}: {body}");
    }
}

/// SQLite only: CORS and the WebSocket Origin check are decided on the request's headers,
/// before any store is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_own_page_and_listed_origins_may_use_the_api_from_a_browser() {
    let server = TestServer::start(&[(
        "LIBRARIAN__SERVER__ALLOWED_ORIGINS",
        "https://app.example,https://other.example",
    )]);
    let token = server.token("alice");
    let own = server.base_url.clone();
    let preflight = |origin: &str| {
        reqwest::Client::new()
            .request(Method::OPTIONS, server.url("/api/v1/library"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    for (origin, allowed) in [
        ("https://app.example", true),
        (own.as_str(), true),
        ("https://evil.example", false),
    ] {
        let res = preflight(origin).await.unwrap();
        let acao = res
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            acao.as_deref() == Some(origin),
            allowed,
            "{origin}: {acao:?}"
        );
    }
    let ws_with_origin = |origin: &'static str| {
        let url = format!(
            "{}/api/v1/ws?access_token={token}",
            server.base_url.replace("http://", "ws://")
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    assert!(ws_with_origin("https://app.example").await.is_ok());
    match ws_with_origin("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}
