//! `/metrics` after a scripted workload: each family is there, with values that match the work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::server::TestServer;
use librarian_testkit::ws::{connect, send, until};
use serde_json::json;
use std::collections::BTreeMap;

/// `name{k="v",…} value` lines, labels sorted.
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (name, labels) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some((name.to_owned(), labels, value.parse().ok()?))
        })
        .collect()
}

fn get(
    metrics: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    metrics
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_work_done() {
    let server = TestServer::start(&[]);
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

    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse(&text);
    let mutations = "librarian_mutations_total";
    assert_eq!(
        get(
            &m,
            mutations,
            &[("op", "context_block.create"), ("outcome", "committed")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        get(
            &m,
            mutations,
            &[("op", "context_block.create"), ("outcome", "validation")]
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            mutations,
            &[
                ("kind", "project"),
                ("op", "project.create"),
                ("outcome", "committed")
            ]
        ),
        2.0
    );
    assert_eq!(get(&m, "librarian_commit_seconds_count", &[]), 5.0);
    let requests = "librarian_http_requests_total";
    assert_eq!(
        get(
            &m,
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
            &m,
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
        get(&m, requests, &[("route", "/api/v1/ws"), ("status", "101")]),
        1.0
    );
    assert_eq!(get(&m, "librarian_sessions_open", &[]), 1.0);
    assert_eq!(
        get(&m, "librarian_ws_frames_sent_total", &[("type", "reply")]),
        2.0
    );
    assert_eq!(
        get(&m, "librarian_ws_frames_sent_total", &[("type", "hello")]),
        1.0
    );
    let snapshots_sent = get(
        &m,
        "librarian_ws_frames_sent_total",
        &[("type", "snapshot")],
    );
    assert!(snapshots_sent >= 2.0);
    let published = get(&m, "librarian_snapshots_published_total", &[]);
    let reloads = get(&m, "librarian_reloads_started_total", &[]);
    assert!(
        published >= 2.0 && reloads >= published,
        "published {published}, reloads {reloads}"
    );
    // One session: every published version was either sent to it or skipped by it.
    let skipped = get(&m, "librarian_ws_versions_skipped_total", &[]);
    assert_eq!(
        snapshots_sent + skipped,
        6.0,
        "versions 0..=5: sent {snapshots_sent}, skipped {skipped}"
    );
    assert!(get(&m, "librarian_ws_commit_to_frame_seconds_count", &[]) >= 1.0);
    assert!(get(&m, "librarian_reload_seconds_count", &[]) >= 1.0);
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
