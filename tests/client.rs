//! The Rust SDK against the real server, on SQLite and PostgreSQL: read-your-writes,
//! reconnect with pending mutations (each applied once, paced under the server's in-flight
//! limit), temporary blocks, and a database that went back (restored from a backup); and, on
//! SQLite in jwt mode, tokens from a provider (refreshed on the open socket, a failing provider,
//! another user's token, a refused connection).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_client::{
    Admin, ClientError, Library, SyncStatus, TempBlock, TokenProvider, ViewBlock,
};
use librarian_core::{ContextBlockPatch, Field, NewContextBlock, Role};
use librarian_testkit::proxy::TcpProxy;
use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect_with, until};
use librarian_testkit::{TestDb, both_backends};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Hang guard only.
const PATIENCE: Duration = Duration::from_secs(60);

fn start(db: &TestDb, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("LIBRARIAN__DATABASE__URL", db.url())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

/// A proxy in front of the server, so a test can cut the SDK's connection.
async fn proxy_to(server: &TestServer) -> TcpProxy {
    let upstream: std::net::SocketAddr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    TcpProxy::start(upstream).await
}

fn block(title: &str) -> NewContextBlock {
    NewContextBlock {
        id: None,
        project_id: None,
        title: title.into(),
        content: String::new(),
        tags: vec![],
    }
}

async fn live(lib: &Library) {
    let mut status = lib.status();
    tokio::time::timeout(
        PATIENCE,
        status.wait_for(|s| matches!(s, SyncStatus::Live { .. })),
    )
    .await
    .expect("never live")
    .unwrap();
}

/// Cuts the SDK's connection and waits until the SDK has noticed: a `Reconnecting` status set
/// after the cut (an older one, from a reconnect not yet back to live, does not count). The
/// proxy refuses new connections meanwhile, so the status stays there until a restore.
async fn cut_and_see_it_noticed(proxy: &TcpProxy, lib: &Library) {
    let mut status = lib.status();
    status.borrow_and_update();
    proxy.cut();
    tokio::time::timeout(PATIENCE, async {
        loop {
            status.changed().await.expect("the SDK stopped");
            if matches!(*status.borrow_and_update(), SyncStatus::Reconnecting { .. }) {
                return;
            }
        }
    })
    .await
    .expect("the SDK never noticed the cut connection");
}

async fn server_library(server: &TestServer, token: &str) -> serde_json::Value {
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

fn titles(library: &serde_json::Value) -> Vec<String> {
    library["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn the_sdk_shares_a_library_sees_presence_and_receipts_and_stops_when_removed(db) {
        let server = start(&db, &[]);
        let (alice_token, bob_token) = (server.token("alice"), server.token("bob"));
        let alice = Admin::new(&server.base_url, TokenProvider::fixed(&alice_token));
        let team = alice.create_library("Team").await.unwrap();
        let (member, _) = alice.set_member(team.id, "bob", Role::Editor).await.unwrap();
        assert_eq!(member.role, Role::Editor);
        let bobs = Admin::new(&server.base_url, TokenProvider::fixed(&bob_token)).libraries().await.unwrap();
        assert_eq!(bobs.iter().map(|l| (l.id, l.role)).collect::<Vec<_>>()[1], (team.id, Role::Editor));

        let a = Library::open(&server.base_url, TokenProvider::fixed(&alice_token), Some(team.id)).unwrap();
        let b = Library::open(&server.base_url, TokenProvider::fixed(&bob_token), Some(team.id)).unwrap();
        live(&a).await;
        live(&b).await;
        assert_eq!(*b.role().borrow(), Some(Role::Editor));
        // Bob's write reaches alice; both SDKs send receipts, so alice sees it on 2 of 2.
        let created = b.create_context_block(block("from bob")).await.unwrap();
        let applied = a.update_context_block(created.id, ContextBlockPatch { title: Field::Set("seen by alice".into()), ..Default::default() }, None).await.unwrap();
        let mut presence = a.presence();
        tokio::time::timeout(PATIENCE, presence.wait_for(|p| {
            p.as_ref().is_some_and(|p| p.delivered_to(applied.library_version) == (2, 2))
        }))
        .await
        .expect("never on 2 of 2")
        .unwrap();
        assert_eq!(a.delivered_to(applied.library_version), (2, 2));

        // Demoted, then removed: bob's handle follows and stops.
        alice.set_member(team.id, "bob", Role::Viewer).await.unwrap();
        let mut role = b.role();
        tokio::time::timeout(PATIENCE, role.wait_for(|r| *r == Some(Role::Viewer))).await.unwrap().unwrap();
        match b.create_context_block(block("as a viewer")).await {
            Err(ClientError::Rejected { status, .. }) => assert_eq!(status, 403),
            other => panic!("a viewer's write: {other:?}"),
        }
        alice.remove_member(team.id, "bob").await.unwrap();
        let mut status = b.status();
        tokio::time::timeout(PATIENCE, status.wait_for(|s| matches!(s, SyncStatus::Revoked { .. })))
            .await
            .expect("never revoked")
            .unwrap();
        assert!(matches!(b.create_context_block(block("after")).await, Err(ClientError::AccessRevoked(_))));
        let members = alice.members(team.id).await.unwrap();
        assert_eq!(members.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(), ["alice"]);
    }

    async fn a_mutation_resolves_only_once_this_client_holds_its_snapshot(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let lib = Library::connect(&server.base_url, &token).unwrap();
        live(&lib).await;
        for i in 0..20 {
            let created = lib
                .create_context_block(block(&format!("b{i}")))
                .await
                .unwrap();
            // At the moment the call returns, the snapshot already shows the write.
            let snapshot = lib.snapshot().borrow().clone().unwrap();
            assert!(
                snapshot.context_block(created.id).is_some(),
                "write {i} not visible on return"
            );
            assert!(snapshot.version > i);
            let applied = lib
                .update_context_block(
                    created.id,
                    ContextBlockPatch {
                        title: Field::Set(format!("B{i}")),
                        ..Default::default()
                    },
                    Some(1),
                )
                .await
                .unwrap();
            let snapshot = lib.snapshot().borrow().clone().unwrap();
            assert!(snapshot.version >= applied.library_version);
            assert_eq!(
                snapshot.context_block(created.id).unwrap().title,
                format!("B{i}")
            );
        }
        // A refused mutation resolves with the server's problem, and nothing changes.
        let err = lib.create_context_block(block("")).await.unwrap_err();
        assert!(
            matches!(
                err,
                librarian_client::ClientError::Rejected { status: 422, .. }
            ),
            "{err:?}"
        );
    }

    async fn mutations_pending_across_a_reconnect_are_applied_exactly_once(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let proxy = proxy_to(&server).await;
        let lib = Arc::new(Library::connect(&format!("http://{}", proxy.addr), &token).unwrap());
        for i in 0..5u64 {
            live(&lib).await;
            let pending = {
                let lib = lib.clone();
                tokio::spawn(async move { lib.create_context_block(block(&format!("b{i}"))).await })
            };
            // Cut the connection while the mutation is on its way (before or after the commit):
            // the delay only varies where the cut lands; the status shows the reconnect.
            tokio::time::sleep(Duration::from_millis(i * 3)).await;
            cut_and_see_it_noticed(&proxy, &lib).await;
            proxy.restore().await;
            let created = tokio::time::timeout(PATIENCE, pending)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(
                lib.snapshot()
                    .borrow()
                    .as_ref()
                    .unwrap()
                    .context_block(created.id)
                    .is_some()
            );
        }
        let mut titles = titles(&server_library(&server, &token).await);
        titles.sort();
        assert_eq!(
            titles,
            ["b0", "b1", "b2", "b3", "b4"],
            "each mutation applied exactly once"
        );
    }

    async fn a_temporary_block_stays_local_through_snapshots_until_saved(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let lib = Library::connect(&server.base_url, &token).unwrap();
        let other = Library::connect(&server.base_url, &token).unwrap();
        live(&lib).await;
        live(&other).await;
        let temp = lib.add_temporary_block(TempBlock {
            title: "draft".into(),
            content: "not yet".into(),
            ..Default::default()
        });
        // Another tab of the same user writes; snapshots arrive.
        for i in 0..5 {
            other
                .create_context_block(block(&format!("real {i}")))
                .await
                .unwrap();
        }
        let mut snapshots = lib.snapshot();
        tokio::time::timeout(
            PATIENCE,
            snapshots.wait_for(|s| s.as_ref().is_some_and(|s| s.version == 5)),
        )
        .await
        .unwrap()
        .unwrap();
        let view = lib.view();
        assert_eq!(view.version, Some(5));
        assert_eq!(view.context_blocks.len(), 6);
        let temps: Vec<&ViewBlock> = view
            .context_blocks
            .iter()
            .filter(|b| b.is_temporary())
            .collect();
        assert_eq!(temps.len(), 1);
        assert_eq!(temps[0].title(), "draft");
        // Never sent: the server and the other tab know nothing of it.
        assert_eq!(
            server_library(&server, &token).await["context_blocks"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert!(
            other
                .view()
                .context_blocks
                .iter()
                .all(|b| !b.is_temporary())
        );

        let saved = lib.save_temporary_block(temp).await.unwrap();
        let view = lib.view();
        assert!(view.context_blocks.iter().all(|b| !b.is_temporary()));
        assert!(
            view.context_blocks
                .iter()
                .any(|b| matches!(b, ViewBlock::Saved(s) if s.id == saved.id && s.title == "draft"))
        );
        assert_eq!(
            server_library(&server, &token).await["context_blocks"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
    }

    /// Past the server's in-flight limit (4 here), every mutation still commits exactly once and
    /// resolves: the SDK paces sends, and resends after each cut go paced with their original ids.
    async fn a_hundred_pending_mutations_across_a_cut_connection_each_apply_once(db) {
        let server = start(&db, &[("LIBRARIAN__WS__MAX_INFLIGHT_MUTATIONS", "4")]);
        let token = server.token("alice");
        let proxy = proxy_to(&server).await;
        let lib = Arc::new(Library::connect(&format!("http://{}", proxy.addr), &token).unwrap());
        live(&lib).await;
        let (resolved_tx, mut resolved) = tokio::sync::mpsc::unbounded_channel();
        let writes: Vec<_> = (0..100)
            .map(|i| {
                let (lib, resolved_tx) = (lib.clone(), resolved_tx.clone());
                tokio::spawn(async move {
                    let result = lib.create_context_block(block(&format!("b{i:03}"))).await;
                    let _ = resolved_tx.send(());
                    result
                })
            })
            .collect();
        // Cut twice while most writes are still pending: after a few resolved, and half-way.
        let mut count = 0;
        for cut_after in [5, 50] {
            while count < cut_after {
                tokio::time::timeout(PATIENCE, resolved.recv())
                    .await
                    .expect("writes stalled")
                    .unwrap();
                count += 1;
            }
            cut_and_see_it_noticed(&proxy, &lib).await;
            proxy.restore().await;
        }
        for (i, write) in writes.into_iter().enumerate() {
            let created = tokio::time::timeout(PATIENCE, write)
                .await
                .expect("a write never resolved")
                .unwrap()
                .unwrap_or_else(|e| panic!("write {i} reported as failed: {e:?}"));
            assert_eq!(created.title, format!("b{i:03}"));
        }
        let titles = titles(&server_library(&server, &token).await);
        assert_eq!(titles.len(), 100, "each write applied exactly once");
        assert_eq!(titles.iter().collect::<BTreeSet<_>>().len(), 100);
        // Read-your-writes held for every one of them: the SDK's snapshot shows all 100.
        assert_eq!(lib.view().context_blocks.len(), 100);
    }

    /// A client that resumes from a version the server's library never reached (the database was
    /// restored from a backup) gets the library as it is, marked `reset` (G9's one exception).
    async fn resuming_past_the_servers_version_gets_a_snapshot_marked_reset(db) {
        let server = start(&db, &[]);
        let token = server.token("alice");
        let lib = Library::connect(&server.base_url, &token).unwrap();
        live(&lib).await;
        lib.create_context_block(block("kept")).await.unwrap();
        let v = lib.snapshot().borrow().as_ref().unwrap().version;
        let query = format!("?since_version={}", v + 1000);
        let mut ws = connect_with(&server, &query, Some(&token)).await.unwrap();
        let (snapshot, _) = until(&mut ws, "snapshot").await;
        assert_eq!(snapshot["reset"], true, "{snapshot}");
        assert_eq!(snapshot["version"], v);
        assert_eq!(snapshot["context_blocks"][0]["title"], "kept");
        // A plain resume is never marked.
        let query = format!("?since_version={}", v - 1);
        let mut ws = connect_with(&server, &query, Some(&token)).await.unwrap();
        let (snapshot, _) = until(&mut ws, "snapshot").await;
        assert_eq!(snapshot.get("reset"), None, "{snapshot}");
    }

    /// The SDK holds v3 when the database goes back to v1 (a restore, done here by rewriting the
    /// rows behind the stopped server): it follows the reset snapshot instead of keeping rows that
    /// no longer exist, and its next write resolves with that write visible.
    async fn the_sdk_follows_a_database_restored_from_a_backup(db) {
        let mut server = start(&db, &[]);
        let token = server.token("alice");
        let lib = Library::connect(&server.base_url, &token).unwrap();
        live(&lib).await;
        for title in ["before", "lost 1", "lost 2"] {
            lib.create_context_block(block(title)).await.unwrap();
        }
        assert_eq!(lib.snapshot().borrow().as_ref().unwrap().version, 3);
        server.kill();
        db.execute(
            "DELETE FROM context_blocks WHERE title <> 'before'; UPDATE libraries SET version = 1",
        )
        .await;
        server.restart();
        let mut snapshots = lib.snapshot();
        tokio::time::timeout(
            PATIENCE,
            snapshots.wait_for(|s| s.as_ref().is_some_and(|s| s.version == 1)),
        )
        .await
        .expect("the SDK kept its newer snapshot of a library that went back")
        .unwrap();
        let after = lib.create_context_block(block("after")).await.unwrap();
        let snapshot = lib.snapshot().borrow().clone().unwrap();
        assert_eq!(snapshot.version, 2);
        assert!(snapshot.context_block(after.id).is_some());
        let mut shown: Vec<String> = lib
            .view()
            .context_blocks
            .iter()
            .map(|b| b.title().to_owned())
            .collect();
        shown.sort();
        assert_eq!(shown, ["after", "before"]);
    }
}

/// A mutation larger than the `max_frame_bytes` the server's `hello` announced is refused by
/// the SDK itself (413): sent, it would close the session, and its resend every next one.
#[tokio::test]
async fn a_mutation_over_the_announced_frame_limit_is_refused_without_closing_the_session() {
    let server = TestServer::start(&[("LIBRARIAN__LIMITS__BODY_MAX_BYTES", "8192")]);
    let token = server.token("alice");
    let lib = Library::connect(&server.base_url, &token).unwrap();
    live(&lib).await;
    let big = NewContextBlock {
        content: "x".repeat(10_000),
        ..block("big")
    };
    // Without the check it would never resolve: each resend closes the next session.
    let err = tokio::time::timeout(PATIENCE, lib.create_context_block(big))
        .await
        .expect("the oversized mutation was never answered")
        .unwrap_err();
    assert!(
        matches!(err, librarian_client::ClientError::Rejected { status: 413, ref detail, .. } if detail.contains("8192")),
        "{err:?}"
    );
    let fits = NewContextBlock {
        content: "x".repeat(4_000),
        ..block("fits")
    };
    lib.create_context_block(fits).await.unwrap();
    assert_eq!(titles(&server_library(&server, &token).await), ["fits"]);
    assert!(matches!(*lib.status().borrow(), SyncStatus::Live { .. }));
}

/// Short-lived tokens from a [`TokenProvider`](librarian_client::TokenProvider) against the
/// server in jwt mode: refreshes on the open socket, a provider that fails, another user's
/// token, a refused connection. The waits are hang guards; the server's log tells which
/// sessions there were.
mod tokens {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use librarian_client::TokenProvider;
    use std::sync::Mutex;
    use tokio::sync::watch;

    const SECRET: &str = "a-test-hs256-secret-of-at-least-32-bytes";
    /// Short enough for a test to outlive a few (the SDK refreshes 1 s before `exp`).
    const LIFETIME_S: u64 = 3;

    fn jwt_server(leeway_s: &str) -> TestServer {
        TestServer::start(&[
            ("LIBRARIAN__AUTH__MODE", "jwt"),
            ("LIBRARIAN__AUTH__JWT_SECRET", SECRET),
            ("LIBRARIAN__AUTH__LEEWAY_S", leeway_s),
        ])
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn sign(user: &str, exp: u64) -> String {
        let claims = serde_json::json!({"sub": user, "exp": exp});
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// What the provider answers on a call.
    #[derive(Clone, Copy, Debug)]
    enum Answer {
        /// A fresh token of this user, valid for [`LIFETIME_S`].
        Token(&'static str),
        /// A token of this user that expired already.
        Expired(&'static str),
        /// An error (the user signed out).
        Fail,
    }

    /// A provider that answers from a script (its last answer repeated), counting its calls.
    #[derive(Clone)]
    struct Signer {
        script: Arc<Mutex<Vec<Answer>>>,
        calls: Arc<watch::Sender<usize>>,
    }

    impl Signer {
        fn new(script: &[Answer]) -> Signer {
            Signer {
                script: Arc::new(Mutex::new(script.to_vec())),
                calls: Arc::new(watch::Sender::new(0)),
            }
        }

        /// Answers from now on.
        fn set(&self, script: &[Answer]) {
            *self.script.lock().unwrap() = script.to_vec();
        }

        fn calls(&self) -> usize {
            *self.calls.borrow()
        }

        fn provider(&self) -> TokenProvider {
            let signer = self.clone();
            TokenProvider::new(move || {
                let signer = signer.clone();
                async move {
                    let answer = {
                        let mut script = signer.script.lock().unwrap();
                        if script.len() > 1 {
                            script.remove(0)
                        } else {
                            script[0]
                        }
                    };
                    signer.calls.send_modify(|n| *n += 1);
                    match answer {
                        Answer::Token(user) => Ok(sign(user, now() + LIFETIME_S)),
                        Answer::Expired(user) => Ok(sign(user, now() - 10)),
                        Answer::Fail => Err("signed out".into()),
                    }
                }
            })
        }
    }

    async fn unauthorized(lib: &Library) -> String {
        let mut status = lib.status();
        let status = tokio::time::timeout(
            PATIENCE,
            status.wait_for(|s| matches!(s, SyncStatus::Unauthorized { .. })),
        )
        .await
        .expect("never unauthorized")
        .unwrap()
        .clone();
        match status {
            SyncStatus::Unauthorized { message } => message,
            _ => unreachable!(),
        }
    }

    /// The server's log lines so far that contain all of `needles`, once every line logged
    /// before this call is in (a request is made and its line awaited: one ordered stream).
    async fn logged(server: &TestServer, needles: &[&str]) -> Vec<String> {
        let is_marker = |l: &str| l.contains("\"route\":\"/healthz\"");
        let before = server.logs().iter().filter(|l| is_marker(l)).count();
        reqwest::get(server.url("/healthz")).await.unwrap();
        server
            .wait_for_logs(before + 1, "the marker request", is_marker)
            .await;
        server
            .logs()
            .into_iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect()
    }

    #[tokio::test]
    async fn refreshes_on_the_open_socket_keep_one_session_open_past_its_first_tokens_expiry() {
        let server = jwt_server("0");
        let signer = Signer::new(&[Answer::Token("alice")]);
        let first_exp = now() + LIFETIME_S;
        let lib = Library::connect_with(&server.base_url, signer.provider()).unwrap();
        live(&lib).await;
        // Two lifetimes: the first token, and one more, have expired (leeway 0) meanwhile.
        let past = first_exp + LIFETIME_S + 1;
        tokio::time::sleep(Duration::from_secs(past.saturating_sub(now()))).await;
        assert!(matches!(*lib.status().borrow(), SyncStatus::Live { .. }));
        let created = tokio::time::timeout(PATIENCE, lib.create_context_block(block("later")))
            .await
            .expect("the write after two lifetimes never resolved")
            .unwrap();
        assert_eq!(created.title, "later");
        // All on the first session: never closed (4401 at an expiry), never opened again.
        assert_eq!(logged(&server, &["\"session opened\""]).await.len(), 1);
        assert_eq!(
            logged(&server, &["\"session closed\""]).await,
            [] as [String; 0]
        );
        // Each refresh asked the provider: no token of it outlives 3 s, the session lived 7.
        assert!(signer.calls() >= 3, "{} calls", signer.calls());
    }

    #[tokio::test]
    async fn a_provider_failing_at_a_reconnect_stops_the_sdk_as_unauthorized_until_reconnect() {
        let server = jwt_server("0");
        let signer = Signer::new(&[Answer::Token("alice")]);
        let lib = Arc::new(Library::connect_with(&server.base_url, signer.provider()).unwrap());
        live(&lib).await;
        // Signed out: the refreshes fail (retried while the session lives), the token expires
        // (4401), and the reconnect's call fails too.
        signer.set(&[Answer::Fail]);
        let message = unauthorized(&lib).await;
        assert!(message.contains("signed out"), "{message}");
        let closed = logged(&server, &["\"session closed\"", "\"close_code\":4401"]).await;
        assert_eq!(closed.len(), 1, "{closed:?}");
        // No more attempts: a mutation issued now waits, neither sent nor failed.
        let calls = signer.calls();
        let pending = {
            let lib = lib.clone();
            tokio::spawn(async move { lib.create_context_block(block("queued")).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(signer.calls(), calls, "the SDK kept asking for tokens");
        assert!(matches!(
            *lib.status().borrow(),
            SyncStatus::Unauthorized { .. }
        ));
        assert!(!pending.is_finished());
        // Signed in again: the app asks to reconnect, and the queued write goes.
        signer.set(&[Answer::Token("alice")]);
        lib.reconnect();
        let created = tokio::time::timeout(PATIENCE, pending)
            .await
            .expect("the queued write never resolved")
            .unwrap()
            .unwrap();
        assert_eq!(created.title, "queued");
        let token = sign("alice", now() + 60);
        assert_eq!(titles(&server_library(&server, &token).await), ["queued"]);
    }

    #[tokio::test]
    async fn a_refresh_with_another_users_token_gets_the_session_closed_with_4401() {
        // A leeway far beyond this test: a 4401 here is the refused refresh, not the expiry.
        let server = jwt_server("600");
        let signer = Signer::new(&[Answer::Token("alice")]);
        let lib = Library::connect_with(&server.base_url, signer.provider()).unwrap();
        live(&lib).await;
        signer.set(&[Answer::Token("bob")]);
        server
            .wait_for_log("alice's session closed with 4401", |l| {
                l.contains("\"session closed\"")
                    && l.contains("\"user_id\":\"alice\"")
                    && l.contains("\"close_code\":4401")
            })
            .await;
        // The reconnect asks again and gets bob's token: this handle holds alice's library
        // and her queued writes, so it stops rather than mix them with bob's.
        let message = unauthorized(&lib).await;
        assert!(message.contains("\"bob\""), "{message}");
        // Alice again: the same handle carries on with her library.
        signer.set(&[Answer::Token("alice")]);
        lib.reconnect();
        live(&lib).await;
        lib.create_context_block(block("alice's")).await.unwrap();
        let bob = sign("bob", now() + 60);
        assert_eq!(
            titles(&server_library(&server, &bob).await),
            [] as [String; 0]
        );
    }

    #[tokio::test]
    async fn a_connection_refused_with_401_is_retried_with_a_new_token_from_the_provider() {
        let server = jwt_server("0");
        let signer = Signer::new(&[Answer::Expired("alice"), Answer::Token("alice")]);
        let lib = Library::connect_with(&server.base_url, signer.provider()).unwrap();
        live(&lib).await;
        // Live at all means a second call: the first token was refused.
        assert!(signer.calls() >= 2);
        assert_eq!(logged(&server, &["\"session opened\""]).await.len(), 1);
        lib.create_context_block(block("in")).await.unwrap();
    }
}
