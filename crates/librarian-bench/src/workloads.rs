//! The workloads (see `--help`). Each returns plain rows; `main` renders them.

use crate::session::{Counters, Options, Session, Verify, all_reach};
use crate::stats::{Latencies, Summary, proc_sample};
use crate::target::Target;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Longest wait for sessions to reach a version before it counts as missed.
const MISS_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct W1 {
    pub target: String,
    pub items: usize,
    pub sessions: usize,
    pub latency: Summary,
}

/// W1: one outstanding write at a time; latency until the last of S sessions holds it.
pub async fn w1(
    t: &Target,
    sizes: &[usize],
    sessions: &[usize],
    writes: usize,
) -> anyhow::Result<Vec<W1>> {
    let mut rows = Vec::new();
    for &items in sizes {
        let user = format!("w1-{items}-{}", uuid::Uuid::new_v4().simple());
        let blocks = t.fill(&user, items).await?;
        for &s in sessions {
            let mut conns = Vec::new();
            for _ in 0..s {
                conns.push(t.session(&user).await?);
            }
            all_reach(&mut conns, 1, MISS_AFTER).await;
            let mut lat = Latencies::new()?;
            for i in 0..writes {
                let started = Instant::now();
                let v = t
                    .edit(&user, blocks[i % blocks.len()], &format!("edit {i}"))
                    .await?;
                anyhow::ensure!(
                    all_reach(&mut conns, v, MISS_AFTER).await,
                    "W1: a session missed v{v}"
                );
                lat.record(started.elapsed());
            }
            rows.push(W1 {
                target: t.name().into(),
                items,
                sessions: s,
                latency: lat.summary(),
            });
        }
    }
    Ok(rows)
}

#[derive(Debug, Serialize)]
pub struct W2 {
    pub target: String,
    pub rate: u32,
    pub latency: Summary,
    pub missed: u64,
    pub cpu_percent: f64,
}

