//! A measuring WebSocket session. By default it reads only the version of each snapshot frame
//! (so the client's own JSON parsing does not cloud the measurement) and publishes it on a
//! `watch`. Against Librarian it also acknowledges each snapshot with `seen`, as the SDKs do,
//! and counts the `presence` frames that causes.
//!
//! With [`Hold`], it keeps the library itself, as an SDK does: it parses each `snapshot`,
//! applies each `patch` (`?patches=1`) and checks the digest, either before it publishes the
//! version ([`Verify::Inline`], what the SDKs do) or later, when the workload asks
//! ([`Session::verify_now`], so that the check's CPU stays out of the timed part). Either way
//! it counts the bytes of every text frame it receives and times its own parsing, applying and
//! hashing.

use futures_util::{SinkExt, StreamExt};
use librarian_core::LibrarySnapshot;
use librarian_core::patch::Patch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SNAPSHOT: &str = r#"{"type":"snapshot","#;
const PATCH: &str = r#"{"type":"patch","#;

/// When a holding session checks the digest of what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// After applying, before publishing the version (what the SDKs do).
    Inline,
    /// Only when the workload calls [`Session::verify_now`].
    Deferred,
}

/// How a session treats the library frames it receives.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Answer each version with `seen`.
    pub receipts: bool,
    /// Keep the library (parse snapshots, apply patches); `None`: read the version only.
    pub hold: Option<Verify>,
}

impl Options {
    /// The plain measuring session: versions only, with receipts.
    pub const VERSIONS: Options = Options {
        receipts: true,
        hold: None,
    };
}

/// The library a holding session has, and the digest the server gave for its version.
#[derive(Debug, Clone)]
pub struct Held {
    pub library: LibrarySnapshot,
    pub digest: Option<String>,
    pub verified: bool,
}

/// What a session received and what its own work cost; shared with its reader task.
#[derive(Debug, Default)]
pub struct Counters {
    /// Text frame payload bytes, every frame type.
    pub bytes: AtomicU64,
    /// Bytes of `snapshot` and `patch` frames.
    pub library_bytes: AtomicU64,
    /// The largest `snapshot` or `patch` frame since the last [`Counters::reset_max`].
    pub max_library_frame: AtomicU64,
    /// The largest `patch` frame minus the bytes of the rows it upserts (the frame's overhead
    /// over the change itself), since the last reset.
    pub max_patch_overhead: AtomicU64,
    pub snapshots: AtomicU64,
    pub patches: AtomicU64,
    pub presence: AtomicU64,
    /// Parsing and applying snapshot and patch frames (holding sessions).
    pub apply_ns: AtomicU64,
    /// Re-serializing and hashing what is held, and how many times.
    pub verify_ns: AtomicU64,
    pub verifies: AtomicU64,
    /// Digests that did not match, patches that could not be applied (each answered with
    /// `resync`), frames that could not be parsed.
    pub mismatches: AtomicU64,
    pub failures: AtomicU64,
    /// `hello` said `"patches":true`.
    pub patches_on: AtomicU64,
}

