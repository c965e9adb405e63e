//! The background task behind a [`Library`](crate::Library): one WebSocket session at a time,
//! reconnecting with backoff and `since_version`, resending unacknowledged mutations with their
//! original `mutation_id`, and resolving each mutation once its version is in a snapshot.

use crate::{Applied, ClientError, SyncStatus};
use futures_util::{SinkExt, StreamExt};
use librarian_core::protocol::{MutateFrame, ServerFrame, SyncState};
use librarian_core::{LibrarySnapshot, Op};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub(crate) enum Command {
    Mutate(Box<Pending>),
    Close,
}

/// A mutation the server has not yet confirmed into a snapshot this client holds.
pub(crate) struct Pending {
    pub mutation_id: String,
    pub op: Op,
    pub id: Option<Uuid>,
    pub if_version: Option<i64>,
    pub data: Option<serde_json::Value>,
    pub done: oneshot::Sender<Result<Applied, ClientError>>,
    /// Set by the `ack`; the mutation resolves once a snapshot at least this new arrives.
    pub acked: Option<Applied>,
}

impl Pending {
    fn frame(&self) -> String {
        let frame = MutateFrame {
            mutation_id: self.mutation_id.clone(),
            op: self.op,
            id: self.id,
            if_version: self.if_version,
            data: self.data.clone(),
        };
        let mut value = serde_json::to_value(frame).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("type".into(), "mutate".into());
        }
        value.to_string()
    }
}

pub(crate) struct Connection {
    url: String,
    token: String,
    snapshot: watch::Sender<Option<Arc<LibrarySnapshot>>>,
    status: watch::Sender<SyncStatus>,
    commands: mpsc::UnboundedReceiver<Command>,
    pending: Vec<Pending>,
    /// Version of the snapshot this client holds.
    held: Option<i64>,
    failures: u32,
}

enum Outcome {
    /// The handle asked to close (or was dropped).
    Closed,
    /// The connection failed or dropped; try again.
    Dropped(String),
}

impl Connection {
    pub fn new(
        url: String,
        token: String,
        snapshot: watch::Sender<Option<Arc<LibrarySnapshot>>>,
        status: watch::Sender<SyncStatus>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        Connection {
            url,
            token,
            snapshot,
            status,
            commands,
            pending: Vec::new(),
            held: None,
            failures: 0,
        }
    }
}

pub(crate) async fn run(mut c: Connection) {
    loop {
        match c.session().await {
            Outcome::Closed => break,
            Outcome::Dropped(why) => {
                c.failures += 1;
                let delay = retry_delay(c.failures);
                tracing::debug!(%why, retry_in_ms = delay.as_millis() as u64, "reconnecting");
                c.status
                    .send_replace(SyncStatus::Reconnecting { retry_in: delay });
                let wait = tokio::time::sleep(delay);
                tokio::pin!(wait);
                // Keep taking commands while waiting: new mutations queue for the next session.
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        cmd = c.commands.recv() => match cmd {
                            Some(Command::Mutate(p)) => c.pending.push(*p),
                            Some(Command::Close) | None => return,
                        },
                    }
                }
            }
        }
    }
}

fn retry_delay(failures: u32) -> Duration {
    let exp = RETRY_BASE.saturating_mul(1 << failures.saturating_sub(1).min(10));
    exp.min(RETRY_MAX)
        .mul_f64(rand::rng().random_range(0.5..=1.0))
}

