//! The Rust SDK against the real server: read-your-writes, reconnect with a pending mutation
//! (applied once), temporary blocks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_client::{Library, SyncStatus, TempBlock, ViewBlock};
use librarian_core::{ContextBlockPatch, Field, NewContextBlock};
use librarian_testkit::proxy::TcpProxy;
use librarian_testkit::server::TestServer;
use std::time::Duration;

/// Hang guard only.
const PATIENCE: Duration = Duration::from_secs(60);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_resolves_only_once_this_client_holds_its_snapshot() {
    let server = TestServer::start(&[]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_pending_across_a_reconnect_are_applied_exactly_once() {
    let server = TestServer::start(&[]);
    let token = server.token("alice");
    let upstream: std::net::SocketAddr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = TcpProxy::start(upstream).await;
    let lib =
        std::sync::Arc::new(Library::connect(&format!("http://{}", proxy.addr), &token).unwrap());
    live(&lib).await;
    let mut saw_reconnecting = false;
    for i in 0..5u64 {
        let pending = {
            let lib = lib.clone();
            tokio::spawn(async move { lib.create_context_block(block(&format!("b{i}"))).await })
        };
        // Cut the connection while the mutation is on its way (before or after the commit).
        tokio::time::sleep(Duration::from_millis(i * 3)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(150)).await;
        saw_reconnecting |= matches!(*lib.status().borrow(), SyncStatus::Reconnecting { .. });
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
    assert!(
        saw_reconnecting,
        "the status should have shown the reconnect"
    );
    let library = server_library(&server, &token).await;
    let mut titles: Vec<&str> = library["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        ["b0", "b1", "b2", "b3", "b4"],
        "each mutation applied exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_block_stays_local_through_snapshots_until_saved() {
    let server = TestServer::start(&[]);
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
