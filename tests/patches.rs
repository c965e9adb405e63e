//! Patch frames end to end (DESIGN §10), against the real binary on SQLite and PostgreSQL: a
//! client applying patches equals `GET /library` at every step of random mutations; skipped
//! versions come as one patch; resumes within the history get a patch and beyond it a
//! snapshot (WebSocket and HTTP); `resync` answers the whole library; no patch crosses a reset.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_core::LibrarySnapshot;
use librarian_core::patch::{Patch, digest_of};
use librarian_core::protocol::ServerFrame;
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{Got, Ws, connect_with, frame, recv, send};
use librarian_testkit::{TestDb, both_backends};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

fn start(db: &TestDb, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("LIBRARIAN__DATABASE__URL", db.url())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

struct Http {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    fn new(server: &TestServer, token: &str) -> Http {
        Http {
            http: reqwest::Client::new(),
            base: server.url("/api/v1"),
            token: token.to_owned(),
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

    /// A write that must succeed; answers its library version.
    async fn write(&self, method: Method, path: &str, body: Option<Value>) -> i64 {
        let (status, reply) = self.call(method, path, body).await;
        assert!(status == 200 || status == 201, "{status} {reply}");
        reply["library_version"].as_i64().unwrap()
    }

    /// `GET /library` (with `query`): the raw body and its `Library-Digest`.
    async fn library_raw(&self, query: &str) -> (String, String) {
        let res = self
            .http
            .get(format!("{}/library{query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let digest = res.headers()["library-digest"].to_str().unwrap().to_owned();
        (res.text().await.unwrap(), digest)
    }
}

/// A session's client side: what it holds, applied from snapshots and patches.
struct Client {
    ws: Ws,
    held: Option<LibrarySnapshot>,
    patches: usize,
    snapshots: usize,
}

impl Client {
    async fn connect(server: &TestServer, token: &str, query: &str) -> Client {
        let mut ws = connect_with(server, query, Some(token)).await.unwrap();
        let hello = frame(&mut ws).await;
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["patches"], query.contains("patches=1"), "{hello}");
        Client {
            ws,
            held: None,
            patches: 0,
            snapshots: 0,
        }
    }

    /// Reads one frame and applies it; answers the frame.
    async fn step(&mut self) -> Value {
        let f = match recv(&mut self.ws).await {
            Got::Frame(f) => f,
            Got::Closed(code) => panic!("session closed ({code:?})"),
        };
        match serde_json::from_value::<ServerFrame>(f.clone()).unwrap() {
            ServerFrame::Snapshot(s) => {
                let digest = s.digest.clone().expect("a snapshot without a digest");
                s.library.verify(&digest).unwrap();
                self.held = Some(s.library);
                self.snapshots += 1;
            }
            ServerFrame::Patch(p) => {
                let held = self.held.as_mut().expect("a patch before any snapshot");
                apply(held, &p);
                self.patches += 1;
            }
            _ => {}
        }
        f
    }

    /// Reads until a `snapshot` or a `patch`, applied.
    async fn data(&mut self) -> Value {
        loop {
            let f = self.step().await;
            if f["type"] == "snapshot" || f["type"] == "patch" {
                return f;
            }
        }
    }

    /// Reads until it holds at least `version`.
    async fn reach(&mut self, version: i64) {
        while self.held.as_ref().is_none_or(|h| h.version < version) {
            self.step().await;
        }
    }

    fn version(&self) -> i64 {
        self.held.as_ref().map_or(-1, |h| h.version)
    }
}

/// Applies a patch and checks the digest, as every client must.
fn apply(held: &mut LibrarySnapshot, patch: &Patch) {
    assert_eq!(
        patch.from_version, held.version,
        "a patch from another version"
    );
    held.apply(patch).unwrap();
    held.verify(&patch.digest).unwrap();
}

/// One random mutation over HTTP, chosen from what the library holds; answers its version.
async fn random_mutation(http: &Http, lib: &LibrarySnapshot, rng: &mut StdRng, n: usize) -> i64 {
    let pick = |rng: &mut StdRng, len: usize| rng.random_range(0..len);
    let project = (!lib.projects.is_empty())
        .then(|| lib.projects[pick(rng, lib.projects.len())].id.to_string());
    let block = (!lib.context_blocks.is_empty()).then(|| {
        lib.context_blocks[pick(rng, lib.context_blocks.len())]
            .id
            .to_string()
    });
    let prompt = (!lib.saved_prompts.is_empty()).then(|| {
        lib.saved_prompts[pick(rng, lib.saved_prompts.len())]
            .id
            .to_string()
    });
    let in_project = || project.clone().map_or(Value::Null, Value::String);
    loop {
        match rng.random_range(0..10) {
            0 => {
                let parent = if rng.random_bool(0.5) {
                    in_project()
                } else {
                    Value::Null
                };
                let body = json!({"name": format!("p{n}"), "parent_id": parent});
                return http.write(Method::POST, "/projects", Some(body)).await;
            }
            1 | 2 => {
                let body = json!({"title": format!("b{n}"), "content": "x".repeat(n % 7 * 40),
                    "tags": ["t"], "project_id": in_project()});
                return http
                    .write(Method::POST, "/context-blocks", Some(body))
                    .await;
            }
            3 => {
                let ids: Vec<String> = lib
                    .context_blocks
                    .iter()
                    .take(3)
                    .map(|b| b.id.to_string())
                    .collect();
                let body = json!({"title": format!("s{n}"), "context_block_ids": ids, "project_id": in_project()});
                return http.write(Method::POST, "/saved-prompts", Some(body)).await;
            }
            4 if block.is_some() => {
                let path = format!("/context-blocks/{}", block.as_ref().unwrap());
                let body = json!({"content": format!("edit {n} \"quoted\" \\ \n\u{1}é")});
                return http.write(Method::PATCH, &path, Some(body)).await;
            }
            5 if prompt.is_some() => {
                let path = format!("/saved-prompts/{}", prompt.as_ref().unwrap());
                return http
                    .write(
                        Method::PATCH,
                        &path,
                        Some(json!({"title": format!("s{n}'")})),
                    )
                    .await;
            }
            6 if project.is_some() => {
                let path = format!("/projects/{}", project.as_ref().unwrap());
                return http
                    .write(
                        Method::PATCH,
                        &path,
                        Some(json!({"description": format!("d{n}")})),
                    )
                    .await;
            }
            // A project delete moves its children to its parent.
            7 if project.is_some() => {
                let path = format!("/projects/{}", project.as_ref().unwrap());
                return http.write(Method::DELETE, &path, None).await;
            }
            // A block delete removes it from every prompt that uses it.
            8 if block.is_some() => {
                let path = format!("/context-blocks/{}", block.as_ref().unwrap());
                return http.write(Method::DELETE, &path, None).await;
            }
            9 if prompt.is_some() => {
                let path = format!("/saved-prompts/{}", prompt.as_ref().unwrap());
                return http.write(Method::DELETE, &path, None).await;
            }
            _ => {}
        }
    }
}

both_backends! {
    /// Random creates, updates and deletes (project deletes that move children, block deletes
    /// that edit prompts): after each, a client applying patches holds exactly `GET /library`,
    /// byte for byte, and its digest.
    async fn a_client_applying_patches_equals_get_library_at_every_step(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        let mut client = Client::connect(&server, &token, "?patches=1").await;
        client.reach(0).await;
        let mut rng = StdRng::seed_from_u64(16);
        for n in 0..80 {
            let lib = client.held.clone().unwrap();
            let v = random_mutation(&http, &lib, &mut rng, n).await;
            client.reach(v).await;
            let (body, digest) = http.library_raw("").await;
            let held = client.held.as_ref().unwrap();
            assert_eq!(held.version, v);
            assert_eq!(String::from_utf8(held.canonical_json()).unwrap(), body, "after mutation {n}");
            assert_eq!(digest, digest_of(body.as_bytes()));
        }
        assert_eq!(client.snapshots, 1, "only the first frame is the whole library");
        assert!(client.patches >= 80, "{} patches", client.patches);
        // Something of each kind happened.
        let last = client.held.unwrap();
        assert!(!last.context_blocks.is_empty() && !last.saved_prompts.is_empty(), "{last:?}");
    }

    /// Ten writes at once while reloads are throttled: the session gets patches that span
    /// several versions, each from what it holds (never one it cannot apply); a session
    /// without `patches=1` gets snapshots only.
    async fn a_session_that_skipped_versions_gets_one_patch_from_what_it_holds(db) {
        let server = start(&db, &[("LIBRARIAN__SYNC__MIN_RELOAD_INTERVAL_MS", "300")]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        let mut plain = Client::connect(&server, &token, "").await;
        let mut slow = Client::connect(&server, &token, "?patches=1").await;
        slow.reach(0).await;
        let writes = (0..10).map(|i| http.write(Method::POST, "/projects", Some(json!({"name": format!("p{i}")}))));
        let last = futures_util::future::join_all(writes).await.into_iter().max().unwrap();
        let mut frames = Vec::new();
        while slow.version() < last {
            let f = slow.step().await;
            if f["type"] == "patch" {
                frames.push(f);
            }
        }
        assert!(frames.len() < 10, "{} patches for 10 versions: none skipped", frames.len());
        assert!(frames.iter().any(|f| f["version"].as_i64().unwrap() - f["from_version"].as_i64().unwrap() > 1),
            "no patch spanning several versions: {frames:?}");
        plain.reach(last).await;
        assert_eq!(plain.patches, 0);
        assert_eq!(plain.held.unwrap(), slow.held.unwrap());
    }

    /// Resuming a few versions back gets a patch, over the WebSocket and over HTTP, also after
    /// the library had no session for a while; beyond the history, the whole library.
    async fn resume_within_the_history_is_a_patch_and_beyond_it_a_snapshot(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        let mut client = Client::connect(&server, &token, "?patches=1").await;
        client.reach(0).await;
        let empty_library = client.held.clone().unwrap();
        for i in 0..3 {
            let v = http.write(Method::POST, "/context-blocks", Some(json!({"title": format!("b{i}")}))).await;
            // One load, one step each.
            client.reach(v).await;
        }
        let held = client.held.clone().unwrap();
        drop(client);
        // Five writes while nobody has the library open.
        let mut last = 0;
        for i in 0..5 {
            last = http.write(Method::POST, "/projects", Some(json!({"name": format!("p{i}")}))).await;
        }
        let mut back = Client::connect(&server, &token, "?patches=1&since_version=3").await;
        back.held = Some(held.clone());
        let first = back.data().await;
        assert_eq!((first["type"].as_str(), first["from_version"].as_i64()), (Some("patch"), Some(3)), "{first}");
        back.reach(last).await;
        let (body, digest) = http.library_raw("").await;
        assert_eq!(String::from_utf8(back.held.clone().unwrap().canonical_json()).unwrap(), body);
        // HTTP: the same patch object, with the digest of the whole library.
        let (patch, patch_digest) = http.library_raw("?since_version=3").await;
        assert_eq!(patch_digest, digest);
        let ServerFrame::Patch(patch) = serde_json::from_str(&patch).unwrap() else {
            panic!("not a patch: {patch}")
        };
        let mut via_http = held.clone();
        apply(&mut via_http, &patch);
        assert_eq!(via_http, back.held.clone().unwrap());
        // From version 0: four steps composed into one patch (HTTP and WebSocket alike).
        let (span, _) = http.library_raw("?since_version=0").await;
        let ServerFrame::Patch(span) = serde_json::from_str(&span).unwrap() else {
            panic!("not a patch: {span}")
        };
        let mut from_empty = empty_library.clone();
        apply(&mut from_empty, &span);
        assert_eq!(from_empty, via_http);
        let mut resumed = Client::connect(&server, &token, "?patches=1&since_version=0").await;
        resumed.held = Some(empty_library);
        let first = resumed.data().await;
        assert_eq!((first["type"].as_str(), first["from_version"].as_i64()), (Some("patch"), Some(0)), "{first}");
        assert_eq!(resumed.held.unwrap(), via_http);
        let held = server.metrics().await.get("librarian_patch_history_bytes", &[]);
        assert!(held > 0.0, "the history is empty: {held}");
        // At the current version: a patch that changes nothing.
        let (empty, _) = http.library_raw(&format!("?since_version={last}")).await;
        let empty: Value = serde_json::from_str(&empty).unwrap();
        assert_eq!((empty["type"].as_str(), empty["from_version"].as_i64(), empty["version"].as_i64()),
            (Some("patch"), Some(last), Some(last)), "{empty}");
    }

    /// With no history kept (`sync.patch_history_bytes` = 0), a session a step behind still
    /// gets the step of the load (diffed against what it holds), and a resume the whole library.
    async fn without_history_a_resume_gets_the_whole_library(db) {
        let server = start(&db, &[("LIBRARIAN__SYNC__PATCH_HISTORY_BYTES", "0")]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        let mut client = Client::connect(&server, &token, "?patches=1").await;
        client.reach(0).await;
        let v = http.write(Method::POST, "/projects", Some(json!({"name": "a"}))).await;
        client.reach(v).await;
        assert_eq!(client.patches, 1);
        drop(client);
        let v2 = http.write(Method::POST, "/projects", Some(json!({"name": "b"}))).await;
        let mut back = Client::connect(&server, &token, &format!("?patches=1&since_version={v}")).await;
        let first = back.data().await;
        assert_eq!((first["type"].as_str(), first["version"].as_i64()), (Some("snapshot"), Some(v2)), "{first}");
        let (whole, _) = http.library_raw(&format!("?since_version={v}")).await;
        assert_eq!(whole, String::from_utf8(back.held.unwrap().canonical_json()).unwrap());
    }

    /// `resync` (the client's digest did not match) is answered with the whole library, even at
    /// the version the session holds; patches go on from there.
    async fn resync_is_answered_with_the_whole_library(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        let mut client = Client::connect(&server, &token, "?patches=1").await;
        let v = http.write(Method::POST, "/projects", Some(json!({"name": "a"}))).await;
        client.reach(v).await;
        // Pretend what it holds went wrong.
        client.held.as_mut().unwrap().projects.clear();
        send(&mut client.ws, json!({"type": "resync"})).await;
        loop {
            let f = client.step().await;
            if f["type"] == "snapshot" {
                assert_eq!(f["version"].as_i64(), Some(v));
                break;
            }
            assert_ne!(f["type"], "patch", "a patch before the resync's snapshot: {f}");
        }
        assert_eq!(client.held.as_ref().unwrap().projects.len(), 1);
        let v2 = http.write(Method::POST, "/projects", Some(json!({"name": "b"}))).await;
        let before = client.patches;
        client.reach(v2).await;
        assert_eq!(client.patches, before + 1);
        // A resync frame with more in it is malformed.
        send(&mut client.ws, json!({"type": "resync", "version": 3})).await;
        loop {
            match recv(&mut client.ws).await {
                Got::Frame(f) if f["type"] == "error" => {
                    assert_eq!(f["code"], "malformed_frame");
                }
                Got::Frame(_) => {}
                Got::Closed(code) => {
                    assert_eq!(code, Some(4400));
                    break;
                }
            }
        }
    }

    /// The database goes back (restored from a backup) under a running server, found when a
    /// client resumes above it: the session holding the old timeline gets the restored library
    /// as a `reset` snapshot, never a patch across it, and patches go on from there.
    async fn a_patch_never_crosses_a_reset(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let http = Http::new(&server, &token);
        let mut client = Client::connect(&server, &token, "?patches=1").await;
        for title in ["kept", "lost 1", "lost 2"] {
            http.write(Method::POST, "/context-blocks", Some(json!({"title": title}))).await;
        }
        client.reach(3).await;
        db.execute("DELETE FROM context_blocks WHERE title <> 'kept'; UPDATE libraries SET version = 1")
            .await;
        // Another device held version 4 of the old timeline: the server reloads and finds 1.
        let mut other = Client::connect(&server, &token, "?patches=1&since_version=4").await;
        let reset = loop {
            let f = client.step().await;
            assert_ne!(f["type"], "patch", "a patch across the reset: {f}");
            if f["type"] == "snapshot" {
                break f;
            }
        };
        assert_eq!((reset["reset"].as_bool(), reset["version"].as_i64()), (Some(true), Some(1)), "{reset}");
        assert_eq!(client.held.as_ref().unwrap().context_blocks.len(), 1);
        let first = other.data().await;
        assert_eq!((first["type"].as_str(), first["reset"].as_bool()), (Some("snapshot"), Some(true)), "{first}");
        let v = http.write(Method::POST, "/projects", Some(json!({"name": "after"}))).await;
        assert_eq!(v, 2);
        let before = client.patches;
        client.reach(v).await;
        assert_eq!(client.patches, before + 1, "patches go on after the reset");
        let (body, _) = http.library_raw("").await;
        assert_eq!(String::from_utf8(client.held.unwrap().canonical_json()).unwrap(), body);
        // From the old timeline's version 3: nothing in the history starts there.
        let (whole, _) = http.library_raw("?since_version=3").await;
        assert!(!whole.contains(r#""type":"patch""#), "{whole}");
    }
}