impl Connection {
    async fn session(&mut self) -> Outcome {
        let url = match self.held {
            Some(v) => format!("{}?since_version={v}", self.url),
            None => self.url.clone(),
        };
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => return Outcome::Dropped(e.to_string()),
        };
        match format!("Bearer {}", self.token).parse() {
            Ok(value) => {
                request.headers_mut().insert("Authorization", value);
            }
            Err(_) => return Outcome::Dropped("the token is not a valid header value".into()),
        }
        let mut ws = match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(e) => return Outcome::Dropped(e.to_string()),
        };
        // Whatever was sent before and not acknowledged goes again, with the same id.
        for frame in self
            .pending
            .iter()
            .filter(|p| p.acked.is_none())
            .map(Pending::frame)
            .collect::<Vec<_>>()
        {
            if let Err(e) = ws.send(Message::Text(frame.into())).await {
                return Outcome::Dropped(e.to_string());
            }
        }
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Mutate(p)) => {
                        let frame = p.frame();
                        self.pending.push(*p);
                        if let Err(e) = ws.send(Message::Text(frame.into())).await {
                            return Outcome::Dropped(e.to_string());
                        }
                    }
                    Some(Command::Close) | None => {
                        let _ = ws.close(None).await;
                        return Outcome::Closed;
                    }
                },
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        self.on_frame(&text);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Outcome::Dropped(format!("closed by the server: {frame:?}"));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Outcome::Dropped(e.to_string()),
                    None => return Outcome::Dropped("connection ended".into()),
                },
            }
        }
    }

    fn on_frame(&mut self, text: &str) {
        let frame: ServerFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable frame from the server");
                return;
            }
        };
        match frame {
            ServerFrame::Hello(_) => {
                self.failures = 0;
                if self.held.is_none() {
                    self.status.send_replace(SyncStatus::Loading);
                }
            }
            ServerFrame::Snapshot(frame) => {
                // Never a step back (G9): an older snapshot than the one held is ignored,
                // unless the server says its library went back (restored from a backup).
                let snapshot = frame.library;
                if frame.reset || self.held.is_none_or(|h| snapshot.version > h) {
                    self.held = Some(snapshot.version);
                    self.snapshot.send_replace(Some(Arc::new(snapshot)));
                    self.resolve_visible();
                }
            }
            ServerFrame::Status(status) => {
                let status = match status.state {
                    SyncState::Loading => SyncStatus::Loading,
                    SyncState::Live => {
                        // A resumed session learns here that what it holds is current.
                        if let Some(v) = status.version {
                            self.held = Some(self.held.map_or(v, |h| h.max(v)));
                            self.resolve_visible();
                        }
                        SyncStatus::Live {
                            version: status.version.unwrap_or_default(),
                            synced_at: SystemTime::now(),
                        }
                    }
                    SyncState::Syncing { target_version } => SyncStatus::Syncing {
                        target: target_version,
                    },
                    SyncState::Error {
                        code,
                        message,
                        retry_in_ms,
                    } => SyncStatus::Error {
                        code,
                        message,
                        retry_in: Duration::from_millis(retry_in_ms),
                    },
                };
                self.status.send_replace(status);
            }
            ServerFrame::Ack(ack) => {
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .find(|p| p.mutation_id == ack.mutation_id)
                {
                    p.acked = Some(Applied {
                        data: ack.data,
                        library_version: ack.library_version,
                    });
                }
                self.resolve_visible();
            }
            ServerFrame::Reject(reject) => {
                if let Some(at) = self
                    .pending
                    .iter()
                    .position(|p| p.mutation_id == reject.mutation_id)
                {
                    let p = self.pending.remove(at);
                    let problem = reject.error;
                    let _ = p.done.send(Err(ClientError::Rejected {
                        status: problem["status"].as_u64().unwrap_or(0) as u16,
                        detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
                        problem,
                    }));
                }
            }
            ServerFrame::Error(e) => {
                tracing::warn!(code = %e.code, message = %e.message, "the server refused a frame");
            }
        }
    }

    /// Resolves every acknowledged mutation whose version this client now holds.
    fn resolve_visible(&mut self) {
        let Some(held) = self.held else { return };
        let mut i = 0;
        while i < self.pending.len() {
            let visible = self.pending[i]
                .acked
                .as_ref()
                .is_some_and(|a| a.library_version <= held);
            if visible {
                let p = self.pending.remove(i);
                if let Some(applied) = p.acked {
                    let _ = p.done.send(Ok(applied));
                }
            } else {
                i += 1;
            }
        }
    }
}
