//! Per-write latency over HTTP: 1 000 sequential creates against the real release binary, on
//! SQLite and (when `LIBRARIAN_TEST_DATABASE_URL` is set) PostgreSQL. A quick measurement for
//! notes; the benchmark proper is `librarian-bench`.
//!
//! ```sh
//! cargo build --release && LIBRARIAN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release --example write_latency
//! ```

use librarian_testkit::TestDb;
use librarian_testkit::server::TestServer;
use std::time::{Duration, Instant};

const WRITES: usize = 1_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    measure("sqlite", &TestDb::sqlite()).await?;
    if let Some(db) = TestDb::postgres().await {
        measure("postgres", &db).await?;
    }
    Ok(())
}

async fn measure(name: &str, db: &TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
    let token = server.token("bench");
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/context-blocks");
    let mut times: Vec<Duration> = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let started = Instant::now();
        let res = http
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": format!("block {i}"), "content": "x".repeat(200)}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == 201, "create failed: {}", res.status());
        res.bytes().await?;
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: {WRITES} sequential creates over HTTP: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(times[WRITES / 2]),
        ms(times[WRITES * 99 / 100]),
        ms(times[WRITES - 1])
    );
    Ok(())
}
