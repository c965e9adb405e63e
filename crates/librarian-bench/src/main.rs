//! `librarian-bench`: Librarian under load, against the physical floor.
//!
//! It starts the real `librarian` binary (release build, next to this one), and in the same run
//! a minimal baseline (the floor, see `floor.rs`), runs the workloads on each, and writes the
//! results as JSON and as markdown tables with ratios against the floor. No timing is asserted.

mod floor;
mod session;
mod stats;
mod target;
mod w6;
mod workloads;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use librarian_testkit::TestDb;
use librarian_testkit::server::TestServer;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use target::Target;
use workloads::{W1, W2};

const ABOUT: &str = "Measures Librarian against a minimal baseline (the floor) on both backends.

Workloads (latency = from sending a write to the moment the LAST of the user's sessions holds a
snapshot with its version):
  W1  single edit: one outstanding write at a time; libraries of 30, 300 and 3 000 items;
      1 and 10 sessions.
  W2  open-loop rate sweep: writes on a clock over users with a Zipf skew, 2 sessions each;
      the highest rate with p99 <= 100 ms and no version missed.
  W3  hot-library burst: 100 writes in 1 s to one 300-item library with 10 sessions: reloads
      per write, snapshots per session, last commit -> every session live.
  W4  connect storm: 2 000 sessions (200 users x 10) at once: time until all hold a snapshot;
      reloads.
  W5  idle scale: 10 000 idle sessions: server RSS per session.
  Mixed tenants: 100 small libraries (30 items, 1 session each) edited by 4 writers, alone
      and while one 10 000-item library (2 sessions) is edited back to back (rows all over
      it): small libraries' latency with and without the big one.
  W6  large libraries and patch frames (Librarian only): libraries of 300, 3 000 and 10 000
      items, 10 sessions, single-row edits (a ~500-byte block content) one at a time, with
      full snapshots and with ?patches=1: bytes per session per edit, largest frame, visible
      latency, server CPU per edit; a session that missed 50 versions resuming with and
      without patches (bytes, time to live); mixed tenants again with every session on
      patches.
  Polling: clients polling GET /library with If-None-Match every 100 ms and 1 s; latency and
      the database queries per second they cost.
The floor commits, reloads in one read transaction, serializes once and writes to raw
WebSockets, nothing else. On PostgreSQL, W1 and W2 also run on two instances (writes to one,
sessions on the other).

Build first: cargo build --release --workspace (the bench runs target/release/librarian).";

