//! Hardening end to end, on the real binary: the idempotency purge runs at start, `/readyz`
//! and `librarian migrate` answer within the query timeout even when the database stalls, and
//! a library row deleted behind the server's back is not a 500 for ever.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::proxy::TcpProxy;
use librarian_testkit::server::TestServer;
use librarian_testkit::{TestDb, both_backends};
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

/// Deletes alice's library row behind the server's back; its rows go with it (ON DELETE
/// CASCADE, which SQLite applies only with foreign keys on).
async fn delete_alices_library(db: &TestDb) {
    let delete = "DELETE FROM libraries WHERE default_for = 'alice'";
    if db.is_postgres() {
        db.execute(delete).await;
    } else {
        db.execute(&format!("PRAGMA foreign_keys = ON; {delete}"))
            .await;
    }
}

both_backends! {
    async fn a_write_to_a_library_deleted_behind_the_servers_back_is_refused_once_then_works(db) {
        let server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
        let api = Api::new(&server, "alice");
        let (status, body) = api.post("/context-blocks", None, json!({"title": "before"})).await;
        assert_eq!(status, 201, "{body}");

        delete_alices_library(&db).await;
        let (status, problem) = api.post("/context-blocks", None, json!({"title": "lost"})).await;
        assert_eq!(status, 404, "a clear refusal, not a 500: {problem}");
        assert_eq!(problem["code"], "library_not_found", "{problem}");
        // The next request works, in the user's new library.
        let (status, body) = api.post("/context-blocks", None, json!({"title": "after"})).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["library_version"], 1);
        let library: Value = api
            .http
            .get(format!("{}/library", api.base))
            .bearer_auth(&api.token)
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(library["version"], 1);
        assert_eq!(library["context_blocks"].as_array().unwrap().len(), 1);
        assert_eq!(library["context_blocks"][0]["title"], "after");
    }

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

/// Server settings under which only the query timeout can answer within [`PATIENCE`]: the pool
/// would wait up to the connect timeout to check or open a connection.
const ONLY_THE_QUERY_TIMEOUT: [(&str, &str); 2] = [
    ("LIBRARIAN__DATABASE__CONNECT_TIMEOUT_MS", "600000"),
    ("LIBRARIAN__DATABASE__QUERY_TIMEOUT_MS", "1000"),
];

async fn readyz(server: &TestServer) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url("/readyz"))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("/readyz must answer, not hang")
}

// Multi-threaded: the proxy's tasks must run while the test blocks on starting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_within_the_query_timeout_when_postgres_stalls() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.store().await; // migrate through the direct address
    let proxy = TcpProxy::start(db.postgres_addr().unwrap()).await;
    let url = db.url_through(proxy.addr);
    let mut env = vec![("LIBRARIAN__DATABASE__URL", url.as_str())];
    env.extend(ONLY_THE_QUERY_TIMEOUT);
    let server = TestServer::start(&env);
    assert_eq!(readyz(&server).await.status(), 200);

    proxy.stall();
    let res = readyz(&server).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "database_unavailable");

    // Ready again once the database answers.
    proxy.restore().await;
    let deadline = Instant::now() + PATIENCE;
    while readyz(&server).await.status() != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librarian_migrate_fails_with_a_clear_error_when_postgres_stalls() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let proxy = TcpProxy::start(db.postgres_addr().unwrap()).await;
    proxy.stall();
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(librarian_testkit::server::binary())
        .arg("migrate")
        .current_dir(dir.path())
        .env("LIBRARIAN__DATABASE__URL", db.url_through(proxy.addr))
        .envs(ONLY_THE_QUERY_TIMEOUT)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let done = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("librarian migrate must give up, not hang")
        .unwrap();
    let (status, out) = (done.status, String::from_utf8_lossy(&done.stderr));
    assert!(!status.success(), "{out}");
    assert!(out.contains("migrations not applied"), "{out}");
    assert!(out.contains("database.query_timeout_ms"), "{out}");
}
