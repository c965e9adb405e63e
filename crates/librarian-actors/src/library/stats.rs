//! Counters of the sync core: read by tests, exported as Prometheus metrics by the server.

use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

/// Counters of the sync core, readable at any time (tests) and exported as Prometheus metrics.
#[derive(Debug, Clone)]
pub struct SyncStats {
    pub reloads_started: IntCounter,
    pub reloads_failed: IntCounter,
    /// `Mutated` events that needed no reload of their own (absorbed by one in flight).
    pub events_coalesced: IntCounter,
    pub snapshots_published: IntCounter,
    pub snapshot_bytes: IntCounter,
    /// Newer versions found by reconciliation (a notification had been lost).
    pub reconcile_catches: IntCounter,
    /// Times the cross-instance listener (re)connected.
    pub listener_connects: IntCounter,
    /// How long reloads take (read transaction + serialization).
    pub reload_seconds: Histogram,
}

impl Default for SyncStats {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric())
        };
        SyncStats {
            reloads_started: counter(
                "librarian_reloads_started_total",
                "Library reloads started.",
            ),
            reloads_failed: counter(
                "librarian_reloads_failed_total",
                "Library reloads that failed.",
            ),
            events_coalesced: counter(
                "librarian_events_coalesced_total",
                "Change events that needed no reload of their own.",
            ),
            snapshots_published: counter(
                "librarian_snapshots_published_total",
                "New snapshot versions published to sessions.",
            ),
            snapshot_bytes: counter(
                "librarian_snapshot_bytes_total",
                "Bytes of snapshot frames serialized (once per version).",
            ),
            reconcile_catches: counter(
                "librarian_reconcile_catches_total",
                "Newer versions found by reconciliation.",
            ),
            listener_connects: counter(
                "librarian_listener_connects_total",
                "Times the cross-instance listener (re)connected.",
            ),
            reload_seconds: Histogram::with_opts(
                HistogramOpts::new("librarian_reload_seconds", "Duration of library reloads.")
                    .buckets(librarian_core::metrics_buckets::latency_buckets()),
            )
            .unwrap_or_else(|_| unreachable_metric()),
        }
    }
}

/// Metric names and help texts above are constants that cannot be invalid.
fn unreachable_metric<T>() -> T {
    unreachable!("a constant metric definition was refused")
}

/// A plain copy of [`SyncStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStatsSnapshot {
    pub reloads_started: u64,
    pub reloads_failed: u64,
    pub events_coalesced: u64,
    pub snapshots_published: u64,
    pub snapshot_bytes: u64,
    pub reconcile_catches: u64,
    pub listener_connects: u64,
}

impl SyncStats {
    pub fn read(&self) -> SyncStatsSnapshot {
        SyncStatsSnapshot {
            reloads_started: self.reloads_started.get(),
            reloads_failed: self.reloads_failed.get(),
            events_coalesced: self.events_coalesced.get(),
            snapshots_published: self.snapshots_published.get(),
            snapshot_bytes: self.snapshot_bytes.get(),
            reconcile_catches: self.reconcile_catches.get(),
            listener_connects: self.listener_connects.get(),
        }
    }

    /// Adds every metric to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        for c in [
            &self.reloads_started,
            &self.reloads_failed,
            &self.events_coalesced,
            &self.snapshots_published,
            &self.snapshot_bytes,
            &self.reconcile_catches,
            &self.listener_connects,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(self.reload_seconds.clone()))
    }
}
