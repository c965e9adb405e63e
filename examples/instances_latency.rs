//! Cross-instance vs same-instance latency on PostgreSQL: a session on instance B; writes sent
//! to A (the commit reaches B through NOTIFY) or to B itself. Latency is from sending the HTTP
//! write to the session holding a snapshot at least as new as the write's version. A quick
//! measurement for notes; the benchmark proper is `librarian-bench`.
//!
//! ```sh
//! cargo build --release && LIBRARIAN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release --example instances_latency
//! ```

use librarian_testkit::TestDb;
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{Got, connect, recv};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const WRITES: usize = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Some(db) = TestDb::postgres().await else {
        anyhow::bail!("set LIBRARIAN_TEST_DATABASE_URL");
    };
    let secrets = tempfile::tempdir()?;
    let secret = secrets.path().join("dev-secret").display().to_string();
    let env = [
        ("LIBRARIAN__DATABASE__URL", db.url()),
        ("LIBRARIAN__AUTH__DEV_SECRET_FILE", secret.as_str()),
    ];
    let a = TestServer::start(&env);
    let b = TestServer::start(&env);
    let token = a.token("bench");

    let mut ws = connect(&b, &token).await;
    let (held_tx, mut held) = watch::channel(-1_i64);
    tokio::spawn(async move {
        while let Got::Frame(f) = recv(&mut ws).await {
            if f["type"] == "snapshot" {
                let _ = held_tx.send(f["version"].as_i64().unwrap_or(-1));
            }
        }
    });
    let http = reqwest::Client::new();
    let r: Value = http
        .post(b.url("/api/v1/context-blocks"))
        .bearer_auth(&token)
        .json(&json!({"title": "edited"}))
        .send()
        .await?
        .json()
        .await?;
    let block = r["data"]["id"].as_str().unwrap_or_default().to_owned();
    // Interleaved, editing one row: both kinds see the same library at the same size.
    let (mut same, mut cross) = (Vec::new(), Vec::new());
    for i in 0..2 * WRITES {
        let (target, times) = if i % 2 == 0 {
            (&b, &mut same)
        } else {
            (&a, &mut cross)
        };
        let started = Instant::now();
        let r: Value = http
            .patch(target.url(&format!("/api/v1/context-blocks/{block}")))
            .bearer_auth(&token)
            .json(&json!({"title": format!("edit {i}")}))
            .send()
            .await?
            .json()
            .await?;
        let v = r["library_version"].as_i64().unwrap_or(i64::MAX);
        held.wait_for(|h| *h >= v).await?;
        times.push(started.elapsed());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, mut times) in [
        ("same instance (write to B)", same),
        ("cross instance (write to A)", cross),
    ] {
        times.sort();
        println!(
            "{name}: write → session on B holds it, {WRITES} writes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(times[WRITES / 2]),
            ms(times[WRITES * 99 / 100]),
            ms(times[WRITES - 1])
        );
    }
    Ok(())
}
