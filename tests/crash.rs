//! G8 across crashes: writers mutate over HTTP and WebSocket while the real `librarian` process
//! is killed with SIGKILL ten times, at moments picked by counting acknowledged writes (so the
//! test does the same work on a fast or a slow machine), and restarted. Afterwards every row
//! holds exactly what its last acknowledged write left, unless a later write that was never
//! acknowledged may have landed; acknowledged versions are distinct, increase along each
//! writer's writes and are never above the final one; and a new session converges. Both
//! backends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use futures_util::{SinkExt, StreamExt};
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{PATIENCE, connect, until};
use librarian_testkit::{Lcg, TestDb, both_backends};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Create,
    Update,
    Delete,
}

/// One write sent for a row, in the order its writer sent them.
#[derive(Debug)]
struct Attempt {
    op: Op,
    title: String,
    /// `Some(library_version)` once acknowledged. `None`: unacknowledged (the server was
    /// killed, restarting, timed out or refused), so it may or may not have been applied.
    acked: Option<i64>,
}

impl Attempt {
    /// The row's title once this write is the last one applied to it (`None`: no row).
    fn leaves(&self) -> Option<&str> {
        (self.op != Op::Delete).then_some(self.title.as_str())
    }
}

#[derive(Default)]
struct Journal {
    /// Every write sent, per row. Each row belongs to one writer, which sends one write at a
    /// time, so this is the order in which they reached the server.
    rows: HashMap<Uuid, Vec<Attempt>>,
    /// Each writer's acknowledged versions, in the order it sent the writes.
    versions: HashMap<u64, Vec<i64>>,
}

/// What the writers share with the test.
struct Shared {
    journal: Mutex<Journal>,
    /// SIGKILLs done so far. Process `n` (the one started after kill `n`) runs while this is
    /// `n`; it is bumped only once the process is dead.
    kills: AtomicU64,
    /// Acknowledged writes so far, to pick kill moments by progress rather than by time.
    acks: tokio::sync::watch::Sender<usize>,
}

/// One write; `None` when the server did not acknowledge it.
type Send = Box<
    dyn Fn(Op, Uuid, String) -> futures_util::future::BoxFuture<'static, Option<i64>>
        + std::marker::Send
        + Sync,
>;

