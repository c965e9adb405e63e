//! The REST API end to end: the real `librarian` binary on port 0, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::server::TestServer;
use librarian_testkit::{TestDb, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A signed-in HTTP client of one test server.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn version(&self) -> i64 {
        self.body["library_version"]
            .as_i64()
            .expect("library_version")
    }

    fn id(&self) -> String {
        self.body["data"]["id"]
            .as_str()
            .expect("data.id")
            .to_owned()
    }

    /// Checks the problem+json shape and returns the body.
    fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        for key in ["type", "title", "detail", "code"] {
            assert!(
                self.body[key].is_string(),
                "problem without {key}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        &self.body
    }

    fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Api {
    fn new(server: &TestServer, user: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.url("/api/v1"),
            token: server.token(user),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    async fn library(&self) -> Value {
        let r = self.get("/library").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

fn start(db: &TestDb) -> TestServer {
    TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())])
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn crud_of_every_kind_moves_the_library_version_by_one_and_shows_at_once(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        assert_eq!(api.library().await["version"], 0);

        let p = api.post("/projects", json!({"name": "Work"})).await;
        assert_eq!(p.status, 201);
        assert_eq!(p.header("location"), Some(format!("/api/v1/projects/{}", p.id()).as_str()));
        assert_eq!(p.header("library-version"), Some("1"));
        let pid = p.id();
        let b = api.post("/context-blocks", json!({"title": "Tone", "content": "Be brief.", "tags": ["style"], "project_id": pid})).await;
        let bid = b.id();
        let s = api.post("/saved-prompts", json!({"title": "Mail", "context_block_ids": [bid], "project_id": pid})).await;
        let sid = s.id();
        assert_eq!([p.version(), b.version(), s.version()], [1, 2, 3]);

        let lib = api.library().await;
        assert_eq!(lib["version"], 3);
        assert_eq!(ids(&lib["projects"]), vec![pid.clone()]);
        assert_eq!(lib["saved_prompts"][0]["context_block_ids"], json!([bid]));
        assert_eq!(api.get(&format!("/saved-prompts/{sid}")).await.body["title"], "Mail");

        let mut version = 3;
        for (path, body, field, value) in [
            (format!("/projects/{pid}"), json!({"name": "Home"}), "name", json!("Home")),
            (format!("/context-blocks/{bid}"), json!({"tags": []}), "tags", json!([])),
            (format!("/saved-prompts/{sid}"), json!({"project_id": null}), "project_id", Value::Null),
        ] {
            let r = api.patch(&path, body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            version += 1;
            assert_eq!(r.version(), version);
            assert_eq!(r.body["data"][field], value);
            assert_eq!(r.body["data"]["version"], 2);
            assert_eq!(api.get(&path).await.body[field], value, "GET {path} shows the change");
        }
        for kind in ["saved-prompts", "context-blocks", "projects"] {
            let id = match kind { "projects" => &pid, "context-blocks" => &bid, _ => &sid };
            let r = api.delete(&format!("/{kind}/{id}")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["data"], Value::Null);
            version += 1;
            assert_eq!(r.version(), version);
            api.get(&format!("/{kind}/{id}")).await.problem(404);
        }
        let lib = api.library().await;
        assert_eq!(lib["version"], version);
        assert_eq!((ids(&lib["projects"]).len(), ids(&lib["context_blocks"]).len()), (0, 0));
    }

    async fn prefer_return_library_answers_with_a_snapshot_at_least_as_new(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        for i in 0..3 {
            let r = api
                .send(api.request(Method::POST, "/context-blocks")
                    .header("Prefer", "return=library")
                    .json(&json!({"title": format!("b{i}")})))
                .await;
            assert_eq!(r.status, 201);
            assert!(r.body["library"]["version"].as_i64().unwrap() >= r.version());
            assert!(ids(&r.body["library"]["context_blocks"]).contains(&r.id()));
        }
        // Without the preference there is no snapshot in the reply.
        assert!(api.post("/projects", json!({"name": "p"})).await.body.get("library").is_none());
    }

    async fn a_committed_write_is_answered_as_committed_even_if_its_library_cannot_be_loaded(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        api.post("/projects", json!({"name": "p"})).await;
        // Creating a block does not touch saved prompts; loading the library does.
        db.execute("ALTER TABLE saved_prompts RENAME TO saved_prompts_gone").await;
        let r = api
            .send(api.request(Method::POST, "/context-blocks")
                .header("Prefer", "return=library")
                .json(&json!({"title": "kept"})))
            .await;
        // Committed: the reply says so (an error would make the client retry and duplicate it).
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.version(), 2);
        assert_eq!(r.body["data"]["title"], "kept");
        assert!(r.body.get("library").is_none(), "{}", r.body);
        assert_eq!(r.header("preference-applied"), None);
        db.execute("ALTER TABLE saved_prompts_gone RENAME TO saved_prompts").await;
        let lib = api.library().await;
        assert_eq!((lib["version"].as_i64(), lib["context_blocks"].as_array().unwrap().len()), (Some(2), 1));
    }

    async fn etag_and_if_none_match_make_polling_cheap(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        api.post("/projects", json!({"name": "p"})).await;
        let r = api.get("/library").await;
        assert_eq!(r.header("etag"), Some("\"1\""));
        let poll = |tag: &'static str| api.send(api.request(Method::GET, "/library").header("If-None-Match", tag));
        let same = poll("\"1\"").await;
        assert_eq!((same.status.as_u16(), same.body.clone()), (304, Value::Null));
        api.post("/projects", json!({"name": "q"})).await;
        let changed = poll("\"1\"").await;
        assert_eq!(changed.status, 200);
        assert_eq!(changed.body["version"], 2);
    }

    async fn if_match_refuses_a_stale_write_with_the_current_row(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        let id = api.post("/context-blocks", json!({"title": "v1"})).await.id();
        let path = format!("/context-blocks/{id}");
        let edit = |tag: &'static str, title: &'static str| {
            api.send(api.request(Method::PATCH, &path).header("If-Match", tag).json(&json!({"title": title})))
        };
        let first = edit("\"1\"", "tab one").await;
        assert_eq!(first.status, 200);
        assert_eq!(first.header("etag"), Some("\"2\""));
        let second = edit("\"1\"", "tab two").await;
        let body = second.problem(412);
        assert_eq!(body["current"]["title"], "tab one");
        assert_eq!(body["current"]["version"], 2);
        // Bare numbers work too; garbage is a 400.
        assert_eq!(edit("2", "tab two again").await.status, 200);
        edit("\"two\"", "x").await.problem(400);
        let del = api.send(api.request(Method::DELETE, &path).header("If-Match", "\"1\"")).await;
        del.problem(412);
        assert_eq!(api.library().await["version"], 3);
    }

    async fn an_idempotency_key_replays_the_first_answer(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        let create = || api.send(api.request(Method::POST, "/projects")
            .header("Idempotency-Key", "create-1")
            .json(&json!({"name": "once"})));
        let first = create().await;
        let retry = create().await;
        assert_eq!((first.status, retry.status), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(first.body, retry.body);
        assert_eq!(api.library().await["projects"].as_array().unwrap().len(), 1);
        let other = api.send(api.request(Method::POST, "/projects")
            .header("Idempotency-Key", "create-1")
            .json(&json!({"name": "different"}))).await;
        assert_eq!(other.problem(422)["code"], "idempotency_key_reused");
        assert_eq!(api.library().await["version"], 1);
    }

    async fn another_users_rows_are_not_found_and_never_seen(db) {
        let server = start(&db);
        let alice = Api::new(&server, "alice");
        let bob = Api::new(&server, "bob");
        let pid = alice.post("/projects", json!({"name": "secret"})).await.id();
        let bid = alice.post("/context-blocks", json!({"title": "secret"})).await.id();
        let sid = alice.post("/saved-prompts", json!({"title": "secret", "context_block_ids": [bid]})).await.id();
        for (kind, id) in [("projects", &pid), ("context-blocks", &bid), ("saved-prompts", &sid)] {
            let path = format!("/{kind}/{id}");
            bob.get(&path).await.problem(404);
            bob.patch(&path, json!({})).await.problem(404);
            bob.delete(&path).await.problem(404);
        }
        let r = bob.post("/saved-prompts", json!({"title": "x", "context_block_ids": [bid]})).await;
        assert_eq!(r.problem(422)["errors"][0]["field"], "context_block_ids[0]");
        bob.post("/context-blocks", json!({"title": "x", "project_id": pid})).await.problem(422);
        let theirs = bob.library().await;
        assert_eq!(theirs["version"], 0);
        assert!(!theirs.to_string().contains("secret"));
        assert_eq!(alice.library().await["version"], 3);
    }

    async fn every_error_status_answers_with_a_problem_document(db) {
        let server = start(&db);
        let api = Api::new(&server, "alice");
        let raw = |ct: &'static str, body: Vec<u8>| {
            api.send(api.request(Method::POST, "/context-blocks").header("content-type", ct).body(body))
        };
        assert_eq!(raw("application/json", b"{\"title\": ".to_vec()).await.problem(400)["code"], "malformed_json");
        let wrong_type = raw("application/json", br#"{"title": 42}"#.to_vec()).await;
        wrong_type.problem(422);
        assert_eq!(wrong_type.error_fields(), ["title"]);
        let unknown = raw("application/json", br#"{"title": "t", "titel": "t"}"#.to_vec()).await;
        unknown.problem(422);
        assert_eq!(unknown.error_fields(), ["titel"]);
        let missing = raw("application/json", br#"{"content": "c"}"#.to_vec()).await;
        assert_eq!(missing.error_fields(), ["title"]);
        raw("text/plain", b"{}".to_vec()).await.problem(415);
        let huge = format!(r#"{{"title": "t", "content": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
        raw("application/json", huge.into_bytes()).await.problem(413);
        let rule = api.post("/context-blocks", json!({"title": "", "tags": ["a", "a"]})).await;
        rule.problem(422);
        assert_eq!(rule.error_fields(), ["title", "tags[1]"]);
        let bad_id = api.get("/projects/not-a-uuid").await;
        bad_id.problem(400);
        assert_eq!(bad_id.error_fields(), ["id"]);
        api.get(&format!("/projects/{}", uuid::Uuid::new_v4())).await.problem(404);
        api.get("/no-such-route").await.problem(404);
        api.call(Method::PUT, "/projects", Some(json!({}))).await.problem(405);
        let id = uuid::Uuid::new_v4();
        api.post("/projects", json!({"id": id, "name": "a"})).await;
        api.post("/projects", json!({"id": id, "name": "b"})).await.problem(409);
        // Nothing refused was written: only the one project.
        assert_eq!(api.library().await["version"], 1);
    }
}

mod auth {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn sign(alg: Algorithm, secret: &str, claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    async fn status_with(server: &TestServer, auth: Option<String>) -> (u16, Value) {
        let mut req = reqwest::Client::new().get(server.url("/api/v1/library"));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        if status == 401 {
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
        }
        (status, res.json().await.unwrap())
    }

    #[tokio::test]
    async fn jwt_mode_accepts_only_valid_hs256_tokens_for_its_audience() {
        let server = TestServer::start(&[
            ("LIBRARIAN__AUTH__MODE", "jwt"),
            ("LIBRARIAN__AUTH__JWT_SECRET", SECRET),
            ("LIBRARIAN__AUTH__AUDIENCE", "authenticated"),
        ]);
        let good = json!({"sub": "alice", "exp": now() + 600, "aud": "authenticated"});
        let bearer = |t: String| Some(format!("Bearer {t}"));
        let (status, body) = status_with(
            &server,
            bearer(sign(Algorithm::HS256, SECRET, good.clone())),
        )
        .await;
        assert_eq!((status, body["version"].as_i64()), (200, Some(0)));

        let none_alg = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            B64.encode(good.to_string())
        );
        let cases: Vec<(&str, Option<String>)> = vec![
            ("missing", None),
            ("not bearer", Some("Basic YWxpY2U6cHc=".into())),
            ("garbage", bearer("not.a.token".into())),
            (
                "expired",
                bearer(sign(
                    Algorithm::HS256,
                    SECRET,
                    json!({"sub": "alice", "exp": now() - 3600, "aud": "authenticated"}),
                )),
            ),
            (
                "not yet valid",
                bearer(sign(
                    Algorithm::HS256,
                    SECRET,
                    json!({"sub": "alice", "exp": now() + 7200, "nbf": now() + 3600, "aud": "authenticated"}),
                )),
            ),
            (
                "wrong key",
                bearer(sign(
                    Algorithm::HS256,
                    "another-secret-of-at-least-32-bytes!!",
                    good.clone(),
                )),
            ),
            ("alg none", bearer(none_alg)),
            (
                "other algorithm",
                bearer(sign(Algorithm::HS512, SECRET, good.clone())),
            ),
            (
                "wrong audience",
                bearer(sign(
                    Algorithm::HS256,
                    SECRET,
                    json!({"sub": "alice", "exp": now() + 600, "aud": "someone-else"}),
                )),
            ),
            (
                "no exp",
                bearer(sign(
                    Algorithm::HS256,
                    SECRET,
                    json!({"sub": "alice", "aud": "authenticated"}),
                )),
            ),
            (
                "empty sub",
                bearer(sign(
                    Algorithm::HS256,
                    SECRET,
                    json!({"sub": "", "exp": now() + 600, "aud": "authenticated"}),
                )),
            ),
        ];
        for (name, auth) in cases {
            let (status, body) = status_with(&server, auth).await;
            assert_eq!(status, 401, "{name}: {body}");
            assert_eq!(body["code"], "unauthorized", "{name}");
        }
    }

    #[tokio::test]
    async fn dev_tokens_work_and_dev_mode_refuses_a_public_address() {
        let server = TestServer::start(&[]);
        let token = server.token("alice");
        let (status, _) = status_with(&server, Some(format!("Bearer {token}"))).await;
        assert_eq!(status, 200);

        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(librarian_testkit::server::binary())
            .arg("serve")
            .current_dir(dir.path())
            .env("LIBRARIAN__SERVER__BIND", "0.0.0.0:0")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback"), "{err}");
    }
}
