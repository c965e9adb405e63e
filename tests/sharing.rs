//! Shared libraries end to end (DESIGN §9), against the real binary on SQLite and PostgreSQL:
//! roles on every route, isolation for non-members, viewers and removed members (asserted on
//! the frames they receive), a write racing its author's removal, deletion, presence and
//! delivery receipts. Across instances (PostgreSQL): revocation and presence, and a killed
//! instance's sessions expiring from presence.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{Got, Ws, connect_with, frame, recv, send, until};
use librarian_testkit::{TestDb, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

fn start(db: &TestDb, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("LIBRARIAN__DATABASE__URL", db.url())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

/// One user's HTTP client.
struct User {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl User {
    fn new(server: &TestServer, name: &str) -> User {
        User {
            http: reqwest::Client::new(),
            base: server.url("/api/v1"),
            token: server.token(name),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn create_library(&self, name: &str) -> String {
        let (status, body) = self
            .call(Method::POST, "/libraries", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["id"].as_str().unwrap().to_owned()
    }

    /// PUT a member; answers the library version of the change.
    async fn share(&self, lib: &str, user: &str, role: &str) -> i64 {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/libraries/{lib}/members/{user}"),
                Some(json!({ "role": role })),
            )
            .await;
        assert!(status == 201 || status == 200, "{status} {body}");
        body["library_version"].as_i64().unwrap()
    }

    async fn unshare(&self, lib: &str, user: &str) -> i64 {
        let (status, body) = self
            .call(
                Method::DELETE,
                &format!("/libraries/{lib}/members/{user}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["library_version"].as_i64().unwrap()
    }

    async fn write(&self, lib: &str, title: &str) -> (u16, Value) {
        self.call(
            Method::POST,
            &format!("/libraries/{lib}/context-blocks"),
            Some(json!({ "title": title })),
        )
        .await
    }

    async fn open(&self, server: &TestServer, lib: &str) -> Ws {
        connect_with(server, &format!("?library={lib}"), Some(&self.token))
            .await
            .unwrap()
    }
}

/// Reads a session to its end: every frame, and the close code.
async fn drain(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    let mut frames = Vec::new();
    loop {
        match recv(ws).await {
            Got::Frame(f) => frames.push(f),
            Got::Closed(code) => return (frames, code),
        }
    }
}

/// Reads until a presence frame satisfies `ok`; answers it.
async fn presence_until(ws: &mut Ws, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    loop {
        let (p, _) = until(ws, "presence").await;
        let sessions = p["sessions"].as_array().unwrap().clone();
        if ok(&sessions) {
            return sessions;
        }
    }
}

/// Reads until a snapshot at `version` or newer, acknowledging each snapshot with `seen`, as
/// the SDKs do.
async fn hold(ws: &mut Ws, version: i64) -> Value {
    loop {
        let f = frame(ws).await;
        if f["type"] == "snapshot" {
            let v = f["version"].as_i64().unwrap();
            send(ws, json!({"type": "seen", "version": v})).await;
            if v >= version {
                return f;
            }
        }
    }
}

both_backends! {
    async fn roles_decide_every_route_and_non_members_see_nothing(db) {
        let server = start(&db, &[]);
        let (alice, bob, carol, mallory) = (
            User::new(&server, "alice"),
            User::new(&server, "bob"),
            User::new(&server, "carol"),
            User::new(&server, "mallory"),
        );
        let team = alice.create_library("Team").await;
        let v1 = alice.share(&team, "bob", "editor").await;
        let v2 = alice.share(&team, "carol", "viewer").await;
        assert!(v2 > v1, "membership changes bump the version");

        // Listed for each member with their role, their own library first.
        let (_, list) = bob.call(Method::GET, "/libraries", None).await;
        let libs = list["libraries"].as_array().unwrap();
        assert_eq!(libs.len(), 2, "{list}");
        assert_eq!(libs[0]["owner_id"], "bob");
        assert_eq!((libs[1]["id"].as_str(), &libs[1]["role"]), (Some(team.as_str()), &json!("editor")));
        assert_eq!(libs[1]["owner_id"], "alice");

        // An editor writes, a viewer may not; both read.
        let (status, created) = bob.write(&team, "from bob").await;
        assert_eq!(status, 201, "{created}");
        let block = created["data"]["id"].as_str().unwrap().to_owned();
        let (status, problem) = carol.write(&team, "from carol").await;
        assert_eq!((status, problem["code"].as_str()), (403, Some("forbidden")), "{problem}");
        let (status, read) = carol.call(Method::GET, &format!("/libraries/{team}/context-blocks/{block}"), None).await;
        assert_eq!((status, &read["title"]), (200, &json!("from bob")));
        let (status, snapshot) = carol.call(Method::GET, &format!("/libraries/{team}/snapshot"), None).await;
        assert_eq!(status, 200);
        assert_eq!(snapshot["members"], json!([
            {"user_id": "alice", "role": "owner"},
            {"user_id": "bob", "role": "editor"},
            {"user_id": "carol", "role": "viewer"},
        ]));
        let (status, members) = carol.call(Method::GET, &format!("/libraries/{team}/members"), None).await;
        assert_eq!(status, 200);
        assert_eq!(members["members"].as_array().unwrap().len(), 3);

        // Member management: the owner only; the owner cannot be removed or demoted.
        let path = format!("/libraries/{team}/members/carol");
        let (status, _) = bob.call(Method::PUT, &path, Some(json!({"role": "editor"}))).await;
        assert_eq!(status, 403);
        let (status, _) = bob.call(Method::DELETE, &path, None).await;
        assert_eq!(status, 403);
        let (status, _) = alice.call(Method::DELETE, &format!("/libraries/{team}/members/alice"), None).await;
        assert_eq!(status, 409);
        let (status, _) = alice.call(Method::PUT, &format!("/libraries/{team}/members/alice"), Some(json!({"role": "viewer"}))).await;
        assert_eq!(status, 409);
        let (status, problem) = alice.call(Method::PUT, &path, Some(json!({"role": "owner"}))).await;
        assert_eq!(status, 422, "{problem}");
        let (status, _) = alice.call(Method::PUT, &path, Some(json!({"role": "viewer"}))).await;
        assert_eq!(status, 200, "an existing member: 200");
        let (status, _) = bob.call(Method::PATCH, &format!("/libraries/{team}"), Some(json!({"name": "Mine"}))).await;
        assert_eq!(status, 403);
        let (status, renamed) = alice.call(Method::PATCH, &format!("/libraries/{team}"), Some(json!({"name": "Team 2"}))).await;
        assert_eq!((status, &renamed["data"]["name"]), (200, &json!("Team 2")));

        // A non-member: 404 on every route, exactly as for a library that does not exist.
        let missing = uuid::Uuid::now_v7().to_string();
        for lib in [team.as_str(), missing.as_str()] {
            let routes: Vec<(Method, String, Option<Value>)> = vec![
                (Method::GET, format!("/libraries/{lib}/snapshot"), None),
                (Method::GET, format!("/libraries/{lib}/members"), None),
                (Method::PATCH, format!("/libraries/{lib}"), Some(json!({"name": "x"}))),
                (Method::DELETE, format!("/libraries/{lib}"), None),
                (Method::PUT, format!("/libraries/{lib}/members/mallory"), Some(json!({"role": "editor"}))),
                (Method::DELETE, format!("/libraries/{lib}/members/bob"), None),
                (Method::POST, format!("/libraries/{lib}/context-blocks"), Some(json!({"title": "x"}))),
                (Method::GET, format!("/libraries/{lib}/context-blocks/{block}"), None),
                (Method::PATCH, format!("/libraries/{lib}/context-blocks/{block}"), Some(json!({"title": "x"}))),
                (Method::DELETE, format!("/libraries/{lib}/context-blocks/{block}"), None),
                (Method::POST, format!("/libraries/{lib}/projects"), Some(json!({"name": "x"}))),
                (Method::POST, format!("/libraries/{lib}/saved-prompts"), Some(json!({"title": "x"}))),
            ];
            for (method, path, body) in routes {
                let (status, problem) = mallory.call(method.clone(), &path, body).await;
                assert_eq!((status, problem["code"].as_str()), (404, Some("library_not_found")), "{method} {path}: {problem}");
            }
            let refused = connect_with(&server, &format!("?library={lib}"), Some(&mallory.token)).await;
            match refused {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
                other => panic!("a non-member opened a session: {:?}", other.map(|_| ())),
            }
        }
        let (_, list) = mallory.call(Method::GET, "/libraries", None).await;
        assert_eq!(list["libraries"].as_array().unwrap().len(), 1, "only mallory's own: {list}");
        // Nothing was written by any refusal.
        let (_, snapshot) = alice.call(Method::GET, &format!("/libraries/{team}/snapshot"), None).await;
        assert_eq!(snapshot["context_blocks"].as_array().unwrap().len(), 1);

        // A member leaves; a default library cannot be deleted; a shared one can, and is gone.
        let (status, _) = carol.call(Method::DELETE, &path, None).await;
        assert_eq!(status, 200);
        let (_, mine) = alice.call(Method::GET, "/libraries", None).await;
        let own = mine["libraries"][0]["id"].as_str().unwrap().to_owned();
        let (status, _) = alice.call(Method::DELETE, &format!("/libraries/{own}"), None).await;
        assert_eq!(status, 409);
        let (status, _) = bob.call(Method::DELETE, &format!("/libraries/{team}"), None).await;
        assert_eq!(status, 403);
        let (status, _) = alice.call(Method::DELETE, &format!("/libraries/{team}"), None).await;
        assert_eq!(status, 200);
        for user in [&alice, &bob] {
            let (status, _) = user.call(Method::GET, &format!("/libraries/{team}/snapshot"), None).await;
            assert_eq!(status, 404);
        }
    }

    async fn a_removed_member_gets_no_byte_of_the_library_after_the_removal(db) {
        let server = start(&db, &[]);
        let (alice, bob) = (User::new(&server, "alice"), User::new(&server, "bob"));
        let team = alice.create_library("Team").await;
        alice.share(&team, "bob", "editor").await;
        let mut ws = bob.open(&server, &team).await;
        let hello = frame(&mut ws).await;
        assert_eq!((hello["type"].as_str(), hello["role"].as_str()), (Some("hello"), Some("editor")));
        assert_eq!(hello["library_id"], json!(team));
        let (status, _) = alice.write(&team, "one").await;
        assert_eq!(status, 201);
        let (snapshot, _) = until(&mut ws, "snapshot").await;
        assert!(snapshot["version"].as_i64().unwrap() >= 1);

        // Demoted: `access` comes before the snapshot of that version; writes are refused.
        let demoted = alice.share(&team, "bob", "viewer").await;
        let (access, _) = until(&mut ws, "access").await;
        assert_eq!(access["role"], "viewer");
        let next = frame(&mut ws).await;
        assert!(next["type"] != "snapshot" || next["version"].as_i64().unwrap() >= demoted, "{next}");
        send(&mut ws, json!({"type": "mutate", "mutation_id": "m1", "op": "context_block.create", "data": {"title": "viewer"}})).await;
        let (reject, _) = until(&mut ws, "reject").await;
        assert_eq!(reject["error"]["status"], 403, "{reject}");

        // Removed: no snapshot at or after the removal, then access_revoked and 4403.
        for i in 0..3 {
            alice.write(&team, &format!("before {i}")).await;
        }
        let removed = alice.unshare(&team, "bob").await;
        for i in 0..3 {
            alice.write(&team, &format!("after {i}")).await;
        }
        let (frames, code) = drain(&mut ws).await;
        assert_eq!(code, Some(4403), "{frames:?}");
        let last = frames.last().unwrap();
        assert_eq!((last["type"].as_str(), last["code"].as_str()), (Some("error"), Some("access_revoked")));
        for f in &frames {
            if let Some(v) = f["version"].as_i64().filter(|_| f["type"] == "snapshot") {
                assert!(v < removed, "a snapshot at {v} reached bob after his removal at {removed}");
            }
            assert!(!f.to_string().contains("after "), "a row written after the removal reached bob: {f}");
        }
        // And he cannot come back.
        let again = connect_with(&server, &format!("?library={team}"), Some(&bob.token)).await;
        assert!(matches!(again, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 404));
    }

    async fn a_write_racing_its_authors_removal_commits_before_it_or_not_at_all(db) {
        let server = start(&db, &[]);
        let (alice, bob) = (User::new(&server, "alice"), User::new(&server, "bob"));
        let team = alice.create_library("Team").await;
        let (mut before, mut refused) = (0, 0);
        for round in 0..20 {
            alice.share(&team, "bob", "editor").await;
            let titles: Vec<String> = (0..4).map(|i| format!("r{round} w{i}")).collect();
            let writes = titles.iter().map(|t| bob.write(&team, t));
            let (removal, results) = tokio::join!(
                alice.unshare(&team, "bob"),
                futures_util::future::join_all(writes)
            );
            for (status, body) in results {
                match status {
                    201 => {
                        let v = body["library_version"].as_i64().unwrap();
                        assert!(v < removal, "bob's write committed at {v}, after his removal at {removal}");
                        before += 1;
                    }
                    404 => refused += 1,
                    other => panic!("unexpected {other}: {body}"),
                }
            }
        }
        // Every committed write is in the library; every refused one is not.
        let (_, snapshot) = alice.call(Method::GET, &format!("/libraries/{team}/snapshot"), None).await;
        assert_eq!(snapshot["context_blocks"].as_array().unwrap().len(), before);
        assert_eq!(before + refused, 80);
    }

    async fn every_write_of_a_removed_member_that_committed_was_acknowledged(db) {
        let server = start(&db, &[]);
        let (alice, bob) = (User::new(&server, "alice"), User::new(&server, "bob"));
        let team = alice.create_library("Team").await;
        for round in 0..10 {
            alice.share(&team, "bob", "editor").await;
            let mut ws = bob.open(&server, &team).await;
            until(&mut ws, "snapshot").await;
            // Writes and the removal at once: some of the writes are in flight when it lands.
            let writes = async {
                for i in 0..16 {
                    send(&mut ws, json!({"type": "mutate", "mutation_id": format!("r{round}-{i}"),
                        "op": "context_block.create", "data": {"title": format!("r{round}-{i}")}})).await;
                }
            };
            let (removed, ()) = tokio::join!(alice.unshare(&team, "bob"), writes);
            let (frames, code) = drain(&mut ws).await;
            assert_eq!(code, Some(4403), "{frames:?}");
            assert_eq!(frames.last().unwrap()["code"], "access_revoked");
            let acked: Vec<String> = frames
                .iter()
                .filter(|f| f["type"] == "ack")
                .map(|f| {
                    assert!(f["library_version"].as_i64().unwrap() < removed, "{f}");
                    f["mutation_id"].as_str().unwrap().to_owned()
                })
                .collect();
            // What committed is exactly what bob was told committed.
            let (_, snapshot) = alice.call(Method::GET, &format!("/libraries/{team}/snapshot"), None).await;
            let mut committed: Vec<String> = snapshot["context_blocks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["title"].as_str().unwrap().to_owned())
                .filter(|t| t.starts_with(&format!("r{round}-")))
                .collect();
            committed.sort();
            let mut acked = acked;
            acked.sort();
            assert_eq!(committed, acked, "round {round}: {frames:?}");
        }
    }

    async fn deleting_a_library_ends_every_session_on_it(db) {
        let server = start(&db, &[]);
        let (alice, bob) = (User::new(&server, "alice"), User::new(&server, "bob"));
        let team = alice.create_library("Team").await;
        alice.share(&team, "bob", "viewer").await;
        let mut sessions = vec![alice.open(&server, &team).await, bob.open(&server, &team).await];
        for ws in &mut sessions {
            until(ws, "snapshot").await;
        }
        let (status, body) = alice.call(Method::DELETE, &format!("/libraries/{team}"), None).await;
        assert_eq!(status, 200, "{body}");
        for ws in &mut sessions {
            let (frames, code) = drain(ws).await;
            assert_eq!(code, Some(4403), "{frames:?}");
            assert_eq!(frames.last().unwrap()["code"], "access_revoked");
            assert!(frames.iter().all(|f| f["type"] != "snapshot"), "{frames:?}");
        }
    }

    async fn presence_lists_every_session_and_receipts_reach_the_writer(db) {
        let server = start(&db, &[]);
        let (alice, bob) = (User::new(&server, "alice"), User::new(&server, "bob"));
        let team = alice.create_library("Team").await;
        alice.share(&team, "bob", "editor").await;
        let mut a1 = alice.open(&server, &team).await;
        let mut a2 = alice.open(&server, &team).await;
        let mut b1 = bob.open(&server, &team).await;
        let three = |s: &[Value]| s.len() == 3;
        let listed = presence_until(&mut a1, three).await;
        let mut users: Vec<&str> = listed.iter().map(|s| s["user_id"].as_str().unwrap()).collect();
        users.sort_unstable();
        assert_eq!(users, ["alice", "alice", "bob"]);
        assert!(listed.iter().all(|s| s["connected_at"].is_string()));

        // A receipt above what the session was sent is ignored.
        send(&mut b1, json!({"type": "seen", "version": 1_000_000})).await;
        let (status, body) = alice.write(&team, "hello").await;
        assert_eq!(status, 201);
        let v = body["library_version"].as_i64().unwrap();
        for ws in [&mut a2, &mut b1] {
            hold(ws, v).await;
        }
        hold(&mut a1, v).await;
        // The writer's session learns that all three hold it ("on 3 of 3").
        let held = presence_until(&mut a1, |s| {
            s.len() == 3 && s.iter().all(|x| x["seen_version"].as_i64().is_some_and(|sv| sv >= v))
        })
        .await;
        assert!(held.iter().all(|x| x["seen_version"].as_i64() == Some(v)), "no claim above what was sent: {held:?}");
        let metrics = server.metrics().await;
        assert!(metrics.get("librarian_receipt_latency_seconds_count", &[]) >= 1.0);

        // A session that leaves is dropped from the list.
        drop(b1);
        presence_until(&mut a1, |s| s.len() == 2).await;
    }

    async fn the_session_limit_counts_a_users_sessions_across_libraries(db) {
        let server = start(&db, &[("LIBRARIAN__WS__MAX_SESSIONS_PER_USER", "2")]);
        let (alice, bob) = (User::new(&server, "alice"), User::new(&server, "bob"));
        let team = alice.create_library("Team").await;
        alice.share(&team, "bob", "editor").await;
        let _own = connect_with(&server, "", Some(&bob.token)).await.unwrap();
        let _shared = bob.open(&server, &team).await;
        match connect_with(&server, &format!("?library={team}"), Some(&bob.token)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
            other => panic!("a third session opened: {:?}", other.map(|_| ())),
        }
    }
}
