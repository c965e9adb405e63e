//! The real `librarian` binary: starts from nothing with the default config, answers health
//! and readiness, shuts down gracefully, and `librarian migrate` is idempotent — on SQLite
//! and, when available, PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_testkit::server::{TestServer, binary};
use librarian_testkit::{TestDb, both_backends};
use std::path::Path;
use std::process::Command;

async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// Runs `librarian migrate` in `dir`; returns how many migrations it reports it applied.
fn migrate(dir: &Path, env: &[(&str, &str)]) -> i64 {
    let out = Command::new(binary())
        .arg("migrate")
        .current_dir(dir)
        .env("LIBRARIAN__LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .output()
        .expect("run librarian migrate");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "librarian migrate failed: {logs}");
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|l| l["migrations_applied"].as_i64())
        .unwrap_or_else(|| panic!("no migrations_applied in: {logs}"))
}

fn db_env(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![("LIBRARIAN__DATABASE__URL", db.url().to_owned())]
}

#[tokio::test]
async fn a_fresh_directory_serves_with_the_default_config() {
    let server = TestServer::start(&[]);
    assert_eq!(get(&format!("{}/healthz", server.base_url)).await.0, 200);
    let (status, body) = get(&format!("{}/readyz", server.base_url)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    assert!(
        server.dir.join("data/librarian.db").is_file(),
        "the default SQLite file lives under ./data"
    );
    let status = server.stop();
    assert!(
        status.success(),
        "SIGTERM should shut down cleanly, got {status}"
    );
}

#[tokio::test]
async fn a_config_file_given_with_config_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("librarian.toml");
    std::fs::write(&file, "[database]\nurl = \"sqlite://elsewhere/lib.db\"\n").unwrap();
    let out = Command::new(binary())
        .args(["migrate", "--config"])
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("elsewhere/lib.db").is_file());
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn a_bad_setting_stops_the_binary_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .arg("migrate")
        .current_dir(dir.path())
        .env("LIBRARIAN__DATABASE__URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.url"), "{err}");
}

#[test]
fn pretty_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // `output()` pipes stderr: not a terminal, as under systemd or a log collector.
    let out = Command::new(binary())
        .arg("migrate")
        .current_dir(dir.path())
        .env("LIBRARIAN__LOG__FORMAT", "pretty")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(logs.contains("database ready"), "{logs}");
    assert!(
        !logs.contains('\x1b'),
        "ANSI escape codes in piped logs: {logs:?}"
    );
}

both_backends! {
    async fn migrate_is_idempotent_and_the_server_is_ready_after_it(db) {
        let dir = tempfile::tempdir().unwrap();
        let env = db_env(&db);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(migrate(dir.path(), &env) >= 1);
        assert_eq!(migrate(dir.path(), &env), 0);
        let server = TestServer::start_in(dir.path(), &env);
        let (status, _) = get(&format!("{}/readyz", server.base_url)).await;
        assert_eq!(status, 200);
    }
}
