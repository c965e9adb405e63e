//! The JavaScript clients' suites (clients/js: `@librarian/client` and `@librarian/react` in
//! Vitest, the example app in Chromium through Playwright) against the `librarian` binary this
//! `cargo test` built, so that the README's one test command runs them too. Before them: the
//! TypeScript types generated from the OpenAPI document must match what the built server
//! serves, and the embedded `/librarian.js` must match a fresh build of `@librarian/client`.
//!
//! Skipped (with a note) when Node.js or npm is missing, unless `LIBRARIAN_TEST_REQUIRE_NODE=1`
//! (CI sets it): then a missing Node fails.

use librarian_testkit::server::TestServer;
use std::path::{Path, PathBuf};
use std::process::Command;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

/// `node --version` and `npm --version` answer.
fn have_node() -> bool {
    ["node", "npm"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs `program args` in clients/js with the built binary named; panics with the command on failure.
fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(js_dir())
        .env("LIBRARIAN_BIN", env!("CARGO_BIN_EXE_librarian"))
        .status()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"));
    assert!(
        status.success(),
        "`{program} {}` in clients/js failed ({status})",
        args.join(" ")
    );
}

#[test]
fn javascript_clients_pass_their_suites_against_the_built_server() {
    if !have_node() {
        if std::env::var("LIBRARIAN_TEST_REQUIRE_NODE").is_ok_and(|v| v == "1") {
            panic!("LIBRARIAN_TEST_REQUIRE_NODE=1 but node or npm is missing");
        }
        eprintln!(
            "note: JavaScript suites skipped (node and npm not found; install Node.js >= 20.19)"
        );
        return;
    }
    // The lockfile, exactly (reproducible; no network when npm's cache has it all).
    run(
        "npm",
        &["ci", "--no-audit", "--no-fund", "--prefer-offline"],
    );

    // The committed types are those of the document the built server serves, not only of
    // the one `librarian openapi` prints.
    let server = TestServer::start(&[]);
    run(
        "node",
        &[
            "scripts/generate-types.mjs",
            "--check",
            "--from",
            &server.base_url,
        ],
    );
    drop(server);

    // bundle:check, build (tsc strict), then every suite; each starts its own servers.
    run("npm", &["test"]);
}