#[derive(Parser)]
#[command(version, about = "Librarian benchmark", long_about = ABOUT)]
struct Cli {
    /// A small run (under a minute, SQLite only unless --backend says otherwise): the CI smoke test.
    #[arg(long)]
    quick: bool,
    /// Which backends to run.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
    /// PostgreSQL for the postgres runs (a schema per target is created and dropped).
    #[arg(long, env = "LIBRARIAN_TEST_DATABASE_URL")]
    postgres_url: Option<String>,
    /// Markdown report.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// JSON report.
    #[arg(long, default_value = "target/bench/bench.json")]
    json: PathBuf,
    /// Only the mixed-tenants workload (e.g. to compare two builds via LIBRARIAN_BIN).
    #[arg(long)]
    mixed_only: bool,
    /// Only W6 (patch frames on large libraries: edits, resume, mixed tenants with patches).
    #[arg(long)]
    w6_only: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backends {
    Sqlite,
    Postgres,
    Both,
}

struct Sizes {
    w1_items: Vec<usize>,
    w1_sessions: Vec<usize>,
    w1_writes: usize,
    w2_rates: Vec<u32>,
    w2_users: usize,
    w2_duration: Duration,
    w4: (usize, usize),
    w5: (usize, usize),
    poll_intervals: Vec<u64>,
    poll_pollers: usize,
    poll_writes: usize,
    /// Mixed tenants: small libraries, the big one's items, how long each half runs.
    mixed: (usize, usize, Duration),
    w6_items: Vec<usize>,
    w6_sessions: usize,
    w6_edits: usize,
    /// Resume: sessions staying on the library, versions missed, attempts.
    w6_resume: (usize, usize, usize),
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                w1_items: vec![30, 300],
                w1_sessions: vec![1, 10],
                w1_writes: 30,
                w2_rates: vec![50, 200],
                w2_users: 5,
                w2_duration: Duration::from_secs(1),
                w4: (20, 10),
                w5: (50, 10),
                poll_intervals: vec![100],
                poll_pollers: 5,
                poll_writes: 6,
                mixed: (10, 1000, Duration::from_secs(1)),
                w6_items: vec![300, 1000],
                w6_sessions: 10,
                w6_edits: 10,
                w6_resume: (9, 50, 1),
            }
        } else {
            Sizes {
                w1_items: vec![30, 300, 3000],
                w1_sessions: vec![1, 10],
                w1_writes: 200,
                w2_rates: vec![50, 100, 200, 400, 800, 1600],
                w2_users: 20,
                w2_duration: Duration::from_secs(3),
                w4: (200, 10),
                w5: (1000, 10),
                poll_intervals: vec![100, 1000],
                poll_pollers: 10,
                poll_writes: 20,
                mixed: (100, 10_000, Duration::from_secs(5)),
                w6_items: vec![300, 3000, 10_000],
                w6_sessions: 10,
                w6_edits: 100,
                w6_resume: (9, 50, 3),
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = librarian_testkit::server::binary();
    anyhow::ensure!(
        bin.is_file(),
        "no librarian binary at {}: run `cargo build --release --workspace` first",
        bin.display()
    );
    let sizes = Sizes::new(cli.quick);
    let backends: Vec<&str> = match (cli.backend, cli.quick) {
        (Backends::Sqlite, _) | (Backends::Both, true) => vec!["sqlite"],
        (Backends::Postgres, _) => vec!["postgres"],
        (Backends::Both, false) => vec!["sqlite", "postgres"],
    };
    let mut md = header(&cli);
    let mut report = serde_json::Map::new();
    for backend in backends {
        eprintln!("== {backend}");
        let (section, json) = run_backend(backend, &cli, &sizes).await?;
        md.push_str(&section);
        report.insert(backend.into(), json);
    }
    if let Some(dir) = cli.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &cli.json,
        serde_json::to_string_pretty(&Value::Object(report))?,
    )?;
    if let Some(dir) = cli.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cli.out, md)?;
    eprintln!("wrote {} and {}", cli.out.display(), cli.json.display());
    Ok(())
}

async fn database(backend: &str, cli: &Cli) -> anyhow::Result<TestDb> {
    if backend == "sqlite" {
        return Ok(TestDb::sqlite());
    }
    let url = cli
        .postgres_url
        .as_deref()
        .context("postgres needs --postgres-url or LIBRARIAN_TEST_DATABASE_URL")?;
    Ok(TestDb::postgres_at(url).await)
}