async fn writer(
    seed: u64,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
    send: Send,
) {
    let mut rng = Lcg(seed);
    let mut mine: Vec<Uuid> = Vec::new();
    // A row whose last write went unacknowledged may still have that write pending in a live
    // server (a 503 after a timeout commits later; a request of a dropped connection runs on).
    // Such a row is left alone until every process that may hold the write is dead: then the
    // write either landed before the next one was sent, or never will. Row → `kills` seen
    // when the write failed.
    let mut pending: HashMap<Uuid, u64> = HashMap::new();
    let mut i = 0;
    while !*stop.borrow() {
        i += 1;
        let kills = shared.kills.load(Ordering::SeqCst);
        pending.retain(|_, seen| kills <= *seen);
        let usable: Vec<Uuid> = mine
            .iter()
            .filter(|id| !pending.contains_key(id))
            .copied()
            .collect();
        let (op, id) = match rng.next(4) {
            0 | 1 if !usable.is_empty() => (Op::Update, usable[rng.next(usable.len())]),
            2 if !usable.is_empty() => (Op::Delete, usable[rng.next(usable.len())]),
            _ => (Op::Create, Uuid::new_v4()),
        };
        let title = format!("w{seed} #{i}");
        let index = {
            let mut j = shared.journal.lock().unwrap();
            let attempts = j.rows.entry(id).or_default();
            attempts.push(Attempt {
                op,
                title: title.clone(),
                acked: None,
            });
            attempts.len() - 1
        };
        match send(op, id, title).await {
            Some(version) => {
                {
                    let mut j = shared.journal.lock().unwrap();
                    j.rows.get_mut(&id).unwrap()[index].acked = Some(version);
                    j.versions.entry(seed).or_default().push(version);
                }
                shared.acks.send_modify(|n| *n += 1);
                match op {
                    Op::Create => mine.push(id),
                    Op::Delete => mine.retain(|m| *m != id),
                    Op::Update => {}
                }
            }
            None => {
                if op == Op::Create {
                    // Never acknowledged: the row is not written to again (it may not exist).
                } else {
                    pending.insert(id, shared.kills.load(Ordering::SeqCst));
                }
                // Back off while the server restarts (pacing only: nothing is concluded from it).
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn http_sender(base: String, token: String) -> Send {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Box::new(move |op, id, title| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        Box::pin(async move {
            let req = match op {
                Op::Create => http
                    .post(format!("{base}/api/v1/context-blocks"))
                    .json(&json!({"id": id, "title": title})),
                Op::Update => http
                    .patch(format!("{base}/api/v1/context-blocks/{id}"))
                    .json(&json!({"title": title})),
                Op::Delete => http.delete(format!("{base}/api/v1/context-blocks/{id}")),
            };
            let res = req.bearer_auth(&token).send().await.ok()?;
            if !res.status().is_success() {
                return None;
            }
            res.json::<Value>().await.ok()?["library_version"].as_i64()
        })
    })
}

fn ws_sender(base: String, token: String) -> Send {
    let conn = Arc::new(tokio::sync::Mutex::new(None));
    Box::new(move |op, id, title| {
        let (conn, base, token) = (conn.clone(), base.clone(), token.clone());
        Box::pin(async move {
            let mut slot = conn.lock().await;
            if slot.is_none() {
                let url = format!(
                    "{}/api/v1/ws?access_token={token}",
                    base.replace("http://", "ws://")
                );
                *slot = Some(
                    tokio_tungstenite::connect_async(url.into_client_request().ok()?)
                        .await
                        .ok()?
                        .0,
                );
            }
            let ws = slot.as_mut()?;
            let mid = Uuid::new_v4().to_string();
            let frame = match op {
                Op::Create => {
                    json!({"type": "mutate", "mutation_id": mid, "op": "context_block.create", "id": id, "data": {"title": title}})
                }
                Op::Update => {
                    json!({"type": "mutate", "mutation_id": mid, "op": "context_block.update", "id": id, "data": {"title": title}})
                }
                Op::Delete => {
                    json!({"type": "mutate", "mutation_id": mid, "op": "context_block.delete", "id": id})
                }
            };
            let answer = async {
                ws.send(Message::Text(frame.to_string().into()))
                    .await
                    .ok()?;
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let f: Value = serde_json::from_str(&t).ok()?;
                        if f["mutation_id"] == mid.as_str() {
                            return f["library_version"].as_i64().filter(|_| f["type"] == "ack");
                        }
                    }
                }
                None
            };
            let version = tokio::time::timeout(Duration::from_secs(5), answer)
                .await
                .ok()
                .flatten();
            if version.is_none() {
                *slot = None; // reconnect next time
            }
            version
        })
    })
}

/// SIGKILL, then start again on the same address and database.
fn kill_and_restart(server: &mut TestServer, shared: &Shared) {
    server.kill();
    shared.kills.fetch_add(1, Ordering::SeqCst);
    server.restart();
}

/// Waits (hang guard only) until `more` writes were acknowledged since `since`.
async fn acks_after(shared: &Shared, since: usize, more: usize) -> usize {
    let mut acks = shared.acks.subscribe();
    let got = tokio::time::timeout(PATIENCE, acks.wait_for(|n| *n >= since + more))
        .await
        .expect("the writers made no progress after a restart");
    *got.unwrap()
}

/// The rows whose content no allowed history explains: for each row, the last acknowledged
/// write, or any later unacknowledged one, must be the last applied (a row never acknowledged
/// may also be missing). Also every row of the library must be one that was written.
fn unexplained(journal: &Journal, rows: &HashMap<Uuid, String>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (id, attempts) in &journal.rows {
        let last_acked = attempts.iter().rposition(|a| a.acked.is_some());
        let mut allowed: Vec<Option<&str>> = match last_acked {
            Some(l) => attempts[l..].iter().map(Attempt::leaves).collect(),
            None => attempts.iter().map(Attempt::leaves).collect(),
        };
        if last_acked.is_none() {
            allowed.push(None);
        }
        let got = rows.get(id).map(String::as_str);
        if !allowed.contains(&got) {
            wrong.push(format!(
                "{id} holds {got:?}; allowed {allowed:?}; writes {attempts:?}"
            ));
        }
    }
    for (id, title) in rows {
        if !journal.rows.contains_key(id) {
            wrong.push(format!("{id} ({title:?}) was never written"));
        }
    }
    wrong
}

both_backends! {
    async fn every_row_holds_its_last_acknowledged_write_across_ten_kills(db) {
        run(&db).await;
    }
}

async fn run(db: &TestDb) {
    let mut server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
    let token = server.token("alice");
    let shared = Arc::new(Shared {
        journal: Mutex::default(),
        kills: AtomicU64::new(0),
        acks: tokio::sync::watch::Sender::new(0),
    });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let writers = vec![
        tokio::spawn(writer(
            1,
            shared.clone(),
            stop.clone(),
            http_sender(server.base_url.clone(), token.clone()),
        )),
        tokio::spawn(writer(
            2,
            shared.clone(),
            stop.clone(),
            ws_sender(server.base_url.clone(), token.clone()),
        )),
    ];
    let mut rng = Lcg(42);
    let mut acks = 0;
    for _ in 0..10 {
        // A kill after 4–27 more acknowledged writes, then a little later still so that it
        // falls anywhere in the next request: reading, committing or answering.
        acks = acks_after(&shared, acks, 4 + rng.next(24)).await;
        tokio::time::sleep(Duration::from_millis(rng.next(20) as u64)).await;
        kill_and_restart(&mut server, &shared);
    }
    // Acknowledged writes on the last process too, then stop.
    acks_after(&shared, acks, 3).await;
    stop_tx.send(true).unwrap();
    for w in writers {
        w.await.unwrap();
    }
    // One more kill with the writers stopped: a write still pending in the server when the
    // writers gave up lands now or never, not after the library has been read.
    kill_and_restart(&mut server, &shared);

    let lib: Value = reqwest::Client::new()
        .get(server.url("/api/v1/library"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let final_version = lib["version"].as_i64().unwrap();
    let rows: HashMap<Uuid, String> = lib["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().parse().unwrap(),
                b["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let journal = std::mem::take(&mut *shared.journal.lock().unwrap());
    let attempts = journal.rows.values().flatten();
    let acked = attempts.clone().filter(|a| a.acked.is_some()).count();
    let unacked = attempts.filter(|a| a.acked.is_none()).count();
    assert!(acked >= 40, "only {acked} acknowledged writes");

    let mut seen = HashSet::new();
    for (w, versions) in &journal.versions {
        assert!(
            versions.windows(2).all(|p| p[0] < p[1]),
            "writer {w}: acknowledged versions do not increase: {versions:?}"
        );
        for v in versions {
            assert!(seen.insert(*v), "version {v} acknowledged twice");
            assert!(
                *v <= final_version,
                "acked v{v} above the final v{final_version}"
            );
        }
    }
    let wrong = unexplained(&journal, &rows);
    assert!(
        wrong.is_empty(),
        "{} rows do not hold their last acknowledged write:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // A session opened now converges on the final version.
    let mut ws = connect(&server, &token).await;
    let (snapshot, _) = until(&mut ws, "snapshot").await;
    assert_eq!(snapshot["version"].as_i64(), Some(final_version));
    println!(
        "{acked} acknowledged and {unacked} unacknowledged writes on {} rows across 11 kills, \
         final version {final_version}, every row as its last acknowledged write left it",
        journal.rows.len()
    );
}
