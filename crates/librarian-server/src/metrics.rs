//! Prometheus metrics (the `prometheus` crate): HTTP requests, mutations, commits, sessions,
//! frames, freshness, and the sync core's counters. Only the instruments: serving them
//! (`GET /metrics`) and timing requests are HTTP concerns, in `api/meta.rs`, so that this
//! module sits below the state that holds it.

use librarian_actors::SyncStats;
use librarian_core::metrics_buckets::latency_buckets;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    pub mutations: IntCounterVec,
    pub commit_seconds: Histogram,
    pub sessions_open: IntGauge,
    pub frames_sent: IntCounterVec,
    /// `frames_sent` per frame type, resolved once (sending a frame is a per-session hot path).
    frames_by_type: Vec<(&'static str, IntCounter)>,
    pub versions_skipped: IntCounter,
    pub commit_to_frame_seconds: Histogram,
    pub receipt_seconds: Histogram,
    /// Bytes the patch history holds (set when scraped).
    pub patch_history_bytes: IntGauge,
}

impl Metrics {
    pub fn new(sync: &SyncStats) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let mut m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new("librarian_http_requests_total", "HTTP requests by route, method and status."),
                &["route", "method", "status"],
            )?,
            http_seconds: HistogramVec::new(
                HistogramOpts::new("librarian_http_request_seconds", "HTTP request latency.")
                    .buckets(latency_buckets()),
                &["route", "method"],
            )?,
            mutations: IntCounterVec::new(
                Opts::new(
                    "librarian_mutations_total",
                    "Mutations by kind, op and outcome (committed, replayed, or the problem code).",
                ),
                &["kind", "op", "outcome"],
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "librarian_commit_seconds",
                    "Time from handing a mutation to the write path to its commit.",
                )
                .buckets(latency_buckets()),
            )?,
            sessions_open: IntGauge::new("librarian_sessions_open", "WebSocket sessions open.")?,
            frames_sent: IntCounterVec::new(
                Opts::new("librarian_ws_frames_sent_total", "WebSocket frames sent, by type."),
                &["type"],
            )?,
            versions_skipped: IntCounter::new(
                "librarian_ws_versions_skipped_total",
                "Versions a session never got because a newer one replaced them (latest wins).",
            )?,
            commit_to_frame_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "librarian_ws_commit_to_frame_seconds",
                    "Per session: from hearing of a commit to handing the snapshot with it to the socket.",
                )
                .buckets(latency_buckets()),
            )?,
            receipt_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "librarian_receipt_latency_seconds",
                    "Per session: from hearing of a commit to the client's `seen` of a version \
                     including it (the end-to-end delivery time, DESIGN §9).",
                )
                .buckets(latency_buckets()),
            )?,
            patch_history_bytes: IntGauge::new(
                "librarian_patch_history_bytes",
                "Bytes of recent history kept for patch frames (at most sync.patch_history_bytes).",
            )?,
            frames_by_type: Vec::new(),
            registry,
        };
        m.frames_by_type = [
            "hello", "snapshot", "patch", "status", "reply", "error", "presence", "access",
        ]
        .into_iter()
        .map(|kind| (kind, m.frames_sent.with_label_values(&[kind])))
        .collect();
        m.registry.register(Box::new(m.http_requests.clone()))?;
        m.registry.register(Box::new(m.http_seconds.clone()))?;
        m.registry.register(Box::new(m.mutations.clone()))?;
        m.registry.register(Box::new(m.commit_seconds.clone()))?;
        m.registry.register(Box::new(m.sessions_open.clone()))?;
        m.registry.register(Box::new(m.frames_sent.clone()))?;
        m.registry.register(Box::new(m.versions_skipped.clone()))?;
        m.registry
            .register(Box::new(m.commit_to_frame_seconds.clone()))?;
        m.registry.register(Box::new(m.receipt_seconds.clone()))?;
        m.registry
            .register(Box::new(m.patch_history_bytes.clone()))?;
        sync.register(&m.registry)?;
        Ok(m)
    }

    /// The registry, for instruments owned elsewhere (the authenticator's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one frame of `kind` sent.
    pub fn frame_sent(&self, kind: &'static str) {
        match self.frames_by_type.iter().find(|(k, _)| *k == kind) {
            Some((_, counter)) => counter.inc(),
            None => self.frames_sent.with_label_values(&[kind]).inc(),
        }
    }

    /// Everything registered, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_buckets_are_the_ones_the_histograms_always_had() {
        assert_eq!(
            latency_buckets(),
            prometheus::exponential_buckets(0.0002, 2.0, 14).unwrap()
        );
    }
}
