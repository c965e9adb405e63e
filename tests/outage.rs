//! The database going away under a running server: mutations fail fast with 503 problem+json
//! (never hang, never 500), and once it is back nothing half-written exists and every
//! acknowledged write is there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::TestDb;
use librarian_testkit::proxy::TcpProxy;
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{Ws, connect, until};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Hang guard for one request; the server's own limits are far shorter.
const PATIENCE: Duration = Duration::from_secs(30);

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Creates a block and a prompt using it; returns the statuses.
    async fn write_pair(&self, i: usize) -> (u16, Option<Value>) {
        let res = self
            .http
            .post(format!("{}/api/v1/context-blocks", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"title": format!("block {i}")}))
            .timeout(PATIENCE)
            .send()
            .await
            .expect("the server must answer, not hang");
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").is_some();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = res.json().await.unwrap();
        if status == 503 {
            assert!(retry_after, "503 without Retry-After");
            assert_eq!(ct.as_deref(), Some("application/problem+json"));
            assert_eq!(body["code"], "database_unavailable");
            return (status, None);
        }
        assert_eq!(status, 201, "{body}");
        let block = body["data"]["id"].clone();
        let res = self
            .http
            .post(format!("{}/api/v1/saved-prompts", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"title": format!("prompt {i}"), "context_block_ids": [block]}))
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(status == 201 || status == 503, "unexpected {status}");
        (status, Some(block))
    }

    async fn library(&self) -> Value {
        self.http
            .get(format!("{}/api/v1/library", self.base))
            .bearer_auth(&self.token)
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Writes before, during and after the outage, then checks the library against the acks.
async fn run(server: &TestServer, outage: impl AsyncFnOnce(), recover: impl AsyncFnOnce()) {
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base_url.clone(),
        token: server.token("alice"),
    };
    let mut acked_blocks = Vec::new();
    let mut acked = 0;
    for i in 0..5 {
        let (status, block) = client.write_pair(i).await;
        assert_eq!(status, 201);
        acked_blocks.extend(block);
        acked += 2;
    }
    outage().await;
    let mut refused = 0;
    for i in 5..8 {
        let (status, block) = client.write_pair(i).await;
        if status == 503 {
            refused += 1;
        } else {
            acked_blocks.extend(block);
            acked += 2;
        }
    }
    assert!(
        refused > 0,
        "writes during the outage should have been refused"
    );
    recover().await;
    // The pool reconnects on demand: the first writes after recovery succeed.
    for i in 8..10 {
        let (status, block) = client.write_pair(i).await;
        assert_eq!(status, 201);
        acked_blocks.extend(block);
        acked += 2;
    }
    let lib = client.library().await;
    let blocks: Vec<&Value> = lib["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["id"])
        .collect();
    let prompts = lib["saved_prompts"].as_array().unwrap();
    for b in &acked_blocks {
        assert!(blocks.contains(&b), "acked block {b} is missing");
    }
    // No half-written pair: every prompt's block exists, versions count exactly the commits.
    for p in prompts {
        for b in p["context_block_ids"].as_array().unwrap() {
            assert!(blocks.contains(&b));
        }
    }
    assert_eq!(
        lib["version"].as_i64().unwrap(),
        (blocks.len() + prompts.len()) as i64
    );
    assert!(lib["version"].as_i64().unwrap() >= acked);
}

/// Reads status frames until one in `state` arrives.
async fn state(ws: &Arc<tokio::sync::Mutex<Ws>>, want: &str) -> Value {
    loop {
        let (status, _) = until(&mut *ws.lock().await, "status").await;
        if status["state"] == want {
            return status;
        }
    }
}

// Multi-threaded: the proxy's tasks must run while the test blocks on starting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_gives_503_and_loses_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.store().await; // migrate through the direct address
    let proxy = TcpProxy::start(db.postgres_addr().unwrap()).await;
    let server = TestServer::start(&[
        ("LIBRARIAN__DATABASE__URL", &db.url_through(proxy.addr)),
        ("LIBRARIAN__DATABASE__CONNECT_TIMEOUT_MS", "1000"),
        ("LIBRARIAN__DATABASE__QUERY_TIMEOUT_MS", "2000"),
        ("LIBRARIAN__SYNC__RECONCILE_INTERVAL_MS", "200"),
    ]);
    // A session open through the outage is told (status error, with retry_in_ms), then recovers.
    let token = server.token("alice");
    let ws = Arc::new(tokio::sync::Mutex::new(connect(&server, &token).await));
    until(&mut *ws.lock().await, "snapshot").await;
    let (ws1, ws2) = (ws.clone(), ws.clone());
    run(
        &server,
        async || {
            proxy.cut();
            let error = state(&ws1, "error").await;
            assert_eq!(error["code"], "database_unavailable");
            assert!(error["retry_in_ms"].as_u64().unwrap() > 0);
        },
        async || {
            proxy.restore().await;
            let back = std::time::Instant::now();
            state(&ws2, "live").await;
            println!(
                "session live again {:?} after the database came back",
                back.elapsed()
            );
        },
    )
    .await;
    // And it converges on everything written.
    let final_version = reqwest::Client::new()
        .get(server.url("/api/v1/library"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["version"]
        .as_i64()
        .unwrap();
    loop {
        let (snapshot, _) = until(&mut *ws.lock().await, "snapshot").await;
        if snapshot["version"].as_i64().unwrap() >= final_version {
            break;
        }
    }
}

/// Another process's hold on a SQLite file's write lock: taken by [`SqliteLock::take`], released
/// when dropped.
struct SqliteLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl SqliteLock {
    /// Returns once the lock is held.
    fn take(db: &TestDb) -> SqliteLock {
        let path = librarian_testkit::librarian_store::sqlite_path(db.url()).unwrap();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            use diesel::connection::SimpleConnection;
            let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(
                &path.to_string_lossy(),
            )
            .unwrap();
            conn.batch_execute("BEGIN EXCLUSIVE").unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            conn.batch_execute("COMMIT").unwrap();
        });
        locked_rx.recv().unwrap();
        SqliteLock {
            release: Some(release),
            holder: Some(holder),
        }
    }
}

