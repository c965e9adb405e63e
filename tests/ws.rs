//! WebSocket sessions end to end: the real binary, real WebSocket clients (tokio-tungstenite),
//! on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use futures_util::{SinkExt, StreamExt};
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{
    Got, PATIENCE, connect, connect_with, content, follow, frame, recv, send, until,
};
use librarian_testkit::{Lcg, TestDb, both_backends};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message};

fn start(db: &TestDb, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("LIBRARIAN__DATABASE__URL", db.url())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

struct Http {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    fn new(server: &TestServer, token: &str) -> Http {
        Http {
            client: reqwest::Client::new(),
            base: server.url("/api/v1"),
            token: token.into(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn library(&self) -> Value {
        self.call(reqwest::Method::GET, "/library", None).await.1
    }
}

both_backends! {
    async fn sessions_converge_in_order_and_see_only_their_own_library(db) {
        let server = start(&db, &[]);
        let alice = server.token("alice");
        let bob = server.token("bob");
        let (target_tx, target_rx) = tokio::sync::watch::channel(None);

        let mut followers = Vec::new();
        for _ in 0..10 {
            let ws = connect(&server, &alice).await;
            followers.push(tokio::spawn(follow(ws, target_rx.clone())));
        }
        let mut bob_ws = connect(&server, &bob).await;
        let (bob_snapshot, _) = until(&mut bob_ws, "snapshot").await;
        assert_eq!(bob_snapshot["version"], 0);

        // 500 random mutations: two writers over HTTP, two over WebSocket.
        let mut writers = Vec::new();
        for w in 0..4u64 {
            let (server_url, token) = (server.base_url.clone(), alice.clone());
            let ws = if w >= 2 { Some(connect(&server, &alice).await) } else { None };
            let http = Http { client: reqwest::Client::new(), base: format!("{server_url}/api/v1"), token };
            writers.push(tokio::spawn(async move {
                let mut ws = ws;
                let mut rng = Lcg(w + 1);
                let mut mine: Vec<String> = Vec::new();
                for i in 0..125 {
                    let (op, id, data) = match rng.next(4) {
                        0 | 1 if !mine.is_empty() => {
                            let id = mine[rng.next(mine.len())].clone();
                            ("context_block.update", Some(id), json!({"title": format!("w{w} edit {i}")}))
                        }
                        2 if !mine.is_empty() => {
                            let id = mine.swap_remove(rng.next(mine.len()));
                            ("context_block.delete", Some(id), Value::Null)
                        }
                        _ => ("context_block.create", None, json!({"title": format!("w{w} block {i}")})),
                    };
                    let data_id = match &mut ws {
                        Some(ws) => {
                            let mid = format!("w{w}-{i}");
                            send(ws, json!({"type": "mutate", "mutation_id": mid, "op": op, "id": id, "data": data})).await;
                            let (ack, _) = until(ws, "ack").await;
                            assert_eq!(ack["mutation_id"], mid);
                            ack["data"]["id"].as_str().map(str::to_owned)
                        }
                        None => {
                            let (method, path) = match (op, &id) {
                                ("context_block.create", _) => (reqwest::Method::POST, "/context-blocks".to_owned()),
                                ("context_block.update", Some(id)) => (reqwest::Method::PATCH, format!("/context-blocks/{id}")),
                                (_, Some(id)) => (reqwest::Method::DELETE, format!("/context-blocks/{id}")),
                                _ => unreachable!(),
                            };
                            let body = if data.is_null() { None } else { Some(data) };
                            let (status, reply) = http.call(method, &path, body).await;
                            assert!(status == 200 || status == 201, "{status} {reply}");
                            reply["data"]["id"].as_str().map(str::to_owned)
                        }
                    };
                    if op == "context_block.create" {
                        mine.push(data_id.unwrap());
                    }
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let http = Http::new(&server, &alice);
        let library = http.library().await;
        let final_version = library["version"].as_i64().unwrap();
        assert_eq!(final_version, 500);
        target_tx.send(Some(final_version)).unwrap();

        for f in followers {
            let (versions, last, others) = f.await.unwrap();
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "not strictly increasing: {versions:?}");
            assert_eq!(*versions.last().unwrap(), final_version);
            assert_eq!(content(last), library, "the last snapshot equals GET /library");
            assert_eq!(others[0]["type"], "hello");
        }
        // Bob's session saw none of it. A barrier on his own session: his own write, after all
        // of alice's. The next snapshot he gets is of his library alone, and everything before it
        // (where a frame about alice's writes would have come) is his status at version 0 or
        // his ack.
        send(&mut bob_ws, json!({"type": "mutate", "mutation_id": "bob-1", "op": "project.create", "data": {"name": "bob's"}})).await;
        let (bob_snapshot, before) = until(&mut bob_ws, "snapshot").await;
        for f in &before {
            match f["type"].as_str() {
                Some("status") => assert_eq!(f["version"], 0, "bob got {f}"),
                Some("ack") => assert_eq!((f["mutation_id"].as_str(), f["library_version"].as_i64()), (Some("bob-1"), Some(1)), "bob got {f}"),
                // Who has bob's library open: bob alone.
                Some("presence") => assert!(f["sessions"].as_array().unwrap().iter().all(|s| s["user_id"] == "bob"), "bob got {f}"),
                _ => panic!("bob got {f}"),
            }
        }
        assert_eq!(bob_snapshot["version"], 1, "{bob_snapshot}");
        let projects: Vec<&str> = bob_snapshot["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(projects, ["bob's"], "{bob_snapshot}");
        assert_eq!((&bob_snapshot["context_blocks"], &bob_snapshot["saved_prompts"]), (&json!([]), &json!([])), "{bob_snapshot}");
    }

    async fn an_ack_over_ws_is_always_followed_by_a_snapshot_at_least_as_new(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let mut ws = connect(&server, &token).await;
        let hello = frame(&mut ws).await;
        assert_eq!((hello["type"].as_str(), hello["protocol"].as_i64()), (Some("hello"), Some(1)));
        assert_eq!(hello["user_id"], "alice");
        // The session's limits, as configured (defaults), so that clients need not guess them.
        assert_eq!(
            (&hello["max_inflight_mutations"], &hello["max_frame_bytes"], &hello["max_frames_per_second"]),
            (&json!(32), &json!(1024 * 1024), &json!(100)),
            "{hello}"
        );
        until(&mut ws, "snapshot").await;
        for i in 0..20 {
            send(&mut ws, json!({"type": "mutate", "mutation_id": format!("m{i}"), "op": "project.create", "data": {"name": format!("p{i}")}})).await;
            let mut acked = None;
            let mut held = 0;
            while acked.is_none_or(|v| held < v) {
                let f = frame(&mut ws).await;
                match f["type"].as_str().unwrap() {
                    "ack" => acked = f["library_version"].as_i64(),
                    "snapshot" => held = f["version"].as_i64().unwrap(),
                    _ => {}
                }
            }
            assert_eq!(acked, Some(i + 1));
        }
        // A retry of an acked mutation answers the same and writes nothing.
        send(&mut ws, json!({"type": "mutate", "mutation_id": "m0", "op": "project.create", "data": {"name": "p0"}})).await;
        let (ack, _) = until(&mut ws, "ack").await;
        assert_eq!(ack["library_version"], 1);
        assert_eq!(Http::new(&server, &token).library().await["version"], 20);
    }

    async fn resuming_at_the_current_version_sends_status_live_only(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        for i in 0..3 {
            http.call(reqwest::Method::POST, "/projects", Some(json!({"name": format!("p{i}")}))).await;
        }
        let mut current = connect_with(&server, "?since_version=3", Some(&token)).await.unwrap();
        let (status, before) = until(&mut current, "status").await;
        assert_eq!((status["state"].as_str(), status["version"].as_i64()), (Some("live"), Some(3)));
        assert!(before.iter().all(|f| f["type"] != "snapshot"), "{before:?}");
        // The next change arrives as usual.
        http.call(reqwest::Method::POST, "/projects", Some(json!({"name": "p3"}))).await;
        let (snapshot, _) = until(&mut current, "snapshot").await;
        assert_eq!(snapshot["version"], 4);

        let mut behind = connect_with(&server, "?since_version=2", Some(&token)).await.unwrap();
        let (snapshot, _) = until(&mut behind, "snapshot").await;
        assert_eq!(snapshot["version"], 4);
        assert_eq!(snapshot["projects"].as_array().unwrap().len(), 4);
        // Browsers pass the token in the query.
        let mut browser = connect_with(&server, &format!("?access_token={token}"), None).await.unwrap();
        assert_eq!(until(&mut browser, "snapshot").await.0["version"], 4);
    }

    async fn resuming_above_the_database_gets_a_snapshot_marked_reset(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        for i in 0..3 {
            http.call(reqwest::Method::POST, "/projects", Some(json!({"name": format!("p{i}")}))).await;
        }
        // The client holds version 1000: the database was restored to an older state since.
        let mut ws = connect_with(&server, "?since_version=1000", Some(&token)).await.unwrap();
        let (snapshot, before) = until(&mut ws, "snapshot").await;
        assert!(before.iter().all(|f| f["type"] != "snapshot"), "{before:?}");
        assert_eq!((snapshot["version"].as_i64(), &snapshot["reset"]), (Some(3), &json!(true)));
        assert_eq!(snapshot["projects"].as_array().unwrap().len(), 3);
        let (status, _) = until(&mut ws, "status").await;
        assert_eq!((status["state"].as_str(), status["version"].as_i64()), (Some("live"), Some(3)));
        // From there on, ordinary snapshots.
        http.call(reqwest::Method::POST, "/projects", Some(json!({"name": "p3"}))).await;
        let (snapshot, _) = until(&mut ws, "snapshot").await;
        assert_eq!((snapshot["version"].as_i64(), snapshot.get("reset")), (Some(4), None));
    }

    async fn a_session_that_stops_reading_is_closed_as_too_slow_while_others_converge(db) {
        let server = start(&db, &[("LIBRARIAN__WS__SEND_TIMEOUT_MS", "1000")]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        // Big snapshots (~600 KB) so that the socket buffers fill after a few versions.
        let big = "x".repeat(10_000);
        let mut target = String::new();
        for i in 0..60 {
            let (_, r) = http.call(reqwest::Method::POST, "/context-blocks", Some(json!({"title": format!("b{i}"), "content": big}))).await;
            target = r["data"]["id"].as_str().unwrap().to_owned();
        }
        let mut slow = connect(&server, &token).await;
        until(&mut slow, "snapshot").await;
        let (target_tx, target_rx) = tokio::sync::watch::channel(None);
        let fast: Vec<_> = futures_util::future::join_all((0..3).map(|_| connect(&server, &token))).await
            .into_iter()
            .map(|ws| tokio::spawn(follow(ws, target_rx.clone())))
            .collect();

        // New versions while `slow` reads nothing, until the server closes it as too slow
        // (seen in its log). Reading right then gets what was queued and the close; much later
        // the kernel would have reset the connection (send timeout + 5 s, DESIGN §13).
        let too_slow = |server: &librarian_testkit::server::TestServer| {
            server.logs().iter().any(|l| l.contains("\"close_code\":4429"))
        };
        let mut writes = 0;
        while !too_slow(&server) {
            assert!(writes < 5000, "the slow session was never closed");
            let (status, _) = http.call(reqwest::Method::PATCH, &format!("/context-blocks/{target}"), Some(json!({"title": format!("t{writes}")}))).await;
            assert_eq!(status, 200);
            writes += 1;
        }
        let mut snapshots = 0;
        let code = loop {
            match recv(&mut slow).await {
                Got::Frame(f) if f["type"] == "snapshot" => snapshots += 1,
                Got::Frame(_) => {}
                Got::Closed(code) => break code,
            }
        };
        let final_version = http.library().await["version"].as_i64().unwrap();
        target_tx.send(Some(final_version)).unwrap();
        for f in fast {
            let (versions, _, _) = f.await.unwrap();
            assert_eq!(*versions.last().unwrap(), final_version);
        }
        assert_eq!(code, Some(4429));
        // Only what the kernel's socket buffers held, plus the one frame in flight: nowhere
        // near a backlog of 1 000 versions.
        println!("the slow session got {snapshots} of {writes} versions before 4429");
        assert!(snapshots < 50, "{snapshots} snapshots were queued for a client that did not read");
    }

    async fn bad_frames_get_an_error_then_4400_and_the_server_serves_on(db) {
        let server = start(&db, &[("LIBRARIAN__LIMITS__BODY_MAX_BYTES", "65536")]);
        let alice = server.token("alice");
        let bob = server.token("bob");
        let http = Http::new(&server, &alice);
        let (_, p) = http.call(reqwest::Method::POST, "/projects", Some(json!({"name": "alice's"}))).await;
        let alices = p["data"]["id"].as_str().unwrap().to_owned();

        let cases: Vec<(&str, Message)> = vec![
            ("malformed_frame", Message::Text("{not json".into())),
            ("malformed_frame", Message::Text(r#"{"type": "subscribe"}"#.into())),
            ("malformed_frame", Message::Text(r#"{"type": "mutate", "mutation_id": 7}"#.into())),
            ("binary_frame", Message::Binary(vec![1, 2, 3].into())),
            ("frame_too_large", Message::Text("x".repeat(100_000).into())),
        ];
        for (code, msg) in cases {
            let mut ws = connect(&server, &bob).await;
            until(&mut ws, "snapshot").await;
            ws.send(msg).await.unwrap();
            let (error, _) = until(&mut ws, "error").await;
            assert_eq!(error["code"], code, "{error}");
            let closed = loop {
                if let Got::Closed(c) = recv(&mut ws).await { break c; }
            };
            assert_eq!(closed, Some(4400), "after {code}");
        }

        // Well-formed but wrong: a reject, and the session stays open.
        let mut ws = connect(&server, &bob).await;
        until(&mut ws, "snapshot").await;
        let rejects = [
            (json!({"type": "mutate", "mutation_id": "a", "op": "project.update", "id": alices, "data": {"name": "mine"}}), 404),
            (json!({"type": "mutate", "mutation_id": "b", "op": "project.delete", "id": alices}), 404),
            (json!({"type": "mutate", "mutation_id": "c", "op": "context_block.create", "data": {"title": 5}}), 422),
            (json!({"type": "mutate", "mutation_id": "d", "op": "context_block.create", "data": {"title": ""}}), 422),
            (json!({"type": "mutate", "mutation_id": "e", "op": "project.explode", "data": {}}), 422),
            (json!({"type": "mutate", "mutation_id": "f", "op": "project.update", "data": {}}), 422),
        ];
        for (frame_, status) in rejects {
            let mid = frame_["mutation_id"].clone();
            send(&mut ws, frame_).await;
            let (reject, _) = until(&mut ws, "reject").await;
            assert_eq!(reject["mutation_id"], mid);
            assert_eq!(reject["error"]["status"], status, "{reject}");
        }
        send(&mut ws, json!({"type": "mutate", "mutation_id": "g", "op": "project.create", "data": {"name": "bob's"}})).await;
        assert_eq!(until(&mut ws, "ack").await.0["library_version"], 1);
        // Alice's library is untouched and her sessions work.
        let lib = http.library().await;
        assert_eq!((lib["version"].as_i64(), lib["projects"][0]["name"].as_str()), (Some(1), Some("alice's")));
        let mut alice_ws = connect(&server, &alice).await;
        assert_eq!(until(&mut alice_ws, "snapshot").await.0["version"], 1);
    }
}

#[tokio::test]
async fn no_or_a_bad_token_is_refused_before_the_upgrade() {
    let server = TestServer::start(&[]);
    for token in [None, Some("garbage")] {
        match connect_with(&server, "", token).await {
            Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
    }
    match connect_with(&server, "?access_token=garbage", None).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

/// A WebSocket session over a bare TCP stream: a client that writes nothing after its
/// handshake (tungstenite answers every ping it reads, this one answers none). Returns the
/// stream and the bytes read past the response head.
async fn raw_session(server: &TestServer, token: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let handshake = format!(
        "GET /api/v1/ws?access_token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no handshake response in time")
            .unwrap();
        assert!(n > 0, "closed during the handshake");
        received.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (stream, received.split_off(head_end))
}

/// The complete frames (opcode, payload) at the start of `bytes`, as a server sends them
/// (unmasked, RFC 6455 §5.2).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        assert_eq!(bytes[1] & 0x80, 0, "a masked frame from the server");
        let (len, at) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < at + len {
            break;
        }
        frames.push((bytes[0] & 0x0f, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    frames
}

#[tokio::test]
async fn a_silent_client_is_closed_by_the_heartbeat() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start(&[
        ("LIBRARIAN__WS__HEARTBEAT_MS", "100"),
        ("LIBRARIAN__WS__IDLE_TIMEOUT_MS", "300"),
    ]);
    let token = server.token("alice");
    let (mut stream, mut received) = raw_session(&server, &token).await;
    // Nothing is read while the server decides: the pings it sends go unanswered, and the
    // session ends on its own (after its closing handshake, which this client never answers).
    let closed = server
        .wait_for_log("the session's close", |l| l.contains("\"session closed\""))
        .await;
    assert!(closed.contains("\"close_code\":4408"), "{closed}");
    // The close frame it sent is on its way, after the first frames and the unanswered pings.
    // Read raw: tungstenite would first answer the queued pings, onto a connection the server
    // has closed by now, and report the failed write instead of the close (seen 3 runs in 6).
    let mut buf = [0u8; 4096];
    let frames = loop {
        let frames = server_frames(&received);
        if frames.iter().any(|(op, _)| *op == 0x8) {
            break frames;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no close frame in time")
            .unwrap();
        assert!(
            n > 0,
            "the connection ended without a close frame: {frames:?}"
        );
        received.extend_from_slice(&buf[..n]);
    };
    let (close, before) = frames.split_last().unwrap();
    assert_eq!(close.0, 0x8, "frames after the close: {frames:?}");
    assert_eq!(close.1[..2], 4408u16.to_be_bytes(), "{close:?}");
    let texts: Vec<Value> = before
        .iter()
        .filter(|(op, _)| *op == 0x1)
        .map(|(_, t)| serde_json::from_slice(t).unwrap())
        .collect();
    let kinds: Vec<&str> = texts.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"hello"), "{texts:?}");
    assert!(kinds.contains(&"snapshot"), "{texts:?}");
    assert!(
        before.iter().all(|(op, _)| *op == 0x1 || *op == 0x9),
        "{before:?}"
    );
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let server = TestServer::start(&[
        ("LIBRARIAN__WS__HEARTBEAT_MS", "100"),
        ("LIBRARIAN__WS__IDLE_TIMEOUT_MS", "300"),
    ]);
    let token = server.token("alice");
    let mut ws = connect(&server, &token).await;
    until(&mut ws, "status").await;
    // Reading keeps tungstenite answering pings. Ten of them span more than three idle
    // timeouts, and nothing else arrives meanwhile (no close; the session's own presence list
    // may).
    let mut pings = 0;
    while pings < 10 {
        let next = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("no ping in time");
        match next {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Text(t))) if t.starts_with(r#"{"type":"presence""#) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    // Still open: counted by the server, and never closed.
    assert_eq!(
        server.metrics().await.get("librarian_sessions_open", &[]),
        1.0
    );
    let closed: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| l.contains("\"session closed\""))
        .collect();
    assert!(closed.is_empty(), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sessions_with_going_away() {
    let server = TestServer::start(&[]);
    let token = server.token("alice");
    let mut ws = connect(&server, &token).await;
    until(&mut ws, "snapshot").await;
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    let code = loop {
        if let Got::Closed(code) = recv(&mut ws).await {
            break code;
        }
    };
    assert_eq!(code, Some(1001));
    assert!(stopping.await.unwrap().success());
}

/// A reload that takes a while is announced: `syncing` with the target version, then the
/// snapshot, then `live`. (PostgreSQL: an exclusive lock on one table holds the reload up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reload_is_announced_as_syncing_then_live() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let server = start(&db, &[]);
    let token = server.token("alice");
    let http = Http::new(&server, &token);
    let (_, r) = http
        .call(
            reqwest::Method::POST,
            "/context-blocks",
            Some(json!({"title": "a"})),
        )
        .await;
    let block = r["data"]["id"].as_str().unwrap().to_owned();
    let mut ws = connect(&server, &token).await;
    let (status, _) = until(&mut ws, "status").await;
    assert_eq!(
        (status["state"].as_str(), status["version"].as_i64()),
        (Some("live"), Some(1))
    );

    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut locker = AsyncPgConnection::establish(db.url()).await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE projects IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let (s, _) = http
        .call(
            reqwest::Method::PATCH,
            &format!("/context-blocks/{block}"),
            Some(json!({"title": "b"})),
        )
        .await;
    assert_eq!(s, 200);
    let (syncing, _) = until(&mut ws, "status").await;
    assert_eq!(syncing["state"], "syncing", "{syncing}");
    assert_eq!(
        (
            syncing["target_version"].as_i64(),
            syncing["version"].as_i64()
        ),
        (Some(2), Some(1))
    );
    locker.batch_execute("COMMIT").await.unwrap();
    let (snapshot, _) = until(&mut ws, "snapshot").await;
    assert_eq!(snapshot["version"], 2);
    let (live, _) = until(&mut ws, "status").await;
    assert_eq!(
        (live["state"].as_str(), live["version"].as_i64()),
        (Some("live"), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_ends_right_after_the_closing_handshake() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Draining unread request bytes for ten minutes: a WebSocket must not wait for that.
    let server = TestServer::start(&[("LIBRARIAN__SERVER__DRAIN_TIMEOUT_MS", "600000")]);
    let token = server.token("alice");
    let (mut stream, mut received) = raw_session(&server, &token).await;
    let mut buf = [0u8; 4096];
    // Up to the first snapshot, then a masked close frame with code 1000 (RFC 6455 §5.5.1).
    while !String::from_utf8_lossy(&received).contains("\"snapshot\"") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no snapshot in time")
            .unwrap();
        assert!(n > 0, "closed before the snapshot");
        received.extend_from_slice(&buf[..n]);
    }
    let mask = [1u8, 2, 3, 4];
    stream
        .write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ mask[0], 0xE8 ^ mask[1]])
        .await
        .unwrap();
    // The server echoes the close and then ends the connection (EOF): a client following the
    // RFC waits for exactly that. The timeout is a hang guard, far below the drain timeout.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut tail = Vec::new();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return tail,
                Ok(n) => tail.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server kept the connection open after the closing handshake");
    // The echoed close frame: opcode 8, code 1000.
    let at = ended
        .windows(4)
        .position(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xE8]);
    assert!(at.is_some(), "no close frame echoed: {ended:?}");
    let closed = server
        .wait_for_log("the session's close", |l| l.contains("\"session closed\""))
        .await;
    assert!(closed.contains("\"close_code\":1000"), "{closed}");
}