fn start_server(db: &TestDb, secret: &str, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![
        ("LIBRARIAN__DATABASE__URL", db.url()),
        ("LIBRARIAN__AUTH__DEV_SECRET_FILE", secret),
        (
            "LIBRARIAN__LOG__LEVEL",
            "warn,librarian_server=info,librarian_server::ws=warn",
        ),
        ("LIBRARIAN__WS__MAX_INFLIGHT_MUTATIONS", "64"),
    ];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

async fn run_backend(backend: &str, cli: &Cli, s: &Sizes) -> anyhow::Result<(String, Value)> {
    let secrets = tempfile_dir()?;
    let secret = secrets.join("dev-secret").display().to_string();
    let lib_db = database(backend, cli).await?;
    let floor_db = database(backend, cli).await?;
    let librarian = Arc::new(Target::librarian(start_server(&lib_db, &secret, &[]), None));
    if cli.mixed_only {
        eprintln!("mixed tenants");
        let mixed = workloads::mixed(&librarian, s.mixed.0, s.mixed.1, s.mixed.2, &[false]).await?;
        let md = format!("\n## {backend}\n{}", mixed_table(&mixed));
        return Ok((md, json!({ "mixed": mixed })));
    }
    if cli.w6_only {
        let (md, json) = run_w6(&librarian, s, true).await?;
        let server = stats::proc_sample(librarian.pids()[0]);
        let md = format!(
            "\n## {backend}\n{md}\nLibrarian server process after the run: {:.1} s CPU, {} KiB RSS.\n",
            server.cpu_seconds, server.rss_kib
        );
        return Ok((md, json));
    }
    let floor = Arc::new(Target::floor(floor_db.store().await).await?);

    eprintln!("W1");
    let mut w1 = workloads::w1(&librarian, &s.w1_items, &s.w1_sessions, s.w1_writes).await?;
    let w1_floor = workloads::w1(&floor, &s.w1_items, &s.w1_sessions, s.w1_writes).await?;
    eprintln!("W3");
    let mut w3 = vec![
        workloads::w3(&librarian, 100, 10).await?,
        workloads::w3(&floor, 100, 10).await?,
    ];
    {
        // The same burst with `sync.min_reload_interval_ms = 35`: fewer reloads, more latency.
        let throttled_db = database(backend, cli).await?;
        let throttled = Target::librarian(
            start_server(
                &throttled_db,
                &secret,
                &[("LIBRARIAN__SYNC__MIN_RELOAD_INTERVAL_MS", "35")],
            ),
            None,
        );
        let mut row = workloads::w3(&throttled, 100, 10).await?;
        row.target = "librarian, min_reload_interval 35 ms".into();
        w3.push(row);
    }
    eprintln!("W2");
    let mut w2 = workloads::w2(&librarian, &s.w2_rates, s.w2_users, 2, s.w2_duration).await?;
    let w2_floor = workloads::w2(&floor, &s.w2_rates, s.w2_users, 2, s.w2_duration).await?;
    eprintln!("W4");
    let w4 = workloads::w4(&librarian, s.w4.0, s.w4.1).await?;
    eprintln!("W5");
    let w5 = workloads::w5(&librarian, s.w5.0, s.w5.1).await?;
    eprintln!("polling");
    let mut polls = Vec::new();
    for &ms in &s.poll_intervals {
        polls.push(
            workloads::polling(
                &librarian,
                Duration::from_millis(ms),
                s.poll_pollers,
                s.poll_writes,
                Duration::from_millis(250),
            )
            .await?,
        );
    }
    eprintln!("mixed tenants");
    let mixed =
        workloads::mixed(&librarian, s.mixed.0, s.mixed.1, s.mixed.2, &[false, true]).await?;
    let (w6_md, w6_json) = run_w6(&librarian, s, false).await?;
    let mut two = None;
    if backend == "postgres" {
        eprintln!("two instances");
        let pair_db = database(backend, cli).await?;
        let a = start_server(&pair_db, &secret, &[]);
        let b = start_server(&pair_db, &secret, &[]);
        let pair = Arc::new(Target::librarian(a, Some(b)));
        let p1 = workloads::w1(&pair, &s.w1_items, &s.w1_sessions, s.w1_writes).await?;
        let p2 = workloads::w2(&pair, &s.w2_rates, s.w2_users, 2, s.w2_duration).await?;
        two = Some((p1, p2, pair_db));
    }
    let server_cpu = stats::proc_sample(librarian.pids()[0]);

    let mut md = format!("\n## {backend}\n");
    // W1 with ratios.
    md.push_str("\n### W1: single edit (latency in ms: send → last session holds it)\n\n");
    md.push_str("| items | sessions | target | p50 | p95 | p99 | max | ÷ floor p50 | ÷ floor p99 |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
    if let Some((p1, _, _)) = &two {
        w1.extend(p1.iter().map(|r| W1 {
            target: r.target.clone(),
            items: r.items,
            sessions: r.sessions,
            latency: r.latency,
        }));
    }
    for r in w1.iter().chain(&w1_floor) {
        let f = w1_floor
            .iter()
            .find(|f| f.items == r.items && f.sessions == r.sessions);
        let ratio = |a: f64, b: Option<f64>| {
            b.filter(|b| *b > 0.0)
                .map_or("–".into(), |b| format!("{:.2}", a / b))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.items,
            r.sessions,
            r.target,
            r.latency.p50_ms,
            r.latency.p95_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            ratio(r.latency.p50_ms, f.map(|f| f.latency.p50_ms)),
            ratio(r.latency.p99_ms, f.map(|f| f.latency.p99_ms))
        );
    }
    // W2.
    md.push_str("\n### W2: open-loop rate sweep (latency from the scheduled time, ms)\n\n");
    md.push_str("| target | writes/s | p50 | p99 | max | missed | server CPU % |\n|---|---:|---:|---:|---:|---:|---:|\n");
    if let Some((_, p2, _)) = &two {
        w2.extend(p2.iter().map(|r| W2 {
            target: r.target.clone(),
            rate: r.rate,
            latency: r.latency,
            missed: r.missed,
            cpu_percent: r.cpu_percent,
        }));
    }
    for r in w2.iter().chain(&w2_floor) {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} |",
            r.target,
            r.rate,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.missed,
            r.cpu_percent
        );
    }
    let ours = workloads::sustainable(
        &w2.iter()
            .filter(|r| r.target == "librarian")
            .map(|r| W2 {
                target: r.target.clone(),
                rate: r.rate,
                latency: r.latency,
                missed: r.missed,
                cpu_percent: r.cpu_percent,
            })
            .collect::<Vec<_>>(),
    );
    let theirs = workloads::sustainable(&w2_floor);
    let _ = writeln!(
        md,
        "\nSustainable rate (p99 ≤ 100 ms, nothing missed, highest rate tried): Librarian {}, floor {}{}.",
        ours.map_or("none".into(), |r| format!("≥ {r}/s")),
        theirs.map_or("none".into(), |r| format!("≥ {r}/s")),
        match (ours, theirs) {
            (Some(a), Some(b)) => format!(" (ratio {:.2})", a as f64 / b as f64),
            _ => String::new(),
        }
    );
    // W3, W4, W5.
    md.push_str("\n### W3: 100 writes in 1 s to one library, 10 sessions\n\n| target | reloads | reloads/write | snapshots per session (avg / max) | last commit → all live (ms) | presence frames per session per s |\n|---|---:|---:|---:|---:|---:|\n");
    for r in &w3 {
        let reloads = r.reloads.unwrap_or(0);
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.1} / {} | {:.1} | {:.1} |",
            r.target,
            reloads,
            reloads as f64 / r.writes as f64,
            r.snapshots_per_session_avg,
            r.snapshots_per_session_max,
            r.last_commit_to_all_live_ms,
            r.presence_per_session_per_s
        );
    }
    let _ = writeln!(
        md,
        "\n### W4: connect storm\n\n{} sessions ({} users × {}) connected at once: all live after {:.0} ms, {} reloads.",
        w4.sessions,
        s.w4.0,
        s.w4.1,
        w4.all_live_ms,
        w4.reloads.map_or("?".into(), |r| r.to_string())
    );
    let _ = writeln!(
        md,
        "\n### W5: idle sessions\n\n{} idle sessions: server RSS {} KiB → {} KiB, {:.1} KiB per session.",
        w5.sessions, w5.rss_before_kib, w5.rss_after_kib, w5.kib_per_session
    );
    md.push_str("\n### Polling instead of a WebSocket (`GET /library`, `If-None-Match`)\n\n| interval | pollers | writes/s | p50 | p99 | requests/s | DB queries/s (est.) |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in &polls {
        let _ = writeln!(
            md,
            "| {} ms | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
            p.interval_ms,
            p.pollers,
            p.write_rate,
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.requests_per_s,
            p.queries_per_s
        );
    }
    md.push_str(&mixed_table(&mixed));
    md.push_str(&w6_md);
    let _ = writeln!(
        md,
        "\nLibrarian server process after the run: {:.1} s CPU, {} KiB RSS.",
        server_cpu.cpu_seconds, server_cpu.rss_kib
    );
    let json = json!({
        "w1": w1, "w1_floor": w1_floor, "w2": w2, "w2_floor": w2_floor, "w3": w3, "w4": w4, "w5": w5,
        "polling": polls, "mixed": mixed, "w6": w6_json, "server": server_cpu,
    });
    drop(two);
    Ok((md, json))
}