impl Drop for SqliteLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            holder.join().unwrap();
        }
    }
}

#[tokio::test]
async fn sqlite_locked_by_another_process_gives_503_and_loses_nothing() {
    let db = TestDb::sqlite();
    db.store().await;
    let server = TestServer::start(&[
        ("LIBRARIAN__DATABASE__URL", db.url()),
        ("LIBRARIAN__DATABASE__CONNECT_TIMEOUT_MS", "500"),
    ]);
    // Another process holding the write lock: SQLite's equivalent of an unreachable database.
    let lock = std::sync::Mutex::new(None);
    run(
        &server,
        async || *lock.lock().unwrap() = Some(SqliteLock::take(&db)),
        async || drop(lock.lock().unwrap().take()),
    )
    .await;
}

/// A SQLite write that outlives its request's timeout (it waits on a lock another process
/// holds) answers 503 "may or may not have been applied"; when it commits later anyway,
/// sessions still get it at once, with no reconciliation to heal a missed event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_that_commits_after_its_timeout_still_reaches_sessions() {
    let db = TestDb::sqlite();
    db.store().await;
    let server = TestServer::start(&[
        ("LIBRARIAN__DATABASE__URL", db.url()),
        ("LIBRARIAN__DATABASE__QUERY_TIMEOUT_MS", "300"),
        ("LIBRARIAN__DATABASE__CONNECT_TIMEOUT_MS", "30000"),
        ("LIBRARIAN__SYNC__RECONCILE_INTERVAL_MS", "0"),
    ]);
    let token = server.token("alice");
    let mut ws = connect(&server, &token).await;
    until(&mut ws, "snapshot").await;
    let lock = SqliteLock::take(&db);
    let res = reqwest::Client::new()
        .post(server.url("/api/v1/context-blocks"))
        .bearer_auth(&token)
        .json(&json!({"title": "late"}))
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let problem: Value = res.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("may or may not have been applied"),
        "{detail}"
    );
    drop(lock);
    let (snapshot, _) = until(&mut ws, "snapshot").await;
    assert_eq!(snapshot["version"], 1);
    assert_eq!(snapshot["context_blocks"][0]["title"], "late");
}
