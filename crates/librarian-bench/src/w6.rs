//! W6: large libraries with and without patch frames (`?patches=1`): bytes per session per
//! edit, visible latency and server CPU per edit at 300, 3 000 and 10 000 items; a resume
//! after missed versions. Librarian only (the floor has no patches).

use crate::session::{Counters, Held, Options, Session, Verify, all_reach};
use crate::stats::{Latencies, Summary, proc_sample};
use crate::target::Target;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

const MISS_AFTER: Duration = Duration::from_secs(30);

/// How W6's sessions take the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No `?patches=1`: a full snapshot per version, of which the session reads the version
    /// only (as in W1: no parsing on the client).
    Snapshots,
    /// `?patches=1`, each patch applied to the held library and its digest checked before
    /// the version counts as held (what the SDKs do).
    PatchesVerified,
    /// `?patches=1`, each patch applied; the version counts as held once applied, and each
    /// session checks the digest of what it holds once, after the last edit: a patch applied
    /// wrongly on the way leaves its row wrong, so that one check covers them all. Checking
    /// after every edit instead (10 × re-serializing 3.7 MB at 10 000 items, on the server's
    /// 2 cores) left the server idle and its caches cold for the next edit: +1.4 ms on the
    /// 10 000-item p50 (BENCHMARKS.md, W6), a cost of the bench sharing the machine, not of
    /// the server.
    PatchesApplied,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Snapshots => "snapshots (version read only)",
            Mode::PatchesVerified => "patches, applied + digest checked",
            Mode::PatchesApplied => "patches, applied (digest checked at the end)",
        }
    }

    fn query(self) -> &'static str {
        match self {
            Mode::Snapshots => "",
            _ => "&patches=1",
        }
    }

    fn options(self) -> Options {
        Options {
            receipts: true,
            hold: match self {
                Mode::Snapshots => None,
                Mode::PatchesVerified => Some(Verify::Inline),
                Mode::PatchesApplied => Some(Verify::Deferred),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct W6 {
    pub items: usize,
    pub sessions: usize,
    pub mode: Mode,
    pub edits: usize,
    /// The library's full snapshot frame, bytes.
    pub snapshot_bytes: u64,
    /// One updated row as JSON, bytes (the block with its ~500-byte content).
    pub row_bytes: u64,
    /// Send → the last session holds the version.
    pub latency: Summary,
    /// Text frames of every type (snapshot/patch, status, presence), per session per edit.
    pub bytes_per_session_per_edit: f64,
    /// `snapshot` and `patch` frames only, per session per edit.
    pub library_bytes_per_session_per_edit: f64,
    /// The largest `snapshot`/`patch` frame a session got during the edits.
    pub max_library_frame: u64,
    /// The largest `patch` frame minus the rows it carries (0 without patches).
    pub max_patch_overhead: u64,
    /// Snapshot and patch frames per session per edit.
    pub snapshots_per_session: f64,
    pub patches_per_session: f64,
    /// Server process CPU (user + system) per edit.
    pub server_cpu_ms_per_edit: f64,
    /// The bench's own CPU per edit (10 clients, the writer, the measuring).
    pub bench_cpu_ms_per_edit: f64,
    /// Per session per patch: parsing and applying it (holding modes).
    pub apply_ms: f64,
    /// Per digest check: re-serializing the held library and hashing it.
    pub verify_ms: f64,
    pub verifies: u64,
    /// Digest mismatches and patches that could not be applied (must be 0).
    pub mismatches: u64,
    pub failures: u64,
    /// The server's resident memory after this row.
    pub server_rss_kib: u64,
    /// Mean library reload during the edits (`librarian_reload_seconds`: the database read,
    /// then serializing, hashing and diffing the whole library), ms.
    pub reload_ms: Option<f64>,
    /// Mean per session: from the server hearing of a commit to handing the frame to the
    /// socket (`librarian_ws_commit_to_frame_seconds`), ms.
    pub commit_to_frame_ms: Option<f64>,
    /// What the server's per-load build costs at this size, timed in the bench's process with
    /// the same library code (median of 5): serializing the canonical snapshot, hashing it,
    /// diffing two versions.
    pub build: Option<BuildCost>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BuildCost {
    pub serialize_ms: f64,
    pub hash_ms: f64,
    pub diff_ms: f64,
    /// Parsing the canonical snapshot back (what a client taking a full snapshot does).
    pub parse_ms: f64,
}

/// Times the parts of the server's per-load build on `library` (see [`W6::build`]).
pub fn build_cost(library: &librarian_core::LibrarySnapshot) -> BuildCost {
    let mut next = library.clone();
    next.version += 1;
    if let Some(b) = next.context_blocks.first_mut() {
        b.version += 1;
        b.content.push('.');
    }
    let (mut ser, mut hash, mut diff, mut parse) = (vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        let t = Instant::now();
        let bytes = library.canonical_json();
        ser.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let digest = librarian_core::patch::digest_of(&bytes);
        hash.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let step = librarian_core::patch::Step::between(library, &next, digest);
        diff.push(t.elapsed().as_secs_f64() * 1e3);
        drop(step);
        let t = Instant::now();
        let back: Result<librarian_core::LibrarySnapshot, _> = serde_json::from_slice(&bytes);
        parse.push(t.elapsed().as_secs_f64() * 1e3);
        drop(back);
    }
    BuildCost {
        serialize_ms: median(&ser).unwrap_or(0.0),
        hash_ms: median(&hash).unwrap_or(0.0),
        diff_ms: median(&diff).unwrap_or(0.0),
        parse_ms: median(&parse).unwrap_or(0.0),
    }
}

/// The mean of a Prometheus histogram between two reads of its `_sum` and `_count`, in ms.
async fn histogram_mean(t: &Target, name: &str, before: (Option<f64>, Option<f64>)) -> Option<f64> {
    let (s0, c0) = before;
    let s1 = t.metric(&format!("{name}_sum")).await?;
    let c1 = t.metric(&format!("{name}_count")).await?;
    let n = c1 - c0?;
    (n > 0.0).then(|| (s1 - s0.unwrap_or(0.0)) / n * 1e3)
}

async fn histogram_read(t: &Target, name: &str) -> (Option<f64>, Option<f64>) {
    (
        t.metric(&format!("{name}_sum")).await,
        t.metric(&format!("{name}_count")).await,
    )
}

#[derive(Debug, Serialize)]
pub struct Resume {
    pub items: usize,
    /// Other sessions stayed on the library meanwhile (else nobody had it open).
    pub others_connected: bool,
    pub patches: bool,
    pub missed_versions: i64,
    /// Per attempt: text bytes received from connecting until the session held the latest
    /// version (hello, status, presence included), and of those the snapshot/patch frames.
    pub bytes: Vec<u64>,
    pub library_bytes: Vec<u64>,
    /// From starting to connect (TCP, upgrade, hello) to holding the latest version, applied
    /// and its digest checked, ms.
    pub time_to_live_ms: Vec<f64>,
    /// What answered the resume: "patch" or "snapshot".
    pub answered_with: Vec<&'static str>,
}

fn content(i: usize) -> String {
    // ~500 bytes, different at every edit.
    let mut s = format!("Edit {i}: ");
    while s.len() < 500 {
        s.push_str("You are a careful assistant; answer briefly. ");
    }
    s.truncate(500);
    s
}

fn cpu_self() -> f64 {
    proc_sample(std::process::id()).cpu_seconds
}

struct Totals {
    bytes: u64,
    library_bytes: u64,
    snapshots: u64,
    patches: u64,
    apply_ns: u64,
    verify_ns: u64,
    verifies: u64,
    mismatches: u64,
    failures: u64,
}

fn totals(sessions: &[Session]) -> Totals {
    let sum = |f: fn(&Counters) -> &std::sync::atomic::AtomicU64| -> u64 {
        sessions.iter().map(|s| Counters::get(f(&s.counters))).sum()
    };
    Totals {
        bytes: sum(|c| &c.bytes),
        library_bytes: sum(|c| &c.library_bytes),
        snapshots: sum(|c| &c.snapshots),
        patches: sum(|c| &c.patches),
        apply_ns: sum(|c| &c.apply_ns),
        verify_ns: sum(|c| &c.verify_ns),
        verifies: sum(|c| &c.verifies),
        mismatches: sum(|c| &c.mismatches),
        failures: sum(|c| &c.failures),
    }
}

/// W6 at each size: `sessions` sessions, `edits` single-row edits one at a time, in each of
/// `modes`.
pub async fn w6(
    t: &Target,
    sizes: &[usize],
    sessions: usize,
    edits: usize,
    modes: &[Mode],
) -> anyhow::Result<(Vec<W6>, Vec<Filled>)> {
    let pid = t.pids()[0];
    let mut rows = Vec::new();
    let mut filled = Vec::new();
    for &items in sizes {
        let user = format!("w6-{items}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let blocks = t.fill(&user, items).await?;
        eprintln!(
            "  W6 {items} items filled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut next = 0;
        for &mode in modes {
            let mut conns = Vec::new();
            for _ in 0..sessions {
                conns.push(
                    t.session_with(&user, mode.query(), mode.options(), None)
                        .await?,
                );
            }
            anyhow::ensure!(
                all_reach(&mut conns, 1, MISS_AFTER).await,
                "W6: a session got no snapshot"
            );
            if mode != Mode::Snapshots {
                anyhow::ensure!(
                    conns
                        .iter()
                        .all(|c| Counters::get(&c.counters.patches_on) == 1),
                    "W6: the server did not say \"patches\": true"
                );
            }
            let snapshot_bytes = Counters::get(&conns[0].counters.max_library_frame);
            for c in &conns {
                c.counters.reset_max();
                c.verify_now();
            }
            let before = totals(&conns);
            let reload0 = histogram_read(t, "librarian_reload_seconds").await;
            let frame0 = histogram_read(t, "librarian_ws_commit_to_frame_seconds").await;
            let (server0, self0) = (proc_sample(pid).cpu_seconds, cpu_self());
            let mut lat = Latencies::new()?;
            for _ in 0..edits {
                let body = json!({ "content": content(next) });
                let block = blocks[spread(next, blocks.len())];
                next += 1;
                let sent = Instant::now();
                let v = t.update_block(&user, block, &body).await?;
                anyhow::ensure!(
                    all_reach(&mut conns, v, MISS_AFTER).await,
                    "W6: a session missed v{v}"
                );
                lat.record(sent.elapsed());
            }
            let (server1, self1) = (proc_sample(pid).cpu_seconds, cpu_self());
            if mode == Mode::PatchesApplied {
                for c in &conns {
                    c.verify_now();
                }
            }
            let after = totals(&conns);
            let reload_ms = histogram_mean(t, "librarian_reload_seconds", reload0).await;
            let commit_to_frame_ms =
                histogram_mean(t, "librarian_ws_commit_to_frame_seconds", frame0).await;
            let build = match mode {
                Mode::PatchesApplied => conns[0].held().map(|h| build_cost(&h.library)),
                _ => None,
            };
            let per = (sessions * edits).max(1) as f64;
            let row_bytes = conns[0]
                .held()
                .and_then(|h| {
                    let id = blocks[spread(next - 1, blocks.len())];
                    let row = h.library.context_block(id)?;
                    serde_json::to_string(row).ok()
                })
                .map_or(0, |s| s.len() as u64);
            let max = |f: fn(&Counters) -> &std::sync::atomic::AtomicU64| {
                conns
                    .iter()
                    .map(|c| Counters::get(f(&c.counters)))
                    .max()
                    .unwrap_or(0)
            };
            let patches = after.patches - before.patches;
            let verifies = after.verifies - before.verifies;
            rows.push(W6 {
                items,
                sessions,
                mode,
                edits,
                snapshot_bytes,
                row_bytes,
                latency: lat.summary(),
                bytes_per_session_per_edit: (after.bytes - before.bytes) as f64 / per,
                library_bytes_per_session_per_edit: (after.library_bytes - before.library_bytes)
                    as f64
                    / per,
                max_library_frame: max(|c| &c.max_library_frame),
                max_patch_overhead: max(|c| &c.max_patch_overhead),
                snapshots_per_session: (after.snapshots - before.snapshots) as f64 / per,
                patches_per_session: patches as f64 / per,
                server_cpu_ms_per_edit: (server1 - server0) * 1e3 / edits.max(1) as f64,
                bench_cpu_ms_per_edit: (self1 - self0) * 1e3 / edits.max(1) as f64,
                apply_ms: (after.apply_ns - before.apply_ns) as f64 / 1e6 / patches.max(1) as f64,
                verify_ms: (after.verify_ns - before.verify_ns) as f64
                    / 1e6
                    / verifies.max(1) as f64,
                verifies,
                mismatches: after.mismatches - before.mismatches,
                failures: after.failures - before.failures,
                server_rss_kib: proc_sample(pid).rss_kib,
                reload_ms,
                commit_to_frame_ms,
                build,
            });
            if let Some(r) = rows.last() {
                eprintln!(
                    "  W6 {items} items, {}: p50 {:.2} ms, p99 {:.2} ms, {:.0} B/session/edit",
                    mode.label(),
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.bytes_per_session_per_edit
                );
            }
        }
        filled.push(Filled {
            items,
            user,
            blocks,
        });
    }
    Ok((rows, filled))
}

/// The `n`th edited row of `len`: a fixed stride through the library, so that edits fall all
/// over it (the oldest rows, hashed first, as often as the newest), not on its first rows.
pub fn spread(n: usize, len: usize) -> usize {
    (n * 7919) % len.max(1)
}

/// A library W6 filled, to be used again.
pub struct Filled {
    pub items: usize,
    pub user: String,
    pub blocks: Vec<uuid::Uuid>,
}

/// Resume after `missed` versions: a session holding version v leaves, `missed` edits commit
/// (with `others` sessions on the library meanwhile, or none), and it comes back with
/// `?since_version=v`, with and without `&patches=1`; `attempts` times each.
pub async fn resume(
    t: &Target,
    lib: &Filled,
    others: usize,
    missed: usize,
    attempts: usize,
) -> anyhow::Result<Vec<Resume>> {
    let (items, user, blocks) = (lib.items, &lib.user, &lib.blocks);
    let holding = Options {
        receipts: true,
        hold: Some(Verify::Inline),
    };
    let mut rows = Vec::new();
    let mut next = 0;
    for others_connected in [true, false] {
        let mut stay = Vec::new();
        if others_connected {
            for _ in 0..others {
                let opts = Options {
                    receipts: true,
                    hold: None,
                };
                stay.push(t.session_with(user, "&patches=1", opts, None).await?);
            }
        }
        for patches in [true, false] {
            let mut row = Resume {
                items,
                others_connected,
                patches,
                missed_versions: missed as i64,
                bytes: Vec::new(),
                library_bytes: Vec::new(),
                time_to_live_ms: Vec::new(),
                answered_with: Vec::new(),
            };
            for _ in 0..attempts {
                let query = if patches { "&patches=1" } else { "" };
                let mut first = t.session_with(user, query, holding, None).await?;
                anyhow::ensure!(first.reach(1, MISS_AFTER).await, "resume: no snapshot");
                // Settle: the version it holds is the latest.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let held: Held = first
                    .held()
                    .ok_or_else(|| anyhow::anyhow!("resume: nothing held"))?;
                let v0 = held.library.version;
                drop(first);
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut latest = v0;
                for _ in 0..missed {
                    let body = json!({ "content": content(next) });
                    let block = blocks[spread(next, blocks.len())];
                    next += 1;
                    latest = t.update_block(user, block, &body).await?;
                    if others_connected {
                        anyhow::ensure!(
                            all_reach(&mut stay, latest, MISS_AFTER).await,
                            "resume: a staying session missed v{latest}"
                        );
                    }
                }
                anyhow::ensure!(
                    latest - v0 == missed as i64,
                    "resume: {} versions, not {missed}",
                    latest - v0
                );
                let started = Instant::now();
                let mut back = t
                    .session_with(
                        user,
                        &format!("&since_version={v0}{query}"),
                        holding,
                        Some(held),
                    )
                    .await?;
                anyhow::ensure!(
                    back.reach(latest, MISS_AFTER).await,
                    "resume: never got v{latest}"
                );
                row.time_to_live_ms
                    .push(started.elapsed().as_secs_f64() * 1e3);
                let c = &back.counters;
                anyhow::ensure!(
                    Counters::get(&c.mismatches) == 0 && Counters::get(&c.failures) == 0,
                    "resume: the library held does not match the server's digest"
                );
                row.bytes.push(Counters::get(&c.bytes));
                row.library_bytes.push(Counters::get(&c.library_bytes));
                row.answered_with.push(if Counters::get(&c.patches) > 0 {
                    "patch"
                } else {
                    "snapshot"
                });
                drop(back);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The middle value (upper of the two for an even count).
pub fn median<T: Copy + PartialOrd>(xs: &[T]) -> Option<T> {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}