fn mixed_table(mixed: &[workloads::Mixed]) -> String {
    let mut md = String::new();
    md.push_str("\n### Mixed tenants: small libraries edited alone, then beside one big library\n\n| small libraries | big library items | sessions on | big edited | small p50 | small p99 | small max | big p50 | big p99 |\n|---:|---:|---|---|---:|---:|---:|---:|---:|\n");
    for m in mixed {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            m.small_libraries,
            m.big_items,
            if m.patches { "patches" } else { "snapshots" },
            if m.with_big { "yes" } else { "no" },
            m.small.p50_ms,
            m.small.p99_ms,
            m.small.max_ms,
            m.big.map_or("–".into(), |b| format!("{:.1}", b.p50_ms)),
            m.big.map_or("–".into(), |b| format!("{:.1}", b.p99_ms)),
        );
    }
    md.push('\n');
    for patches in [false, true] {
        let alone = mixed.iter().find(|m| m.patches == patches && !m.with_big);
        let beside = mixed.iter().find(|m| m.patches == patches && m.with_big);
        if let (Some(alone), Some(beside)) = (alone, beside) {
            let ratio = beside.small.p99_ms / alone.small.p99_ms.max(0.001);
            let _ = writeln!(
                md,
                "Small libraries' p99 beside the big one ÷ alone, {}: {:.2}{} (p50: {:.2}).",
                if patches { "patches" } else { "snapshots" },
                ratio,
                if patches {
                    if ratio <= 1.5 {
                        " (target ≤ 1.5: met)"
                    } else {
                        " (target ≤ 1.5: not met)"
                    }
                } else {
                    ""
                },
                beside.small.p50_ms / alone.small.p50_ms.max(0.001)
            );
        }
    }
    md
}

