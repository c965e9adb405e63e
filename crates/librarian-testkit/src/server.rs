//! The real `librarian` binary, started for a test on port 0 in a fresh working directory.

use crate::ws::PATIENCE;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::watch;

/// A running `librarian serve`; killed on drop.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    logs: Logs,
    _tmp: Option<TempDir>,
}

/// The server's log lines (every process started in this [`TestServer`], in order), and how
/// many there are, to wait for a new one.
#[derive(Clone)]
struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Logs {
    fn new() -> Logs {
        Logs {
            lines: Arc::default(),
            count: Arc::new(watch::Sender::new(0)),
        }
    }

    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
            self.count.send_replace(lines.len());
        }
    }
}

/// The path of the `librarian` binary: `$LIBRARIAN_BIN`, else the one cargo built for this
/// test run, else the one next to the running executable (or one directory up, for tests and
/// examples, which live in `deps/` and `examples/`).
pub fn binary() -> PathBuf {
    for var in ["LIBRARIAN_BIN", "CARGO_BIN_EXE_librarian"] {
        if let Ok(path) = std::env::var(var) {
            return PathBuf::from(path);
        }
    }
    let name = format!("librarian{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("current exe");
    let here = exe.parent().expect("exe dir");
    let sibling = here.join(&name);
    if sibling.is_file() {
        return sibling;
    }
    here.parent().expect("target dir").join(name)
}

impl TestServer {
    /// Starts `librarian serve` in a new temporary directory, with `env` set, and waits for it
    /// to log the address it bound.
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::start_in(&dir, env);
        server._tmp = Some(tmp);
        server
    }

    /// Starts `librarian serve` in `dir` (which the caller keeps), bound to port 0.
    pub fn start_in(dir: &Path, env: &[(&str, &str)]) -> TestServer {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let logs = Logs::new();
        let (child, addr) = spawn(dir, &env, &logs);
        TestServer {
            child,
            base_url: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            env,
            logs,
            _tmp: None,
        }
    }

    /// `librarian token <user>` with this server's directory and environment (so the same
    /// secret).
    pub fn token(&self, user: &str) -> String {
        let out = Command::new(binary())
            .args(["token", user])
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run librarian token");
        assert!(
            out.status.success(),
            "librarian token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8 token")
            .trim()
            .to_owned()
    }

    /// Every log line the server has written so far (stderr).
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Waits until the server has logged a line that `matches`, and returns it. `what` names
    /// the line for the failure message. The wait is a hang guard ([`PATIENCE`]), never a
    /// timing assertion. The log is one ordered stream: once a line is here, so is every line
    /// logged before it.
    pub async fn wait_for_log(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for_logs(1, what, matches).await.remove(0)
    }

    /// Waits until the server has logged at least `n` lines that `matches`; returns them all.
    pub async fn wait_for_logs(
        &self,
        n: usize,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut count = self.logs.count.subscribe();
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                count.borrow_and_update();
                let found: Vec<String> = self.logs().into_iter().filter(|l| matches(l)).collect();
                if found.len() >= n {
                    return found;
                }
                // The sender lives in `self`: this only ends with a new line.
                let _ = count.changed().await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("the server never logged {n}× {what}"))
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base_url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect for /metrics");
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("send GET /metrics");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("no /metrics response in time")
            .expect("read /metrics");
        let raw = String::from_utf8(raw).expect("utf-8 /metrics");
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "GET /metrics: {head}");
        let chunked = head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
        Metrics::parse(if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        })
    }

    /// Waits until the sum of metric `name` over the samples carrying `labels` satisfies
    /// `ok`, and returns it (hang guard only: [`PATIENCE`]).
    pub async fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.metrics().await.get(name, labels);
            if ok(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}{labels:?} stayed at {value}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The server's process id (to read its memory from /proc, or to kill it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server process's resident memory, from /proc (0 where unavailable).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }

    /// `{base_url}{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Kills the process (SIGKILL) and starts it again in the same directory, on the same
    /// address, with the same environment: a server that went away and came back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again after [`TestServer::kill`], on the same address.
    pub fn restart(&mut self) {
        let addr = self.base_url.trim_start_matches("http://").to_owned();
        let mut env = self.env.clone();
        env.push(("LIBRARIAN__SERVER__BIND".into(), addr.clone()));
        let (child, bound) = spawn(&self.dir, &env, &self.logs);
        assert_eq!(bound, addr, "restarted on another address");
        self.child = child;
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for librarian")
    }
}

/// Spawns `librarian serve` and waits for the address it logs.
fn spawn(dir: &Path, env: &[(String, String)], logs: &Logs) -> (Child, String) {
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .current_dir(dir)
        .env("LIBRARIAN__SERVER__BIND", "127.0.0.1:0")
        .env("LIBRARIAN__LOG__FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn librarian");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = logs.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Shown by the test harness only when the test fails.
            eprintln!("[librarian] {line}");
            kept.push(line.clone());
            if let Some(addr) = bound_address(&line).filter(|_| !sent) {
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => (child, addr),
        Err(_) => {
            let _ = child.kill();
            panic!("librarian did not report its address within 60 s");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server logs (JSON, on stderr) `{…,"message":"listening","address":"127.0.0.1:PORT",…}`.
fn bound_address(line: &str) -> Option<String> {
    if !line.contains("\"listening\"") {
        return None;
    }
    let start = line.find("\"address\":\"")? + "\"address\":\"".len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// A chunked HTTP/1.1 body, decoded.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The samples of a Prometheus text exposition (`GET /metrics`).
pub struct Metrics {
    /// The exposition as served.
    pub text: String,
    /// `(name, labels, value)`, one per sample line.
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Parses `name{k="v",…} value` lines (comments and blank lines skipped).
    pub fn parse(text: String) -> Metrics {
        let samples = text
            .lines()
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
            .collect();
        Metrics { text, samples }
    }

    /// The sum of `name` over every sample that carries all of `labels` (0 if none does).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
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
}