/// W2: writes scheduled on a clock (open loop) over `users` libraries with a Zipf-like skew,
/// each with `per_user` sessions. Latency runs from the scheduled time, so a slow server cannot
/// hide its queueing (no coordinated omission).
pub async fn w2(
    t: &Arc<Target>,
    rates: &[u32],
    users: usize,
    per_user: usize,
    duration: Duration,
) -> anyhow::Result<Vec<W2>> {
    let mut libs = Vec::new();
    for u in 0..users {
        let user = format!("w2-{u}-{}", uuid::Uuid::new_v4().simple());
        let blocks = t.fill(&user, 30).await?;
        let mut conns = Vec::new();
        for _ in 0..per_user {
            conns.push(t.session(&user).await?);
        }
        libs.push(Arc::new((user, blocks, Mutex::new(conns))));
    }
    // Weight of user u ∝ 1/(u+1).
    let weights: Vec<f64> = (0..users).map(|u| 1.0 / (u as f64 + 1.0)).collect();
    let total: f64 = weights.iter().sum();
    let mut rows = Vec::new();
    for &rate in rates {
        let lat = Arc::new(std::sync::Mutex::new(Latencies::new()?));
        let missed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let n = (rate as f64 * duration.as_secs_f64()).round() as usize;
        let cpu0: f64 = t.pids().iter().map(|p| proc_sample(*p).cpu_seconds).sum();
        let start = Instant::now() + Duration::from_millis(50);
        let mut tasks = Vec::with_capacity(n);
        for k in 0..n {
            let at = start + Duration::from_secs_f64(k as f64 / rate as f64);
            let mut pick = rand::random::<f64>() * total;
            let u = weights
                .iter()
                .position(|w| {
                    pick -= w;
                    pick <= 0.0
                })
                .unwrap_or(0);
            let (t, lib, lat, missed) = (t.clone(), libs[u].clone(), lat.clone(), missed.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                let (user, blocks, conns) = &*lib;
                let block = blocks[k % blocks.len()];
                let Ok(v) = t.edit(user, block, &format!("w2 {k}")).await else {
                    missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                };
                let mut conns: Vec<tokio::sync::watch::Receiver<i64>> = conns
                    .lock()
                    .await
                    .iter()
                    .map(|c| c.version.clone())
                    .collect();
                for c in &mut conns {
                    let reached = tokio::time::timeout(MISS_AFTER, c.wait_for(|h| *h >= v)).await;
                    if !reached.is_ok_and(|r| r.is_ok()) {
                        missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                }
                if let Ok(mut l) = lat.lock() {
                    l.record(Instant::now().saturating_duration_since(at));
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        let wall = start.elapsed().as_secs_f64().max(0.001);
        let cpu1: f64 = t.pids().iter().map(|p| proc_sample(*p).cpu_seconds).sum();
        let latency = lat.lock().map(|l| l.summary()).unwrap_or_default();
        rows.push(W2 {
            target: t.name().into(),
            rate,
            latency,
            missed: missed.load(std::sync::atomic::Ordering::Relaxed),
            cpu_percent: (cpu1 - cpu0) / wall * 100.0,
        });
    }
    Ok(rows)
}

/// The highest rate whose p99 is within 100 ms with nothing missed.
pub fn sustainable(rows: &[W2]) -> Option<u32> {
    rows.iter()
        .filter(|r| r.missed == 0 && r.latency.p99_ms <= 100.0 && r.latency.count > 0)
        .map(|r| r.rate)
        .max()
}

#[derive(Debug, Serialize)]
pub struct W3 {
    pub target: String,
    pub writes: usize,
    pub reloads: Option<u64>,
    pub snapshots_per_session_avg: f64,
    pub snapshots_per_session_max: u64,
    pub last_commit_to_all_live_ms: f64,
    /// `presence` frames each session got per second of the burst (sessions answer each
    /// snapshot with `seen`, so every receipt changes the list); zero for the floor.
    pub presence_per_session_per_s: f64,
}

/// W3: 100 writes in 1 s to one 300-item library with 10 sessions.
pub async fn w3(t: &Target, writes: usize, sessions: usize) -> anyhow::Result<W3> {
    let user = format!("w3-{}", uuid::Uuid::new_v4().simple());
    let blocks = t.fill(&user, 300).await?;
    let mut conns = Vec::new();
    for _ in 0..sessions {
        conns.push(t.session(&user).await?);
    }
    all_reach(&mut conns, 1, MISS_AFTER).await;
    let counts0: Vec<u64> = conns
        .iter()
        .map(|c| {
            c.counters
                .snapshots
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .collect();
    let presence0: Vec<u64> = conns
        .iter()
        .map(|c| {
            c.counters
                .presence
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .collect();
    let reloads0 = t.reloads().await;
    let start = Instant::now();
    let results = futures_util::future::join_all((0..writes).map(|i| {
        let at = start + Duration::from_secs_f64(i as f64 / writes as f64);
        let (user, block) = (user.clone(), blocks[i % blocks.len()]);
        async move {
            tokio::time::sleep_until(at.into()).await;
            let v = t.edit(&user, block, &format!("w3 {i}")).await;
            (v, Instant::now())
        }
    }))
    .await;
    let mut final_version = 0;
    let mut last_commit = start;
    for (v, at) in results {
        final_version = final_version.max(v?);
        last_commit = last_commit.max(at);
    }
    anyhow::ensure!(
        all_reach(&mut conns, final_version, MISS_AFTER).await,
        "W3: a session missed the last version"
    );
    let all_live = Instant::now();
    let presence: u64 = conns
        .iter()
        .zip(presence0)
        .map(|(c, p0)| {
            c.counters
                .presence
                .load(std::sync::atomic::Ordering::Relaxed)
                - p0
        })
        .sum();
    let burst_s = all_live
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(1e-3);
    let reloads = match (reloads0, t.reloads().await) {
        (Some(a), Some(b)) => Some(b - a),
        _ => Some(writes as u64), // the floor reloads once per write by construction
    };
    let got: Vec<u64> = conns
        .iter()
        .zip(counts0)
        .map(|(c, c0)| {
            c.counters
                .snapshots
                .load(std::sync::atomic::Ordering::Relaxed)
                - c0
        })
        .collect();
    Ok(W3 {
        target: t.name().into(),
        writes,
        reloads,
        snapshots_per_session_avg: got.iter().sum::<u64>() as f64 / got.len().max(1) as f64,
        snapshots_per_session_max: got.iter().copied().max().unwrap_or(0),
        last_commit_to_all_live_ms: all_live
            .saturating_duration_since(last_commit)
            .as_secs_f64()
            * 1e3,
        presence_per_session_per_s: presence as f64 / sessions.max(1) as f64 / burst_s,
    })
}

#[derive(Debug, Serialize)]
pub struct W4 {
    pub target: String,
    pub sessions: usize,
    pub all_live_ms: f64,
    pub reloads: Option<u64>,
}

/// W4: `users` × `per_user` sessions connect at once; time until every one holds a snapshot.
pub async fn w4(t: &Arc<Target>, users: usize, per_user: usize) -> anyhow::Result<W4> {
    let names: Vec<String> = (0..users)
        .map(|u| format!("w4-{u}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    // One small library per user, made beforehand (and tokens fetched) so only connecting is timed.
    for name in &names {
        t.fill(name, 3).await?;
    }
    let reloads0 = t.reloads().await;
    let start = Instant::now();
    let tasks: Vec<_> = names
        .iter()
        .flat_map(|n| std::iter::repeat_n(n.clone(), per_user))
        .map(|name| {
            let t = t.clone();
            tokio::spawn(async move {
                let mut s = t.session(&name).await?;
                anyhow::ensure!(
                    s.reach(1, MISS_AFTER).await,
                    "W4: a session got no snapshot"
                );
                Ok::<Session, anyhow::Error>(s)
            })
        })
        .collect();
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.push(task.await??);
    }
    let all_live_ms = start.elapsed().as_secs_f64() * 1e3;
    let reloads = match (reloads0, t.reloads().await) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(W4 {
        target: t.name().into(),
        sessions: sessions.len(),
        all_live_ms,
        reloads,
    })
}

#[derive(Debug, Serialize)]
pub struct W5 {
    pub target: String,
    pub sessions: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_session: f64,
}

/// W5: many idle sessions; the server's resident memory per session.
pub async fn w5(t: &Target, users: usize, per_user: usize) -> anyhow::Result<W5> {
    let pid = t.pids()[0];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = proc_sample(pid).rss_kib;
    let mut sessions = Vec::new();
    for u in 0..users {
        let name = format!("w5-{u}");
        for _ in 0..per_user {
            sessions.push(t.session(&name).await?);
        }
    }
    for s in &mut sessions {
        s.reach(0, MISS_AFTER).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = proc_sample(pid).rss_kib;
    Ok(W5 {
        target: t.name().into(),
        sessions: sessions.len(),
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_session: after.saturating_sub(before) as f64 / sessions.len().max(1) as f64,
    })
}

#[derive(Debug, Serialize)]
pub struct Polling {
    pub interval_ms: u64,
    pub pollers: usize,
    pub write_rate: f64,
    pub latency: Summary,
    pub requests_per_s: f64,
    pub queries_per_s: f64,
}

/// Clients polling `GET /library` with `If-None-Match` every `interval`; latency until the last
/// poller has seen each write; database queries estimated from the answers (304: the version
/// lookup; 200: that plus the read transaction's five queries).
pub async fn polling(
    t: &Arc<Target>,
    interval: Duration,
    pollers: usize,
    writes: usize,
    write_every: Duration,
) -> anyhow::Result<Polling> {
    let user = format!("poll-{}", uuid::Uuid::new_v4().simple());
    let blocks = t.fill(&user, 300).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let seen: Vec<Arc<tokio::sync::watch::Sender<i64>>> = (0..pollers)
        .map(|_| Arc::new(tokio::sync::watch::channel(-1).0))
        .collect();
    let answers = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let mut tasks = Vec::new();
    for (i, seen) in seen.iter().enumerate() {
        let (t, user, seen, answers, mut stop) = (
            t.clone(),
            user.clone(),
            seen.clone(),
            answers.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Spread the pollers over the interval, as independent clients would be.
            tokio::time::sleep(interval.mul_f64(i as f64 / pollers as f64)).await;
            let mut tick = tokio::time::interval(interval);
            let mut etag = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Ok((status, version)) = t.poll(&user, etag).await {
                    if let Ok(mut a) = answers.lock() {
                        if status == 304 { a.0 += 1 } else { a.1 += 1 }
                    }
                    if let Some(v) = version {
                        etag = Some(v);
                        seen.send_if_modified(|s| {
                            let newer = v > *s;
                            if newer {
                                *s = v
                            }
                            newer
                        });
                    }
                }
            }
        }));
    }
    tokio::time::sleep(interval * 2).await;
    let mut lat = Latencies::new()?;
    let started = Instant::now();
    let counted = *answers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    for i in 0..writes {
        let t0 = Instant::now();
        let v = t
            .edit(&user, blocks[i % blocks.len()], &format!("poll {i}"))
            .await?;
        for s in &seen {
            let mut rx = s.subscribe();
            let _ = tokio::time::timeout(MISS_AFTER, rx.wait_for(|h| *h >= v)).await;
        }
        lat.record(t0.elapsed());
        tokio::time::sleep(write_every.saturating_sub(t0.elapsed())).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let (n304, n200) = *answers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let (n304, n200) = (n304 - counted.0, n200 - counted.1);
    Ok(Polling {
        interval_ms: interval.as_millis() as u64,
        pollers,
        write_rate: writes as f64 / wall,
        latency: lat.summary(),
        requests_per_s: (n304 + n200) as f64 / wall,
        queries_per_s: (n304 + 6 * n200) as f64 / wall,
    })
}

#[derive(Debug, Serialize)]
pub struct Mixed {
    pub target: String,
    pub small_libraries: usize,
    pub big_items: usize,
    /// Every session connected with `?patches=1` (and applies the patches to the library it
    /// holds; small libraries check each digest before the version counts, the big one's
    /// sessions check theirs once at the end, to keep 5 MB of hashing per edit off the CPU the
    /// small libraries share).
    pub patches: bool,
    /// Whether the big library was being edited meanwhile.
    pub with_big: bool,
    /// Small libraries' edits: send → their session holds it.
    pub small: Summary,
    /// The big library's edits (when it was edited).
    pub big: Option<Summary>,
}

/// Mixed tenants: `small_libs` 30-item libraries (one session each) edited by 4 writers, one
/// write outstanding each, for `duration`; once alone, once while one `big_items` library
/// (2 sessions) is edited back to back. Shows whether one large library slows small ones.
/// Runs once per entry of `patch_modes` (false: full snapshots; true: `?patches=1`), on the
/// same libraries.
pub async fn mixed(
    t: &Target,
    small_libs: usize,
    big_items: usize,
    duration: Duration,
    patch_modes: &[bool],
) -> anyhow::Result<Vec<Mixed>> {
    const WRITERS: usize = 4;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut small_fill: Vec<Vec<(String, Vec<uuid::Uuid>)>> =
        (0..WRITERS).map(|_| Vec::new()).collect();
    for i in 0..small_libs {
        let user = format!("mixed-small-{i}-{run}");
        let blocks = t.fill(&user, 30).await?;
        small_fill[i % WRITERS].push((user, blocks));
    }
    let big_user = format!("mixed-big-{run}");
    let big_blocks = t.fill(&big_user, big_items).await?;
    let mut rows = Vec::new();
    for &patches in patch_modes {
        let (query, small_opts, big_opts) = if patches {
            (
                "&patches=1",
                Options {
                    receipts: true,
                    hold: Some(Verify::Inline),
                },
                Options {
                    receipts: true,
                    hold: Some(Verify::Deferred),
                },
            )
        } else {
            ("", Options::VERSIONS, Options::VERSIONS)
        };
        let mut small: Vec<Vec<(String, Vec<uuid::Uuid>, Session)>> = Vec::new();
        for libs in &small_fill {
            let mut group = Vec::new();
            for (user, blocks) in libs {
                let mut s = t.session_with(user, query, small_opts, None).await?;
                s.reach(1, MISS_AFTER).await;
                group.push((user.clone(), blocks.clone(), s));
            }
            small.push(group);
        }
        let mut big_sessions = vec![
            t.session_with(&big_user, query, big_opts, None).await?,
            t.session_with(&big_user, query, big_opts, None).await?,
        ];
        all_reach(&mut big_sessions, 1, MISS_AFTER).await;
        for with_big in [false, true] {
            let (small_took, big_took) = mixed_round(
                t,
                &mut small,
                &big_user,
                &big_blocks,
                &mut big_sessions,
                with_big,
                duration,
            )
            .await?;
            rows.push(Mixed {
                target: t.name().into(),
                small_libraries: small_libs,
                big_items,
                patches,
                with_big,
                small: small_took,
                big: big_took,
            });
        }
        for s in big_sessions
            .iter()
            .chain(small.iter().flatten().map(|(_, _, s)| s))
        {
            s.verify_now();
            let c = &s.counters;
            anyhow::ensure!(
                Counters::get(&c.mismatches) == 0 && Counters::get(&c.failures) == 0,
                "mixed: a session's library does not match the server's digest"
            );
        }
    }
    Ok(rows)
}

/// One half of [`mixed`]: the small libraries edited for `duration`, the big one too if
/// `with_big`; their latencies.
async fn mixed_round(
    t: &Target,
    small: &mut [Vec<(String, Vec<uuid::Uuid>, Session)>],
    big_user: &str,
    big_blocks: &[uuid::Uuid],
    big_sessions: &mut [Session],
    with_big: bool,
    duration: Duration,
) -> anyhow::Result<(Summary, Option<Summary>)> {
    let deadline = Instant::now() + duration;
    let writers = small.iter_mut().enumerate().map(|(w, libs)| async move {
        let mut took = Vec::new();
        let mut i = 0;
        while Instant::now() < deadline && !libs.is_empty() {
            let n = libs.len();
            let (user, blocks, session) = &mut libs[i % n];
            let started = Instant::now();
            let v = t
                .edit(user, blocks[i % blocks.len()], &format!("small {w}.{i}"))
                .await?;
            anyhow::ensure!(session.reach(v, MISS_AFTER).await, "mixed: v{v} missed");
            took.push(started.elapsed());
            i += 1;
        }
        Ok::<_, anyhow::Error>(took)
    });
    let big = async {
        let mut took = Vec::new();
        let mut i = 0;
        while with_big && Instant::now() < deadline {
            let started = Instant::now();
            let v = t
                .edit(
                    big_user,
                    big_blocks[crate::w6::spread(i, big_blocks.len())],
                    &format!("big {i}"),
                )
                .await?;
            anyhow::ensure!(
                all_reach(big_sessions, v, MISS_AFTER).await,
                "mixed: the big library missed v{v}"
            );
            took.push(started.elapsed());
            i += 1;
        }
        Ok::<_, anyhow::Error>(took)
    };
    let (small_took, big_took) =
        futures_util::future::join(futures_util::future::join_all(writers), big).await;
    let mut lat = Latencies::new()?;
    for took in small_took {
        for d in took? {
            lat.record(d);
        }
    }
    let big_took = big_took?;
    let big_summary = if with_big {
        let mut b = Latencies::new()?;
        for d in big_took {
            b.record(d);
        }
        Some(b.summary())
    } else {
        None
    };
    Ok((lat.summary(), big_summary))
}