/// W6, its resume and (with `with_mixed`) mixed tenants with and without patches; markdown and
/// JSON.
async fn run_w6(
    librarian: &Target,
    s: &Sizes,
    with_mixed: bool,
) -> anyhow::Result<(String, Value)> {
    use w6::Mode;
    eprintln!("W6");
    let modes = [Mode::Snapshots, Mode::PatchesVerified, Mode::PatchesApplied];
    let (rows, filled) = w6::w6(librarian, &s.w6_items, s.w6_sessions, s.w6_edits, &modes).await?;
    eprintln!("W6 resume");
    let mut resumes = Vec::new();
    let (others, missed, attempts) = s.w6_resume;
    for lib in &filled {
        resumes.extend(w6::resume(librarian, lib, others, missed, attempts).await?);
    }
    drop(filled);
    let mut mixed = Vec::new();
    if with_mixed {
        eprintln!("W6 mixed tenants, snapshots and patches");
        mixed =
            workloads::mixed(librarian, s.mixed.0, s.mixed.1, s.mixed.2, &[false, true]).await?;
    }
    let history = librarian.metric("librarian_patch_history_bytes").await;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### W6: large libraries, full snapshots vs patch frames ({} sessions, single-row edits one at a time)\n\n\
         Each edit replaces one context block's content (~500 bytes), the blocks taken at a fixed stride all over the library (the server hashes the canonical snapshot from the first changed row on). Latency in ms: send → the last \
         session holds the version. \"Snapshots\": no `?patches=1`, a full snapshot per version, of \
         which the session reads only the version (no parsing, as in W1). \"Applied + digest \
         checked\": `?patches=1`, each patch parsed and applied to the library the session holds, \
         and the whole library re-serialized and hashed against the patch's digest before the \
         version counts (what the SDKs do; all {} clients share the bench's 2 threads). \"Applied \
         (digest checked at the end)\": the version counts once applied; each session checks \
         the digest of what it holds once, after the last edit (a patch applied wrongly on the \
         way leaves its row wrong); checking after every edit instead left the server idle and \
         its caches cold for the next edit. Bytes: text frame payloads a session \
         received per edit (all frames, incl. `presence` and `status`; then `snapshot`/`patch` \
         only). Frame − row: the largest patch frame minus the upserted rows' JSON.\n",
        s.w6_sessions, s.w6_sessions
    );
    md.push_str("| items | snapshot bytes | mode | p50 | p99 | max | bytes/session/edit | of which snapshot/patch | largest frame | frame − row | server CPU ms/edit | bench CPU ms/edit | apply ms | digest check ms |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let patched = r.mode != Mode::Snapshots;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} | {:.2} | {:.2} | {} | {} |",
            r.items,
            r.snapshot_bytes,
            r.mode.label(),
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.bytes_per_session_per_edit,
            r.library_bytes_per_session_per_edit,
            r.max_library_frame,
            if patched {
                r.max_patch_overhead.to_string()
            } else {
                "–".into()
            },
            r.server_cpu_ms_per_edit,
            r.bench_cpu_ms_per_edit,
            if patched {
                format!("{:.3}", r.apply_ms)
            } else {
                "–".into()
            },
            if patched {
                format!("{:.2}", r.verify_ms)
            } else {
                "–".into()
            },
        );
    }
    md.push_str("\nWhere an edit's time goes, per row: the server's mean library reload (`librarian_reload_seconds`: database read, then serializing, hashing and diffing the whole library), its mean commit → frame handed to the socket per session (`librarian_ws_commit_to_frame_seconds`), and the build's parts timed in the bench's process on the same library with the same code (median of 5; parse: a client parsing the full snapshot).\n\n| items | mode | p50 | reload ms | commit → frame ms | serialize ms | hash ms | diff ms | parse ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let opt = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.2}"));
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            r.items,
            r.mode.label(),
            r.latency.p50_ms,
            opt(r.reload_ms),
            opt(r.commit_to_frame_ms),
            opt(r.build.map(|b| b.serialize_ms)),
            opt(r.build.map(|b| b.hash_ms)),
            opt(r.build.map(|b| b.diff_ms)),
            opt(r.build.map(|b| b.parse_ms)),
        );
    }
    let bad: u64 = rows.iter().map(|r| r.mismatches + r.failures).sum();
    let _ = writeln!(
        md,
        "\nDigest mismatches or patches that could not be applied: {bad}. Row size: {} bytes.\n",
        rows.iter().map(|r| r.row_bytes).max().unwrap_or(0)
    );
    let find = |items: usize, mode: Mode| rows.iter().find(|r| r.items == items && r.mode == mode);
    let (small, large) = (
        s.w6_items.first().copied().unwrap_or(0),
        s.w6_items.last().copied().unwrap_or(0),
    );
    for mode in modes {
        if let (Some(a), Some(b)) = (find(small, mode), find(large, mode)) {
            let ratio = b.latency.p50_ms / a.latency.p50_ms.max(0.001);
            let _ = writeln!(
                md,
                "- p50 at {large} items ÷ p50 at {small}, {}: {ratio:.2}{}",
                mode.label(),
                if mode == Mode::Snapshots {
                    String::new()
                } else {
                    format!(
                        " (target ≤ 3: {})",
                        if ratio <= 3.0 { "met" } else { "not met" }
                    )
                }
            );
        }
    }
    for &items in &s.w6_items {
        if let (Some(full), Some(p)) = (
            find(items, Mode::Snapshots),
            find(items, Mode::PatchesVerified),
        ) {
            let row_limit = 2048 + p.row_bytes;
            let _ = writeln!(
                md,
                "- {items} items: bytes with patches ÷ without {:.4} (all frames), {:.4} (snapshot/patch frames); largest patch frame {} B vs 2 KB + the row = {} B ({})",
                p.bytes_per_session_per_edit / full.bytes_per_session_per_edit.max(1.0),
                p.library_bytes_per_session_per_edit
                    / full.library_bytes_per_session_per_edit.max(1.0),
                p.max_library_frame,
                row_limit,
                if p.max_library_frame <= row_limit {
                    "met"
                } else {
                    "not met"
                }
            );
        }
    }
    let _ = writeln!(
        md,
        "\n### W6: resume after {missed} missed versions (`?since_version=v`, with and without `&patches=1`)\n\n\
         A session holding version v leaves; {missed} edits commit, with {others} other sessions on the library \
         or with nobody on it; it comes back. Bytes: everything it received until it held the latest \
         version; time: from starting to connect to holding it, applied and digest-checked (the snapshot \
         parsed and checked too). Median of {attempts} (min–max).\n"
    );
    md.push_str("| items | meanwhile | resume | answered with | bytes | of which snapshot/patch | time to live ms |\n|---:|---|---|---|---:|---:|---:|\n");
    for r in &resumes {
        let range = |xs: &[f64]| {
            let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = xs.iter().copied().fold(0.0, f64::max);
            format!("{:.1} ({min:.1}–{max:.1})", w6::median(xs).unwrap_or(0.0))
        };
        let mut answered = r.answered_with.clone();
        answered.dedup();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.items,
            if r.others_connected {
                format!("{others} sessions on it")
            } else {
                "nobody on it".into()
            },
            if r.patches {
                "since_version + patches"
            } else {
                "since_version"
            },
            answered.join(", "),
            w6::median(&r.bytes).unwrap_or(0),
            w6::median(&r.library_bytes).unwrap_or(0),
            range(&r.time_to_live_ms),
        );
    }
    if with_mixed {
        md.push_str(&mixed_table(&mixed));
    } else {
        md.push_str("\nMixed tenants with patches: the rows \"patches\" of the mixed tenants table above.\n");
    }
    let largest = rows.iter().max_by_key(|r| r.snapshot_bytes);
    let _ = writeln!(
        md,
        "\nLargest library run: {} items, {} bytes per full snapshot frame. Patch history: {}.",
        largest.map_or(0, |r| r.items),
        largest.map_or(0, |r| r.snapshot_bytes),
        history.map_or(
            "not exposed in /metrics (server RSS after each W6 row is in the JSON)".into(),
            |b| format!("{b:.0} bytes held (librarian_patch_history_bytes)")
        )
    );
    let json =
        json!({ "edits": rows, "resume": resumes, "mixed": mixed, "patch_history_bytes": history });
    Ok((md, json))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("librarian-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn header(cli: &Cli) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "# Benchmarks\n\nProduced by `librarian-bench{}` (see `cargo run --release -p librarian-bench -- --help`).\n\n\
         Machine: {cpu}, {cores} cores, {mem} GiB, Linux {}. Client, server and database share it, so\n\
         figures are comparable within one run only. Latency: from sending a write to the moment the\n\
         last of the user's sessions holds a snapshot with its version. The floor does only what the\n\
         job physically requires (commit, one read transaction, serialize once, write to raw\n\
         WebSockets) and runs in the bench's process; its writes arrive over a WebSocket instead of HTTP.\n",
        if cli.quick { " --quick" } else { "" },
        kernel.trim()
    )
}
