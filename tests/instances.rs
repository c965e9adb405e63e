//! Several `librarian` processes on one PostgreSQL database (DESIGN §6): commits on one
//! instance reach sessions on the other through NOTIFY; a lost listener connection and lost
//! notifications heal; terminating every connection loses no acknowledged write.
//! PostgreSQL only (SQLite is one instance: see `a_second_instance_on_one_sqlite_file_is_refused`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::TestDb;
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect, follow, send, until};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Two instances sharing a database and a dev secret (so one token works on both).
struct Pair {
    a: TestServer,
    b: TestServer,
    _secret_dir: tempfile::TempDir,
}

fn pair(db: &TestDb, a_env: &[(&str, &str)], b_env: &[(&str, &str)]) -> Pair {
    pair_at(db.url(), a_env, b_env)
}

/// Like [`pair`], with the instances reaching the database at `url` (e.g. through a proxy).
fn pair_at(url: &str, a_env: &[(&str, &str)], b_env: &[(&str, &str)]) -> Pair {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("dev-secret").display().to_string();
    let start = |extra: &[(&str, &str)]| {
        let mut env = vec![
            ("LIBRARIAN__DATABASE__URL", url),
            ("LIBRARIAN__AUTH__DEV_SECRET_FILE", secret.as_str()),
        ];
        env.extend_from_slice(extra);
        TestServer::start(&env)
    };
    let a = start(a_env);
    let b = start(b_env);
    Pair {
        a,
        b,
        _secret_dir: secret_dir,
    }
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(server.url(&format!("/api/v1{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn library(server: &TestServer, token: &str) -> Value {
    reqwest::Client::new()
        .get(server.url("/api/v1/library"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Kills the backends named `<prefix>-<pid>` (the servers name their connections so);
/// returns how many it killed.
async fn terminate(db: &TestDb, prefix: &str, pids: &[u32]) -> i64 {
    let names: Vec<String> = pids.iter().map(|p| format!("'{prefix}-{p}'")).collect();
    db.query_i64(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ({})",
        names.join(",")
    ))
    .await
}

/// A session followed until it holds the final version (see `librarian_testkit::ws::follow`).
type Follower = tokio::task::JoinHandle<(Vec<i64>, Value, Vec<Value>)>;

/// Followers (sessions) on both instances, announced the final version through `target`.
async fn sessions(
    p: &Pair,
    token: &str,
    per_instance: usize,
    target: &watch::Receiver<Option<i64>>,
) -> Vec<Follower> {
    let mut all = Vec::new();
    for server in [&p.a, &p.b] {
        for _ in 0..per_instance {
            let ws = connect(server, token).await;
            all.push(tokio::spawn(follow(ws, target.clone())));
        }
    }
    all
}

async fn converge(
    followers: Vec<Follower>,
    target: &watch::Sender<Option<i64>>,
    final_version: i64,
) {
    target.send(Some(final_version)).unwrap();
    for f in followers {
        let (versions, _, _) = f.await.unwrap();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "not strictly increasing: {versions:?}"
        );
        assert_eq!(*versions.last().unwrap(), final_version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_two_instances_converge_on_writes_through_both() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let p = pair(&db, &[], &[]);
    let token = p.a.token("alice");
    let (target_tx, target_rx) = watch::channel(None);
    let followers = sessions(&p, &token, 5, &target_rx).await;

    let mut writers = Vec::new();
    for (w, server) in [&p.a, &p.b].into_iter().enumerate() {
        // One writer over HTTP and one over WebSocket on each instance.
        let (base, token2) = (server.base_url.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..40 {
                let res = http
                    .post(format!("{base}/api/v1/context-blocks"))
                    .bearer_auth(&token2)
                    .json(&json!({"title": format!("http {w}.{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        }));
        let mut ws = connect(server, &token).await;
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                let mid = format!("ws-{w}-{i}");
                send(&mut ws, json!({"type": "mutate", "mutation_id": mid, "op": "context_block.create", "data": {"title": mid}})).await;
                until(&mut ws, "ack").await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let lib = library(&p.b, &token).await;
    assert_eq!(lib["version"], 160);
    converge(followers, &target_tx, 160).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_listener_reconnects_and_sessions_still_converge() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // No reconciliation on B: only the listener (and its reconnect) can bring A's commits.
    let p = pair(&db, &[], &[("LIBRARIAN__SYNC__RECONCILE_INTERVAL_MS", "0")]);
    let token = p.a.token("alice");
    let (target_tx, target_rx) = watch::channel(None);
    let followers = sessions(&p, &token, 3, &target_rx).await;
    for i in 0..60 {
        if i == 20 || i == 40 {
            // Its connection is up (the first one, or the one it made after the last
            // termination: writes can outrun the reconnect's backoff).
            p.b.wait_for_logs(i / 20, "B's listener connected", |l| {
                l.contains("listening for changes from other instances")
            })
            .await;
            assert_eq!(
                terminate(&db, "librarian-listener", &[p.b.pid()]).await,
                1,
                "B's listener"
            );
        }
        let (status, _) = post(&p.a, &token, "/projects", json!({"name": format!("p{i}")})).await;
        assert_eq!(status, 201);
    }
    converge(followers, &target_tx, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_bypasses_notify_is_found_by_reconciliation() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let p = pair(
        &db,
        &[],
        &[("LIBRARIAN__SYNC__RECONCILE_INTERVAL_MS", "200")],
    );
    let token = p.a.token("alice");
    let (_, r) = post(&p.a, &token, "/context-blocks", json!({"title": "before"})).await;
    let block = r["data"]["id"].as_str().unwrap().to_owned();
    let mut ws = connect(&p.b, &token).await;
    let (hello, _) = until(&mut ws, "hello").await;
    let library_id = hello["library_id"].as_str().unwrap().to_owned();
    let (snapshot, _) = until(&mut ws, "snapshot").await;
    assert_eq!(snapshot["version"], 1);
    // Behind the servers' backs: no pg_notify.
    db.execute(&format!(
        "BEGIN;
         UPDATE context_blocks SET title = 'sneaky', version = version + 1 WHERE library_id = '{library_id}' AND id = '{block}';
         UPDATE libraries SET version = version + 1 WHERE id = '{library_id}';
         COMMIT;"
    ))
    .await;
    let (snapshot, _) = until(&mut ws, "snapshot").await;
    assert_eq!(snapshot["version"], 2);
    assert_eq!(snapshot["context_blocks"][0]["title"], "sneaky");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_every_connection_mid_writes_loses_no_acknowledged_write() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let p = pair(&db, &[], &[]);
    let token = p.a.token("alice");
    let (target_tx, target_rx) = watch::channel(None);
    let followers = sessions(&p, &token, 3, &target_rx).await;
    let mut acked: Vec<String> = Vec::new();
    let mut refused = 0;
    for i in 0..80 {
        if i == 25 || i == 55 {
            let pids = [p.a.pid(), p.b.pid()];
            assert!(
                terminate(&db, "librarian", &pids).await >= 2,
                "pooled connections"
            );
            assert_eq!(
                terminate(&db, "librarian-listener", &pids).await,
                2,
                "both listeners"
            );
        }
        let server = if i % 2 == 0 { &p.a } else { &p.b };
        let (status, body) = post(
            server,
            &token,
            "/context-blocks",
            json!({"title": format!("b{i}")}),
        )
        .await;
        match status {
            201 => acked.push(body["data"]["id"].as_str().unwrap().to_owned()),
            503 => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let lib = library(&p.a, &token).await;
    let ids: Vec<&str> = lib["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(
            ids.contains(&id.as_str()),
            "acknowledged block {id} is missing"
        );
    }
    let final_version = lib["version"].as_i64().unwrap();
    assert_eq!(
        final_version as usize,
        ids.len(),
        "one version per committed write"
    );
    assert!(acked.len() + refused == 80 && acked.len() as i64 <= final_version);
    converge(followers, &target_tx, final_version).await;
}

#[tokio::test]
async fn a_second_instance_on_one_sqlite_file_is_refused() {
    let first = TestServer::start(&[]);
    let out = std::process::Command::new(librarian_testkit::server::binary())
        .arg("serve")
        .current_dir(&first.dir)
        .env("LIBRARIAN__SERVER__BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another librarian process"), "{err}");
    // The first one is unharmed.
    let res = reqwest::get(first.url("/readyz")).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_ride_out_a_database_outage() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.store().await;
    let proxy = librarian_testkit::proxy::TcpProxy::start(db.postgres_addr().unwrap()).await;
    let url = db.url_through(proxy.addr);
    let env = [
        ("LIBRARIAN__DATABASE__CONNECT_TIMEOUT_MS", "1000"),
        ("LIBRARIAN__DATABASE__QUERY_TIMEOUT_MS", "2000"),
        ("LIBRARIAN__SYNC__RECONCILE_INTERVAL_MS", "200"),
    ];
    let p = pair_at(&url, &env, &env);
    let token = p.a.token("alice");
    let mut watcher = connect(&p.b, &token).await;
    until(&mut watcher, "snapshot").await;
    let (target_tx, target_rx) = watch::channel(None);
    let followers = sessions(&p, &token, 2, &target_rx).await;
    let mut acked = Vec::new();
    for round in 0..3 {
        if round == 1 {
            proxy.cut();
            // Every instance's sessions hear of it.
            loop {
                let (s, _) = until(&mut watcher, "status").await;
                if s["state"] == "error" {
                    assert_eq!(s["code"], "database_unavailable");
                    break;
                }
            }
        }
        if round == 2 {
            proxy.restore().await;
        }
        for i in 0..10 {
            let server = if i % 2 == 0 { &p.a } else { &p.b };
            let (status, body) = post(
                server,
                &token,
                "/context-blocks",
                json!({"title": format!("r{round} b{i}")}),
            )
            .await;
            match (round, status) {
                (1, 503) => {}
                (_, 201) => acked.push(body["data"]["id"].as_str().unwrap().to_owned()),
                (r, s) => panic!("round {r}: unexpected {s}: {body}"),
            }
        }
    }
    let lib = library(&p.a, &token).await;
    let ids: Vec<&str> = lib["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert!(
        acked.iter().all(|a| ids.contains(&a.as_str())),
        "an acknowledged write is missing"
    );
    assert_eq!(acked.len(), 20, "rounds 0 and 2 commit everything");
    converge(followers, &target_tx, lib["version"].as_i64().unwrap()).await;
}

fn signal(server: &TestServer, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// G9: a client that resumes on an instance that lags behind what the client was acknowledged
/// never receives an older snapshot. B is paused (SIGSTOP) while A commits, so B's cached view
/// is older when the client reconnects to it with the acknowledged version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_on_a_lagging_instance_never_steps_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let p = pair(&db, &[], &[]);
    let token = p.a.token("alice");
    // A session on B keeps B's view of the library cached (and is read, so never slow).
    let mut keeper = connect(&p.b, &token).await;
    until(&mut keeper, "snapshot").await;
    let keeper = tokio::spawn(async move {
        while let librarian_testkit::ws::Got::Frame(_) =
            librarian_testkit::ws::recv(&mut keeper).await
        {}
    });
    let mut stepped_back = Vec::new();
    for i in 0..30 {
        signal(&p.b, "-STOP");
        let (status, r) = post(&p.a, &token, "/projects", json!({"name": format!("p{i}")})).await;
        signal(&p.b, "-CONT");
        assert_eq!(status, 201);
        let acked = r["library_version"].as_i64().unwrap();
        let (mut ws, _) = librarian_testkit::ws::connect_with(
            &p.b,
            &format!("?since_version={acked}"),
            Some(&token),
        )
        .await
        .map(|ws| (ws, ()))
        .unwrap();
        // The first snapshot, or a `live` status saying the held version is current.
        let first = loop {
            let f = librarian_testkit::ws::frame(&mut ws).await;
            if f["type"] == "snapshot" || (f["type"] == "status" && f["state"] == "live") {
                break f;
            }
        };
        let version = first["version"].as_i64().unwrap();
        if version < acked {
            stepped_back.push((acked, first["type"].clone(), version));
        }
        assert_ne!(first["reset"], true, "the database did not go back");
    }
    keeper.abort();
    println!("resumes that stepped back: {} of 30", stepped_back.len());
    assert!(stepped_back.is_empty(), "stepped back: {stepped_back:?}");
}

// ---- shared libraries across instances (DESIGN §9) -------------------------------------------

async fn call(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, server.url(&format!("/api/v1{path}")))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn shared_library(server: &TestServer, owner: &str, member: &str, role: &str) -> String {
    let (status, body) = post(server, owner, "/libraries", json!({"name": "Team"})).await;
    assert_eq!(status, 201, "{body}");
    let lib = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        server,
        owner,
        reqwest::Method::PUT,
        &format!("/libraries/{lib}/members/{member}"),
        Some(json!({ "role": role })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    lib
}

async fn open(server: &TestServer, token: &str, lib: &str) -> librarian_testkit::ws::Ws {
    librarian_testkit::ws::connect_with(server, &format!("?library={lib}"), Some(token))
        .await
        .unwrap()
}

/// Removal on instance A ends bob's session on instance B before any snapshot at or after the
/// removal; prints the time from the removal's reply to the close (for the notes, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_on_one_instance_revokes_sessions_on_the_other() {
    use librarian_testkit::ws::{Got, recv};
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let p = pair(&db, &[], &[]);
    let (alice, bob) = (p.a.token("alice"), p.a.token("bob"));
    let lib = shared_library(&p.a, &alice, "bob", "editor").await;
    let mut took = Vec::new();
    for round in 0..10 {
        if round > 0 {
            let (status, _) = call(
                &p.a,
                &alice,
                reqwest::Method::PUT,
                &format!("/libraries/{lib}/members/bob"),
                Some(json!({"role": "editor"})),
            )
            .await;
            assert_eq!(status, 201);
        }
        let mut ws = open(&p.b, &bob, &lib).await;
        until(&mut ws, "snapshot").await;
        let (status, _) = post(
            &p.a,
            &alice,
            &format!("/libraries/{lib}/context-blocks"),
            json!({"title": "x"}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, body) = call(
            &p.a,
            &alice,
            reqwest::Method::DELETE,
            &format!("/libraries/{lib}/members/bob"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let removed_at = std::time::Instant::now();
        let removed = body["library_version"].as_i64().unwrap();
        let code = loop {
            match recv(&mut ws).await {
                Got::Frame(f) => {
                    if f["type"] == "snapshot" {
                        let v = f["version"].as_i64().unwrap();
                        assert!(v < removed, "snapshot {v} after the removal at {removed}");
                    }
                }
                Got::Closed(code) => break code,
            }
        };
        took.push(removed_at.elapsed());
        assert_eq!(code, Some(4403));
    }
    took.sort();
    eprintln!(
        "removal reply on A -> 4403 on B: p50 {:?}, max {:?} over {} rounds",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    );
}

/// Presence lists the sessions of both instances; once one instance is killed, its sessions
/// leave the other's list within the expiry (short here) plus a heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_instances_and_a_killed_instance_expires() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let fast = [
        ("LIBRARIAN__PRESENCE__HEARTBEAT_MS", "200"),
        ("LIBRARIAN__PRESENCE__EXPIRY_MS", "1000"),
    ];
    let mut p = pair(&db, &fast, &fast);
    let (alice, bob) = (p.a.token("alice"), p.a.token("bob"));
    let lib = shared_library(&p.a, &alice, "bob", "viewer").await;
    let mut on_a = open(&p.a, &alice, &lib).await;
    let mut on_b = open(&p.b, &bob, &lib).await;
    let both = |f: &Value| f["sessions"].as_array().is_some_and(|s| s.len() == 2);
    for ws in [&mut on_a, &mut on_b] {
        loop {
            let (f, _) = until(ws, "presence").await;
            if both(&f) {
                let mut users: Vec<&str> = f["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["user_id"].as_str().unwrap())
                    .collect();
                users.sort_unstable();
                assert_eq!(users, ["alice", "bob"]);
                break;
            }
        }
    }
    // A receipt on B reaches A's list.
    let (status, body) = post(
        &p.a,
        &alice,
        &format!("/libraries/{lib}/context-blocks"),
        json!({"title": "x"}),
    )
    .await;
    assert_eq!(status, 201);
    let v = body["library_version"].as_i64().unwrap();
    loop {
        let (f, _) = until(&mut on_b, "snapshot").await;
        let got = f["version"].as_i64().unwrap();
        send(&mut on_b, json!({"type": "seen", "version": got})).await;
        if got >= v {
            break;
        }
    }
    loop {
        let (f, _) = until(&mut on_a, "presence").await;
        let seen =
            f["sessions"].as_array().unwrap().iter().any(|s| {
                s["user_id"] == "bob" && s["seen_version"].as_i64().is_some_and(|sv| sv >= v)
            });
        if seen {
            break;
        }
    }
    // B dies without a word: its session expires from A's list.
    p.b.kill();
    let killed = std::time::Instant::now();
    loop {
        let (f, _) = until(&mut on_a, "presence").await;
        if f["sessions"].as_array().unwrap().len() == 1 {
            break;
        }
    }
    eprintln!(
        "a killed instance's session left presence after {:?} (expiry 1 s, heartbeat 200 ms)",
        killed.elapsed()
    );
}
