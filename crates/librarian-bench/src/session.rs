//! A measuring WebSocket session: it reads only the version of each snapshot frame (so the
//! client's own JSON parsing does not cloud the measurement) and publishes it on a `watch`.
//! Against Librarian it also acknowledges each snapshot with `seen`, as the SDKs do, and
//! counts the `presence` frames that causes.

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PREFIX: &str = r#"{"type":"snapshot","version":"#;

/// One connected session.
pub struct Session {
    pub version: watch::Receiver<i64>,
    /// Snapshot frames received.
    pub snapshots: Arc<AtomicU64>,
    /// `presence` frames received.
    pub presence: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The version a snapshot frame carries, read from its prefix.
pub fn frame_version(text: &str) -> Option<i64> {
    let rest = text.strip_prefix(PREFIX)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

impl Session {
    /// Connects to `url` (a full `ws://…` URL, token included); with `receipts`, answers each
    /// snapshot with `seen`.
    pub async fn connect(url: &str, receipts: bool) -> anyhow::Result<Session> {
        let request = url.into_client_request()?;
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        let (tx, version) = watch::channel(-1);
        let snapshots = Arc::new(AtomicU64::new(0));
        let presence = Arc::new(AtomicU64::new(0));
        let (counter, presence_counter) = (snapshots.clone(), presence.clone());
        let task = tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                if text.starts_with(r#"{"type":"presence""#) {
                    presence_counter.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(v) = frame_version(&text) {
                    if receipts {
                        let seen = format!(r#"{{"type":"seen","version":{v}}}"#);
                        if ws.send(Message::Text(seen.into())).await.is_err() {
                            break;
                        }
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    tx.send_if_modified(|held| {
                        let newer = v > *held;
                        if newer {
                            *held = v;
                        }
                        newer
                    });
                }
            }
        });
        Ok(Session {
            version,
            snapshots,
            presence,
            task,
        })
    }

    /// Waits until this session holds at least `version`; false on timeout.
    pub async fn reach(&mut self, version: i64, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.version.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
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
    fn the_version_is_read_from_the_frame_prefix() {
        assert_eq!(
            frame_version(r#"{"type":"snapshot","version":42,"projects":[]}"#),
            Some(42)
        );
        assert_eq!(
            frame_version(r#"{"type":"status","state":"live","version":3}"#),
            None
        );
    }
}
