//! The real `librarian` binary, started for a test on port 0 in a fresh working directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// A running `librarian serve`; killed on drop.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _tmp: Option<TempDir>,
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
        let logs = std::sync::Arc::default();
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
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
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
fn spawn(
    dir: &Path,
    env: &[(String, String)],
    logs: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> (Child, String) {
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
            if let Ok(mut kept) = kept.lock() {
                kept.push(line.clone());
            }
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
