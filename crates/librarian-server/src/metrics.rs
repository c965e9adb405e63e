//! `GET /metrics`: the sync core's counters in Prometheus text format. (A first cut for the
//! benchmark; the full set of metrics comes with the operability work.)

use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let s = state.sync.stats.read();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "librarian_reloads_started_total",
        "Library reloads started.",
        s.reloads_started,
    );
    counter(
        "librarian_reloads_failed_total",
        "Library reloads that failed.",
        s.reloads_failed,
    );
    counter(
        "librarian_events_coalesced_total",
        "Change events that needed no reload of their own.",
        s.events_coalesced,
    );
    counter(
        "librarian_snapshots_published_total",
        "New snapshot versions published to sessions.",
        s.snapshots_published,
    );
    counter(
        "librarian_snapshot_bytes_total",
        "Bytes of snapshot frames serialized (once per version).",
        s.snapshot_bytes,
    );
    counter(
        "librarian_reconcile_catches_total",
        "Newer versions found by reconciliation.",
        s.reconcile_catches,
    );
    counter(
        "librarian_listener_connects_total",
        "Times the cross-instance listener (re)connected.",
        s.listener_connects,
    );
    let open = state.sessions_open.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP librarian_sessions_open WebSocket sessions open.\n# TYPE librarian_sessions_open gauge\nlibrarian_sessions_open {open}"
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(out)
}