impl Counters {
    pub fn reset_max(&self) {
        self.max_library_frame.store(0, Ordering::Relaxed);
        self.max_patch_overhead.store(0, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One connected session.
pub struct Session {
    pub version: watch::Receiver<i64>,
    pub counters: Arc<Counters>,
    held: Arc<Mutex<Option<Held>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The version a snapshot frame carries, read from its tail (the canonical snapshot ends with
/// `"version":N}`), or the version a patch frame leads to, read from its head.
pub fn frame_version(text: &str) -> Option<i64> {
    if text.starts_with(SNAPSHOT) {
        let body = text.strip_suffix('}')?;
        let at = body.rfind(r#","version":"#)? + r#","version":"#.len();
        return body[at..].parse().ok();
    }
    let rest = text.strip_prefix(PATCH)?;
    let head = &rest[..floor_char_boundary(rest, 160)];
    let at = head.find(r#""version":"#)? + r#""version":"#.len();
    let rest = &rest[at..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// The digest in a snapshot frame's head.
fn frame_digest(text: &str) -> Option<String> {
    let head = &text[..floor_char_boundary(text, 160)];
    let at = head.find(r#""digest":""#)? + r#""digest":""#.len();
    let rest = &text[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn elapsed_ns(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// Checks `held` against its digest (if not done yet); returns how long it took.
fn verify(held: &mut Held, counters: &Counters) -> Option<Duration> {
    if held.verified {
        return None;
    }
    let digest = held.digest.as_deref()?;
    let started = Instant::now();
    let ok = held.library.verify(digest).is_ok();
    let took = started.elapsed();
    counters
        .verify_ns
        .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    counters.verifies.fetch_add(1, Ordering::Relaxed);
    if ok {
        held.verified = true;
    } else {
        counters.mismatches.fetch_add(1, Ordering::Relaxed);
    }
    Some(took)
}

/// What a holding session does with one `snapshot` or `patch` frame: the version it holds
/// afterwards, or `Err(())` if it should ask for the whole library (`resync`).
fn take_frame(
    text: &str,
    held: &Mutex<Option<Held>>,
    verify_mode: Verify,
    counters: &Counters,
) -> Result<Option<i64>, ()> {
    let started = Instant::now();
    let mut guard = held.lock().map_err(|_| ())?;
    let next = if text.starts_with(SNAPSHOT) {
        let library: LibrarySnapshot = serde_json::from_str(text).map_err(|_| {
            counters.failures.fetch_add(1, Ordering::Relaxed);
        })?;
        let held_version = guard.as_ref().map(|h| h.library.version);
        // Never a step back, unless the server says so (`reset`) or it answers a `resync`.
        let reset = text[..floor_char_boundary(text, 40)].contains(r#""reset":true"#);
        if !reset && held_version.is_some_and(|v| v > library.version) {
            return Ok(held_version);
        }
        *guard = Some(Held {
            library,
            digest: frame_digest(text),
            verified: false,
        });
        guard.as_mut()
    } else {
        let patch: Patch = serde_json::from_str(text).map_err(|_| {
            counters.failures.fetch_add(1, Ordering::Relaxed);
        })?;
        let rows: usize = [
            patch.projects.as_ref().map_or(0, |c| {
                serde_json::to_string(&c.upsert).map_or(0, |s| s.len())
            }),
            patch.context_blocks.as_ref().map_or(0, |c| {
                serde_json::to_string(&c.upsert).map_or(0, |s| s.len())
            }),
            patch.saved_prompts.as_ref().map_or(0, |c| {
                serde_json::to_string(&c.upsert).map_or(0, |s| s.len())
            }),
        ]
        .iter()
        .sum();
        counters
            .max_patch_overhead
            .fetch_max(text.len().saturating_sub(rows) as u64, Ordering::Relaxed);
        let Some(h) = guard.as_mut() else {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            return Err(());
        };
        if h.library.apply(&patch).is_err() {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        h.digest = Some(patch.digest);
        h.verified = false;
        Some(h)
    };
    counters
        .apply_ns
        .fetch_add(elapsed_ns(started), Ordering::Relaxed);
    let Some(h) = next else { return Err(()) };
    if verify_mode == Verify::Inline {
        verify(h, counters);
        if !h.verified {
            return Err(());
        }
    }
    Ok(Some(h.library.version))
}

impl Session {
    /// Connects to `url` (a full `ws://…` URL, token included) and reads versions only; with
    /// `receipts`, answers each snapshot with `seen`.
    pub async fn connect(url: &str, receipts: bool) -> anyhow::Result<Session> {
        Self::connect_with(
            url,
            Options {
                receipts,
                hold: None,
            },
            None,
        )
        .await
    }

    /// Connects to `url` with `options`, holding `held` to begin with (a resume).
    pub async fn connect_with(
        url: &str,
        options: Options,
        held: Option<Held>,
    ) -> anyhow::Result<Session> {
        let request = url.into_client_request()?;
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        let (tx, version) = watch::channel(held.as_ref().map_or(-1, |h| h.library.version));
        let counters = Arc::new(Counters::default());
        let held = Arc::new(Mutex::new(held));
        let (c, h) = (counters.clone(), held.clone());
        let task = tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let len = text.len() as u64;
                c.bytes.fetch_add(len, Ordering::Relaxed);
                let library_frame = text.starts_with(SNAPSHOT) || text.starts_with(PATCH);
                if text.starts_with(r#"{"type":"presence""#) {
                    c.presence.fetch_add(1, Ordering::Relaxed);
                } else if text.starts_with(r#"{"type":"hello""#)
                    && text.contains(r#""patches":true"#)
                {
                    c.patches_on.store(1, Ordering::Relaxed);
                }
                if !library_frame {
                    continue;
                }
                c.library_bytes.fetch_add(len, Ordering::Relaxed);
                c.max_library_frame.fetch_max(len, Ordering::Relaxed);
                if text.starts_with(SNAPSHOT) {
                    c.snapshots.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.patches.fetch_add(1, Ordering::Relaxed);
                }
                let v = match options.hold {
                    None => frame_version(&text),
                    Some(mode) => match take_frame(&text, &h, mode, &c) {
                        Ok(v) => v,
                        Err(()) => {
                            let resync = Message::Text(r#"{"type":"resync"}"#.into());
                            if ws.send(resync).await.is_err() {
                                break;
                            }
                            None
                        }
                    },
                };
                let Some(v) = v else { continue };
                if options.receipts {
                    let seen = format!(r#"{{"type":"seen","version":{v}}}"#);
                    if ws.send(Message::Text(seen.into())).await.is_err() {
                        break;
                    }
                }
                tx.send_if_modified(|held| {
                    let newer = v > *held;
                    if newer {
                        *held = v;
                    }
                    newer
                });
            }
        });
        Ok(Session {
            version,
            counters,
            held,
            task,
        })
    }

    /// Waits until this session holds at least `version`; false on timeout.
    pub async fn reach(&mut self, version: i64, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.version.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Checks what a holding session holds against its digest now, if not done yet; returns
    /// how long that took (`None` if there was nothing to check).
    pub fn verify_now(&self) -> Option<Duration> {
        let mut guard = self.held.lock().ok()?;
        verify(guard.as_mut()?, &self.counters)
    }

    /// What a holding session holds (to resume from it in another session).
    pub fn held(&self) -> Option<Held> {
        self.held.lock().ok()?.clone()
    }
}

/// Waits until every session holds at least `version`; false if one did not in `limit`.
pub async fn all_reach(sessions: &mut [Session], version: i64, limit: Duration) -> bool {
    for s in sessions.iter_mut() {
        if !s.reach(version, limit).await {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_frame() {
        assert_eq!(
            frame_version(r#"{"type":"snapshot","projects":[],"version":42}"#),
            Some(42)
        );
        assert_eq!(
            frame_version(
                r#"{"type":"snapshot","reset":true,"digest":"sha256:00ff","projects":[{"version":1}],"members":[],"version":7}"#
            ),
            Some(7)
        );
        assert_eq!(
            frame_version(r#"{"type":"patch","from_version":3,"version":5,"digest":"x"}"#),
            Some(5)
        );
        assert_eq!(
            frame_version(r#"{"type":"status","state":"live","version":3}"#),
            None
        );
        assert_eq!(
            frame_digest(r#"{"type":"snapshot","digest":"sha256:00ff","projects":[],"version":7}"#)
                .as_deref(),
            Some("sha256:00ff")
        );
    }

    #[test]
    fn a_holding_session_applies_a_patch_and_checks_its_digest() {
        let before = LibrarySnapshot {
            version: 3,
            ..Default::default()
        };
        let after = LibrarySnapshot {
            version: 4,
            ..Default::default()
        };
        let snapshot = format!(
            r#"{{"type":"snapshot","digest":"{}",{}"#,
            before.digest(),
            String::from_utf8_lossy(&before.canonical_json()[1..])
        );
        let patch = librarian_core::patch::diff(&before, &after, after.digest()).frame_json();
        let held = Mutex::new(None);
        let counters = Counters::default();
        assert_eq!(
            take_frame(&snapshot, &held, Verify::Inline, &counters),
            Ok(Some(3))
        );
        assert_eq!(
            take_frame(&patch, &held, Verify::Inline, &counters),
            Ok(Some(4))
        );
        assert_eq!(Counters::get(&counters.verifies), 2);
        assert_eq!(Counters::get(&counters.mismatches), 0);
        // The same patch again no longer starts at what is held.
        assert_eq!(
            take_frame(&patch, &held, Verify::Inline, &counters),
            Err(())
        );
    }
}
