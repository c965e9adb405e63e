//! The Rust SDK against the real server, on SQLite and PostgreSQL: read-your-writes,
//! reconnect with pending mutations (each applied once, paced under the server's in-flight
//! limit), temporary blocks, and a database that went back (restored from a backup).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_client::{Library, SyncStatus, TempBlock, ViewBlock};
use librarian_core::{ContextBlockPatch, Field, NewContextBlock};
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
