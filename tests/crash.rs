//! G8 across crashes: writers mutate over HTTP and WebSocket while the real `librarian` process
//! is killed with SIGKILL ten times at random moments and restarted. Afterwards every
//! acknowledged create and update is there (with its content or a later one), every
//! acknowledged delete is gone, acknowledged versions are distinct and never above the final
//! one, and a new session converges. Both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use futures_util::{SinkExt, StreamExt};
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect, until};
use librarian_testkit::{Lcg, both_backends};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

#[derive(Default)]
struct Journal {
    /// Every title ever sent for an id (acknowledged or not: an unacknowledged write may
    /// still have committed before the kill).
    attempted: HashMap<Uuid, HashSet<String>>,
    /// Acknowledged: (id, op, version, title).
    acked: Vec<(Uuid, &'static str, i64, String)>,
    /// Ids with a delete sent after their last acknowledged write: it may have committed even
    /// though its acknowledgement was lost, so the row may legitimately be gone.
    maybe_deleted: HashSet<Uuid>,
}

/// One write; `None` when the server did not acknowledge it (killed, restarting).
type Send = Box<
    dyn Fn(&'static str, Uuid, String) -> futures_util::future::BoxFuture<'static, Option<i64>>
        + std::marker::Send
        + Sync,
>;

async fn writer(
    seed: u64,
    journal: Arc<Mutex<Journal>>,
    stop: tokio::sync::watch::Receiver<bool>,
    send: Send,
) {
    let mut rng = Lcg(seed);
    let mut mine: Vec<Uuid> = Vec::new();
    let mut i = 0;
    while !*stop.borrow() {
        i += 1;
        let (op, id) = match rng.next(4) {
            0 | 1 if !mine.is_empty() => ("update", mine[rng.next(mine.len())]),
            2 if !mine.is_empty() => ("delete", mine[rng.next(mine.len())]),
            _ => ("create", Uuid::new_v4()),
        };
        let title = format!("w{seed} #{i}");
        {
            let mut j = journal.lock().unwrap();
            j.attempted.entry(id).or_default().insert(title.clone());
            if op == "delete" {
                j.maybe_deleted.insert(id);
            }
        }
        match send(op, id, title.clone()).await {
            Some(version) => {
                let mut j = journal.lock().unwrap();
                if op != "delete" {
                    j.maybe_deleted.remove(&id);
                }
                j.acked.push((id, op, version, title));
                match op {
                    "create" => mine.push(id),
                    "delete" => mine.retain(|m| *m != id),
                    _ => {}
                }
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
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
                "create" => http
                    .post(format!("{base}/api/v1/context-blocks"))
                    .json(&json!({"id": id, "title": title})),
                "update" => http
                    .patch(format!("{base}/api/v1/context-blocks/{id}"))
                    .json(&json!({"title": title})),
                _ => http.delete(format!("{base}/api/v1/context-blocks/{id}")),
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
                "create" => {
                    json!({"type": "mutate", "mutation_id": mid, "op": "context_block.create", "id": id, "data": {"title": title}})
                }
                "update" => {
                    json!({"type": "mutate", "mutation_id": mid, "op": "context_block.update", "id": id, "data": {"title": title}})
                }
                _ => {
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

both_backends! {
    async fn acknowledged_writes_survive_ten_kills(db) {
        let mut server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
        let token = server.token("alice");
        let journal = Arc::new(Mutex::new(Journal::default()));
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let writers = vec![
            tokio::spawn(writer(1, journal.clone(), stop.clone(), http_sender(server.base_url.clone(), token.clone()))),
            tokio::spawn(writer(2, journal.clone(), stop.clone(), ws_sender(server.base_url.clone(), token.clone()))),
        ];
        let mut rng = Lcg(42);
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(50 + rng.next(250) as u64)).await;
            server.kill();
            server.restart();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_tx.send(true).unwrap();
        for w in writers {
            w.await.unwrap();
        }

        let lib: Value = reqwest::Client::new()
            .get(server.url("/api/v1/library")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let final_version = lib["version"].as_i64().unwrap();
        let rows: HashMap<Uuid, String> = lib["context_blocks"].as_array().unwrap().iter()
            .map(|b| (b["id"].as_str().unwrap().parse().unwrap(), b["title"].as_str().unwrap().to_owned()))
            .collect();
        let journal = std::mem::take(&mut *journal.lock().unwrap());
        assert!(journal.acked.len() > 20, "too few acknowledged writes to mean anything: {}", journal.acked.len());
        let mut versions = HashSet::new();
        let mut last: HashMap<Uuid, &(Uuid, &str, i64, String)> = HashMap::new();
        for a in &journal.acked {
            assert!(versions.insert(a.2), "version {} acknowledged twice", a.2);
            assert!(a.2 <= final_version, "acked v{} above the final v{final_version}", a.2);
            if last.get(&a.0).is_none_or(|l| l.2 < a.2) {
                last.insert(a.0, a);
            }
        }
        let mut lost = Vec::new();
        for (id, (_, op, version, _)) in &last {
            match (*op, rows.get(id)) {
                ("delete", None) => {}
                (_, None) if journal.maybe_deleted.contains(id) => {}
                (_, None) | ("delete", Some(_)) => lost.push((*id, *op, *version)),
                (_, Some(title)) => assert!(journal.attempted[id].contains(title), "{id} holds a title never written"),
            }
        }
        let lost = lost.len();
        assert_eq!(lost, 0, "acknowledged writes lost across the kills");
        // A session opened now converges on the final version.
        let mut ws = connect(&server, &token).await;
        let (snapshot, _) = until(&mut ws, "snapshot").await;
        assert_eq!(snapshot["version"].as_i64(), Some(final_version));
        println!("{} acknowledged writes across 10 kills, final version {final_version}, 0 lost", journal.acked.len());
    }
}
