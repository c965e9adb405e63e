//! Commit → last-session latency with 10 sessions on a 300-item library, and the server's
//! memory with 1 000 idle sessions, against the real release binary. A quick measurement for
//! notes; the benchmark proper is `librarian-bench`.
//!
//! ```sh
//! cargo build --release && LIBRARIAN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release --example ws_latency
//! ```
//!
//! Latency is measured from sending the HTTP write to the moment the last of the 10 sessions
//! has received a snapshot at least as new as the write's `library_version` (it includes the
//! HTTP round trip of the write itself).

use futures_util::StreamExt;
use librarian_testkit::TestDb;
use librarian_testkit::server::TestServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SESSIONS: usize = 10;
const WRITES: usize = 300;
const IDLE: usize = 1_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    measure("sqlite", &TestDb::sqlite()).await?;
    if let Some(db) = TestDb::postgres().await {
        measure("postgres", &db).await?;
    }
    Ok(())
}

async fn session(server: &TestServer, token: &str) -> anyhow::Result<watch::Receiver<i64>> {
    let url = format!("{}/api/v1/ws", server.base_url.replace("http://", "ws://"));
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let (tx, rx) = watch::channel(-1);
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg
                && t.starts_with(r#"{"type":"snapshot""#)
            {
                // `{"type":"snapshot","version":N,…`: read just the version, so the client's
                // own JSON parsing (10 × 140 KB per write) does not cloud the measurement.
                let rest = &t[r#"{"type":"snapshot","version":"#.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(digits.parse().unwrap_or(-1));
            }
        }
    });
    Ok(rx)
}

async fn measure(name: &str, db: &TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
    let token = server.token("bench");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(server.url(&format!("/api/v1{path}")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let mut blocks = Vec::new();
    for i in 0..100 {
        post("/projects", json!({"name": format!("Project {i}")})).await?;
        let r: Value = post("/context-blocks", json!({"title": format!("Block {i}"), "content": "You are a careful assistant. ".repeat(10)})).await?.json().await?;
        blocks.push(r["data"]["id"].as_str().unwrap_or_default().to_owned());
    }
    for i in 0..100 {
        let ids: Vec<&String> = (0..5)
            .map(|k| &blocks[(i + k * 13) % blocks.len()])
            .collect();
        post(
            "/saved-prompts",
            json!({"title": format!("Prompt {i}"), "context_block_ids": ids}),
        )
        .await?;
    }
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(session(&server, &token).await?);
    }
    let target = &blocks[0];
    let mut times = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let started = Instant::now();
        let r: Value = http
            .patch(server.url(&format!("/api/v1/context-blocks/{target}")))
            .bearer_auth(&token)
            .json(&json!({"title": format!("edit {i}")}))
            .send()
            .await?
            .json()
            .await?;
        let version = r["library_version"].as_i64().unwrap_or(i64::MAX);
        for s in &mut sessions {
            s.wait_for(|v| *v >= version).await?;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: write → last of {SESSIONS} sessions holds it, 300-item library, {WRITES} writes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(times[WRITES / 2]),
        ms(times[WRITES * 99 / 100]),
        ms(times[WRITES - 1])
    );

    drop(sessions);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let mut idle = Vec::new();
    for u in 0..IDLE / 10 {
        let token = server.token(&format!("idle{u}"));
        for _ in 0..10 {
            idle.push(session(&server, &token).await?);
        }
    }
    for s in &mut idle {
        s.wait_for(|v| *v >= 0).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    println!(
        "{name}: RSS {before} KiB before, {after} KiB with {IDLE} idle sessions ({} users × 10): {:.1} KiB per session",
        IDLE / 10,
        (after.saturating_sub(before)) as f64 / IDLE as f64
    );
    Ok(())
}
