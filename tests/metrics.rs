//! `/metrics` after a scripted workload: each family is there, with values that match the work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect, send, until};
use librarian_testkit::{TestDb, both_backends};
use serde_json::json;

both_backends! {
    async fn metrics_match_the_work_done(db) {
        metrics_match_the_work_done_on(&db).await;
    }
}

async fn metrics_match_the_work_done_on(db: &TestDb) {
    let server = TestServer::start(&[("LIBRARIAN__DATABASE__URL", db.url())]);
    let token = server.token("alice");
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(server.url("/api/v1/context-blocks"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let mut ws = connect(&server, &token).await;
    until(&mut ws, "snapshot").await;
    for i in 0..3 {
        assert_eq!(
            post(json!({"title": format!("b{i}")}))
                .await
                .unwrap()
                .status(),
            201
        );
    }
    assert_eq!(post(json!({"title": ""})).await.unwrap().status(), 422);
    for i in 0..2 {
        send(&mut ws, json!({"type": "mutate", "mutation_id": format!("m{i}"), "op": "project.create", "data": {"name": "p"}})).await;
        until(&mut ws, "ack").await;
    }
    loop {
        let (snapshot, _) = until(&mut ws, "snapshot").await;
        if snapshot["version"] == 5 {
            break;
        }
    }

    let metrics = server.metrics().await;
    let text = &metrics.text;
    let get = |name: &str, labels: &[(&str, &str)]| metrics.get(name, labels);
    let mutations = "librarian_mutations_total";
    assert_eq!(
        get(
            mutations,
            &[("op", "context_block.create"), ("outcome", "committed")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        get(
            mutations,
            &[("op", "context_block.create"), ("outcome", "validation")]
        ),
        1.0
    );
    assert_eq!(
        get(
            mutations,
            &[
                ("kind", "project"),
                ("op", "project.create"),
                ("outcome", "committed")
            ]
        ),
        2.0
    );
    assert_eq!(get("librarian_commit_seconds_count", &[]), 5.0);
    let requests = "librarian_http_requests_total";
    assert_eq!(
        get(
            requests,
            &[
                ("route", "/api/v1/context-blocks"),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        3.0
    );
    assert_eq!(
        get(
            requests,
            &[
                ("route", "/api/v1/context-blocks"),
                ("method", "POST"),
                ("status", "422")
            ]
        ),
        1.0
    );
    assert_eq!(
        get(requests, &[("route", "/api/v1/ws"), ("status", "101")]),
        1.0
    );
    assert_eq!(get("librarian_sessions_open", &[]), 1.0);
    assert_eq!(
        get("librarian_ws_frames_sent_total", &[("type", "reply")]),
        2.0
    );
    assert_eq!(
        get("librarian_ws_frames_sent_total", &[("type", "hello")]),
        1.0
    );
    let snapshots_sent = get("librarian_ws_frames_sent_total", &[("type", "snapshot")]);
    assert!(snapshots_sent >= 2.0);
    let published = get("librarian_snapshots_published_total", &[]);
    let reloads = get("librarian_reloads_started_total", &[]);
    assert!(
        published >= 2.0 && reloads >= published,
        "published {published}, reloads {reloads}"
    );
    // One session: every published version was either sent to it or skipped by it.
    let skipped = get("librarian_ws_versions_skipped_total", &[]);
    assert_eq!(
        snapshots_sent + skipped,
        6.0,
        "versions 0..=5: sent {snapshots_sent}, skipped {skipped}"
    );
    assert!(get("librarian_ws_commit_to_frame_seconds_count", &[]) >= 1.0);
    assert!(get("librarian_reload_seconds_count", &[]) >= 1.0);
    for family in [
        "librarian_events_coalesced_total",
        "librarian_reconcile_catches_total",
        "librarian_listener_connects_total",
        "librarian_reloads_failed_total",
        "librarian_snapshot_bytes_total",
    ] {
        assert!(text.contains(family), "{family} missing");
    }
}
