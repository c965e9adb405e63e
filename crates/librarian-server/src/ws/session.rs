//! One WebSocket session: a single loop over the client's frames, the library's latest view,
//! its presence list, replies to mutations, the heartbeat and shutdown (the actorless pattern
//! of actix/examples `websockets/chat-actorless`).
//!
//! Revocation (DESIGN §9): every snapshot carries the library's members at its version. Before
//! a snapshot goes out the session looks its user up there: gone from the list (removed) or the
//! library deleted, the session sends `error access_revoked` and closes with 4403 instead, so
//! no snapshot at or after the removing version ever reaches them, on any instance (each loads
//! that version after its NOTIFY). A changed role is announced with `access` first.

use super::WsConfig;
use super::frames::{self, Request};
use super::transport::{Gone, Inbox, Incoming, Outbox, ReadError};
use crate::auth::{AuthUser, Authenticator, Verified};
use crate::problem::Problem;
use crate::state::AppState;
use actix_http::ws::{CloseCode, CloseReason, Message};
use actix_web::web::Bytes;
use bytestring::ByteString;
use librarian_actors::presence::{Join, SeenVersion};
use librarian_actors::{LibraryView, Snapshot, Subscribe};
use librarian_core::Role;
use librarian_core::protocol::{
    Access, AuthOk, Hello, PresenceSession, ServerFrame, Status, SyncState, close,
};
use librarian_core::time::Timestamp;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

/// The slowest link a large frame is waited for (see `Session::send`).
const SLOW_LINK_BYTES_PER_S: usize = 64 * 1024;

/// How long a closing session waits to flush its last frames and for the client's close.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Session<S> {
    pub id: Uuid,
    pub user_id: String,
    pub library_id: Uuid,
    /// The user's role, as last told to the client.
    pub role: Role,
    /// The library version at which `role` was read: an older snapshot may predate the
    /// membership, so it cannot revoke it.
    pub access_version: i64,
    /// The version the client says it holds (`?since_version=`).
    pub since_version: Option<i64>,
    /// The client asked for patch frames (`?patches=1`, DESIGN §10).
    pub patches: bool,
    /// The session's token: when it ends (replaced by each `auth` frame).
    pub token: TokenLife,
    /// Checks the tokens of `auth` frames.
    pub auth: Arc<Authenticator>,
    pub outbox: Outbox,
    pub inbox: Inbox<S>,
    pub state: Arc<AppState>,
    pub config: Arc<WsConfig>,
    pub shutdown: watch::Receiver<bool>,
    /// The connection's socket, to end it together with the session.
    pub socket: Option<crate::connection::ConnSocket>,
}

/// How long the session's token lasts.
#[derive(Debug, Clone, Copy)]
pub struct TokenLife {
    /// The token's `exp` (what `hello` and `auth_ok` say).
    pub expires_at: Timestamp,
    /// `exp` plus the leeway: the session closes with 4401 then.
    pub deadline: Instant,
}

impl TokenLife {
    pub fn of(verified: &Verified) -> TokenLife {
        let left = verified
            .valid_until
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        TokenLife {
            expires_at: verified.expires_at(),
            deadline: Instant::now() + left,
        }
    }
}

/// How a session ended.
enum End {
    /// Send this close frame.
    Close(u16, String),
    /// The user lost access: answer the mutations in flight, then `error access_revoked` and
    /// close 4403.
    Revoked(String),
    /// The client closed with this code (already answered).
    ClientClosed(u16),
    /// The client vanished: nothing more to send.
    Gone,
}

impl From<Gone> for End {
    fn from(_: Gone) -> End {
        End::Gone
    }
}

/// What the session has told its client so far.
#[derive(Default)]
struct Sent {
    /// The version the client holds: the last snapshot sent, or before that the one it
    /// resumed with. Nothing older ever goes out without `reset` (G9).
    version: Option<i64>,
    /// Snapshots sent in this session.
    snapshots: u64,
    status: Option<Status>,
    /// The client holds more than this instance's view: the reload that settles whether the
    /// instance lags (wait for it) or the database went back (reset).
    awaiting: Option<u64>,
    /// The view generation last seen (it changes when the database went back).
    generation: Option<u64>,
    /// The last snapshot sent and when this instance heard of its commit, until the client's
    /// `seen` of it is measured (`librarian_receipt_latency_seconds`).
    receipt: Option<(i64, Instant)>,
    /// The latest version the client said it applied.
    seen: Option<i64>,
    /// The client asked for the whole library (`resync`): the next frame is a full snapshot.
    needs_full: bool,
    /// The version of the last snapshot sent in answer to a `resync`: asking again for the
    /// same version gets nothing more (a client stuck on a mismatch does not loop).
    resynced: Option<i64>,
}

impl<S> Session<S>
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    pub async fn run(mut self) {
        let started = Instant::now();
        tracing::info!(session_id = %self.id, user_id = %self.user_id, "session opened");
        let end = self.serve().await;
        let (code, reason) = match end {
            End::Close(code, reason) => {
                if code != close::TOO_SLOW {
                    // An error frame just queued must go out before the close.
                    self.outbox.flush(CLOSE_WAIT).await;
                }
                self.outbox.close(Some(CloseReason {
                    code: CloseCode::from(code),
                    description: Some(reason.clone()),
                }));
                // The closing handshake: give the client a moment to answer with its close.
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while let Some(msg) = self.inbox.next().await {
                        if matches!(msg, Ok(Incoming::Close(_)) | Err(_)) {
                            break;
                        }
                    }
                })
                .await;
                (Some(code), reason)
            }
            // `serve` turns it into a `Close` after answering (`end_revoked`); kept whole here.
            End::Revoked(why) => {
                self.outbox.close(Some(CloseReason {
                    code: CloseCode::from(close::ACCESS_REVOKED),
                    description: Some(why.clone()),
                }));
                (Some(close::ACCESS_REVOKED), why)
            }
            End::ClientClosed(code) => (Some(code), "closed by the client".to_owned()),
            End::Gone => (None, "client gone".to_owned()),
        };
        tracing::info!(session_id = %self.id, user_id = %self.user_id, close_code = code,
            reason, duration_ms = started.elapsed().as_millis() as u64, "session closed");
        let Session { outbox, socket, .. } = self;
        // Nothing more to send: the body ends once the close frame is out, and with reads
        // ended actix shuts the connection down then instead of lingering (connection.rs).
        drop(outbox);
        if let Some(socket) = socket {
            socket.end_reads();
        }
    }

    async fn serve(&mut self) -> End {
        let hello = frames::frame(&ServerFrame::Hello(Hello {
            protocol: librarian_core::protocol::PROTOCOL_VERSION,
            session_id: self.id,
            user_id: self.user_id.clone(),
            library_id: self.library_id,
            role: self.role,
            max_inflight_mutations: self.config.max_inflight,
            max_frame_bytes: self.config.max_frame_bytes,
            max_frames_per_second: self.config.max_frames_per_second,
            expires_at: Some(self.token.expires_at),
            patches: self.patches,
        }));
        if let Err(end) = self.send_text("hello", hello.into()).await {
            return end;
        }
        let subscription = match self
            .state
            .sync
            .library
            .send(Subscribe {
                library_id: self.library_id,
            })
            .await
        {
            Ok(s) => s,
            Err(_) => return End::Close(1011, "the sync core is not running".into()),
        };
        let mut views = subscription.views;
        views.mark_changed();
        let presence = self
            .state
            .sync
            .presence
            .send(Join {
                library_id: self.library_id,
                session: PresenceSession {
                    session_id: self.id,
                    user_id: self.user_id.clone(),
                    seen_version: None,
                    connected_at: Timestamp::now(),
                },
            })
            .await;
        let Ok(presence) = presence else {
            return End::Close(1011, "the presence tracker is not running".into());
        };
        let mut presence_frames = presence.frames;
        let mut sent = Sent {
            version: self.since_version,
            ..Sent::default()
        };
        let (replies_tx, mut replies) = mpsc::channel::<String>(self.config.max_inflight);
        let inflight = Arc::new(Semaphore::new(self.config.max_inflight));
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.reset();
        let mut last_heard = Instant::now();
        // Token bucket for client frames: `max_frames_per_second` per second, as a burst too.
        let mut budget = librarian_core::rate::TokenBucket::new(
            f64::from(self.config.max_frames_per_second),
            Instant::now(),
        );
        // Moved by each accepted `auth` frame.
        let expiry = tokio::time::sleep_until(self.token.deadline.into());
        tokio::pin!(expiry);
        let mut shutdown = self.shutdown.clone();

        loop {
            let step: Result<(), End> = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => {
                    return End::Close(close::GOING_AWAY, "the server is shutting down".into());
                }
                () = &mut expiry => {
                    return End::Close(close::AUTH_EXPIRED, "the token expired".into());
                }
                incoming = self.inbox.next() => {
                    last_heard = Instant::now();
                    let request = match &incoming {
                        Some(Ok(Incoming::Text(text))) => Some(frames::parse(text)),
                        _ => None,
                    };
                    // A `seen` of a version this session sent and the client had not
                    // acknowledged yet is bounded by what the server sends, not by the
                    // client: a client acknowledging each patch of a busy library is not
                    // flooding, so it costs nothing from the budget.
                    let acknowledges = matches!(request, Some(Request::Seen(v))
                        if sent.seen.is_none_or(|s| v > s) && sent.version.is_some_and(|h| v <= h));
                    let within_budget = acknowledges || budget.take(last_heard);
                    match incoming {
                        None => return End::Gone,
                        Some(_) if !within_budget => {
                            let why = format!(
                                "more than {} frames per second (ws.max_frames_per_second)",
                                self.config.max_frames_per_second
                            );
                            let _ = self.send_text("error", frames::error("rate_limited", why.clone()).into()).await;
                            // The error frame first: the close that follows would overtake it.
                            self.outbox.flush(CLOSE_WAIT).await;
                            return End::Close(close::RATE_LIMITED, why);
                        }
                        Some(incoming) => {
                            let before = self.token.deadline;
                            let step = self.on_incoming(incoming, request, &replies_tx, &inflight, &mut sent).await;
                            if self.token.deadline != before {
                                expiry.as_mut().reset(self.token.deadline.into());
                            }
                            step
                        }
                    }
                }
                Some(reply) = replies.recv() => self.send_text("reply", reply.into()).await,
                Ok(()) = presence_frames.changed() => {
                    let frame = presence_frames.borrow_and_update().clone();
                    match frame {
                        Some(frame) => self.send_text("presence", frame).await,
                        None => Ok(()),
                    }
                }
                changed = views.changed() => match changed {
                    Ok(()) => {
                        let view = views.borrow_and_update().clone();
                        self.on_view(view, &mut sent).await
                    }
                    Err(_) => Err(End::Close(1011, "the sync core stopped".into())),
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > self.config.idle_timeout {
                        Err(End::Close(close::IDLE, "no pong within the idle timeout".into()))
                    } else {
                        self.send(Message::Ping(Bytes::new())).await
                    }
                }
            };
            let step = match step {
                Ok(()) if sent.needs_full => {
                    let view = views.borrow().clone();
                    self.answer_resync(&view, &mut sent).await
                }
                other => other,
            };
            match step {
                Ok(()) => {}
                Err(End::Revoked(why)) => {
                    return self.end_revoked(&why, &mut replies, &inflight).await;
                }
                Err(end) => return end,
            }
        }
    }

    /// Ends a session whose user lost access. Mutations still in flight are answered first
    /// (each commits before the removal or is refused, and the client must learn which),
    /// waiting at most `CLOSE_WAIT` for them; then `error access_revoked` and close 4403.
    async fn end_revoked(
        &mut self,
        why: &str,
        replies: &mut mpsc::Receiver<String>,
        inflight: &Semaphore,
    ) -> End {
        tracing::info!(session_id = %self.id, user_id = %self.user_id,
            library_id = %self.library_id, why, "access revoked");
        let answered = tokio::time::timeout(CLOSE_WAIT, async {
            loop {
                // Each task queues its reply, then returns its permit: once all are back (seen
                // before draining), every reply is in the channel.
                let all_back = inflight.available_permits() == self.config.max_inflight;
                while let Ok(reply) = replies.try_recv() {
                    self.send_text("reply", reply.into()).await?;
                }
                if all_back {
                    return Ok::<(), End>(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        if let Ok(Err(end)) = answered {
            return end;
        }
        if let Err(end) = self
            .send_text("error", frames::error("access_revoked", why).into())
            .await
        {
            return end;
        }
        // The error frame first: the close that follows would overtake it.
        self.outbox.flush(CLOSE_WAIT).await;
        End::Close(close::ACCESS_REVOKED, why.to_owned())
    }

    /// Sends what changed in the library view: a newer snapshot, then the status if it moved;
    /// or ends the session if its user lost access (see the module docs).
    async fn on_view(&mut self, view: LibraryView, sent: &mut Sent) -> Result<(), End> {
        if view.gone {
            return self.revoke("the library was deleted").await;
        }
        if let Some(snapshot) = &view.snapshot {
            match snapshot.role_of(&self.user_id) {
                None if snapshot.version >= self.access_version => {
                    return self
                        .revoke("you are no longer a member of this library")
                        .await;
                }
                // From before the user's membership: a newer version is on its way.
                None => return Ok(()),
                Some(role) if role != self.role => {
                    self.role = role;
                    let frame = frames::frame(&ServerFrame::Access(Access { role }));
                    self.send_text("access", frame.into()).await?;
                }
                Some(_) => {}
            }
            let went_back = sent.generation.is_some_and(|g| g != view.generation);
            sent.generation = Some(view.generation);
            match sent.version {
                // The database went back and this session skipped the view that said so: what
                // the client holds may differ at any version, so it is replaced.
                Some(held) if went_back && snapshot.version >= held => {
                    self.send_text("snapshot", snapshot.reset_frame()).await?;
                    sent.version = Some(snapshot.version);
                    sent.seen = None;
                    sent.snapshots += 1;
                    sent.awaiting = None;
                    sent.needs_full = false;
                }
                Some(held) if snapshot.version == held => {}
                Some(held) if snapshot.version < held => {
                    let settled = sent.awaiting.is_some_and(|seq| view.loaded >= seq);
                    if went_back || settled {
                        // Fresh from the database and still older: it went back (restored
                        // from a backup). Say so rather than silently stepping back.
                        self.send_text("snapshot", snapshot.reset_frame()).await?;
                        sent.version = Some(snapshot.version);
                        // Receipts start over from the restored version.
                        sent.seen = None;
                        sent.snapshots += 1;
                        sent.awaiting = None;
                        sent.needs_full = false;
                    } else if sent.awaiting.is_none() {
                        // This instance lags (e.g. its notifications are late): load afresh
                        // and hold everything older back meanwhile.
                        let refresh = librarian_actors::Refresh {
                            library_id: self.library_id,
                        };
                        match self.state.sync.library.send(refresh).await {
                            Ok(seq) => sent.awaiting = Some(seq),
                            Err(_) => {
                                return Err(End::Close(1011, "the sync core stopped".into()));
                            }
                        }
                    }
                }
                _ => {
                    // Either frame was serialized once for every session; this shares its bytes.
                    match self.patch_for(snapshot, sent) {
                        Some(patch) => self.send_text("patch", patch).await?,
                        None => self.send_text("snapshot", snapshot.frame()).await?,
                    }
                    sent.needs_full = false;
                    let metrics = &self.state.metrics;
                    if let Some(since) = snapshot.pending_since {
                        metrics
                            .commit_to_frame_seconds
                            .observe(since.elapsed().as_secs_f64());
                    }
                    sent.receipt = snapshot.pending_since.map(|t| (snapshot.version, t));
                    if let Some(had) = sent.version.filter(|_| sent.snapshots > 0) {
                        let skipped = (snapshot.version - had - 1).max(0);
                        metrics.versions_skipped.inc_by(skipped as u64);
                    }
                    sent.version = Some(snapshot.version);
                    sent.snapshots += 1;
                    sent.awaiting = None;
                }
            }
        }
        let behind_client = view
            .snapshot
            .as_ref()
            .zip(sent.version)
            .is_some_and(|(s, held)| s.version < held);
        let state = match view.state.clone() {
            SyncState::Loading => return Ok(()),
            // A failing load says more than "syncing" while the client waits for it.
            error @ SyncState::Error { .. } => error,
            _ if behind_client => SyncState::Syncing {
                target_version: sent.version.unwrap_or_default(),
            },
            SyncState::Syncing { target_version }
                if sent.version.is_none_or(|v| target_version > v) =>
            {
                SyncState::Syncing { target_version }
            }
            SyncState::Syncing { .. } => SyncState::Live,
            other => other,
        };
        let status = Status {
            state,
            version: sent.version,
        };
        if sent.status.as_ref() != Some(&status) {
            // Usually the view's own status, serialized once for every session.
            let frame = match &view.status_frame {
                Some(shared) if view.status().as_ref() == Some(&status) => shared.clone(),
                _ => frames::frame(&ServerFrame::Status(status.clone())).into(),
            };
            self.send_text("status", frame).await?;
            sent.status = Some(status);
        }
        Ok(())
    }

    /// The patch from what the client holds to `snapshot`, if it asked for patches and one is
    /// at hand: the step of this very load, or a span of the history (never across a reset:
    /// the history starts over at one, and a reset goes out as a full snapshot above).
    fn patch_for(&self, snapshot: &Snapshot, sent: &Sent) -> Option<ByteString> {
        if !self.patches || sent.needs_full {
            return None;
        }
        let held = sent.version?;
        if let Some(step) = snapshot.step.as_ref().filter(|s| s.from_version() == held) {
            return Some(step.frame.clone());
        }
        self.state
            .sync
            .history
            .patch(self.library_id, held, snapshot.version)
    }

    /// The client asked for the whole library (`resync`): the newest snapshot goes now, even at
    /// the version it holds; if none can go yet (loading, or older than the client's), the
    /// next one goes whole.
    async fn answer_resync(&mut self, view: &LibraryView, sent: &mut Sent) -> Result<(), End> {
        let Some(snapshot) = &view.snapshot else {
            return Ok(());
        };
        let sendable = sent.version.is_none_or(|held| snapshot.version >= held)
            && snapshot.role_of(&self.user_id).is_some()
            && !view.gone
            && sent.generation.is_none_or(|g| g == view.generation);
        if !sendable {
            // `on_view` deals with it (revocation, a reset, or waiting for a newer version).
            return Ok(());
        }
        self.send_text("snapshot", snapshot.frame()).await?;
        sent.version = Some(snapshot.version);
        sent.resynced = Some(snapshot.version);
        sent.snapshots += 1;
        sent.needs_full = false;
        Ok(())
    }

    async fn on_incoming(
        &mut self,
        incoming: Result<Incoming, ReadError>,
        request: Option<Request>,
        replies: &mpsc::Sender<String>,
        inflight: &Arc<Semaphore>,
        sent: &mut Sent,
    ) -> Result<(), End> {
        match incoming {
            Ok(Incoming::Text(text)) => match request.unwrap_or_else(|| frames::parse(&text)) {
                Request::Malformed(why) => self.refuse("malformed_frame", why).await,
                Request::Auth(token) => self.reauthenticate(&token).await,
                Request::Seen(version) => {
                    self.on_seen(version, sent);
                    Ok(())
                }
                Request::Resync => {
                    if sent.resynced.is_none() || sent.resynced != sent.version {
                        sent.needs_full = true;
                    }
                    Ok(())
                }
                Request::Mutate {
                    mutation_id,
                    parsed,
                } => {
                    let (mutation, opts) = match parsed {
                        Ok(m) => m,
                        Err(problem) => {
                            return self
                                .send_text("reply", frames::reject(&mutation_id, &problem).into())
                                .await;
                        }
                    };
                    let Ok(permit) = inflight.clone().try_acquire_owned() else {
                        let problem = Problem::new(
                            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                            "too_many_mutations",
                            format!(
                                "at most {} mutations may be in flight per session",
                                self.config.max_inflight
                            ),
                        );
                        return self
                            .send_text("reply", frames::reject(&mutation_id, &problem).into())
                            .await;
                    };
                    let (state, library_id, replies) =
                        (self.state.clone(), self.library_id, replies.clone());
                    let user = AuthUser {
                        user_id: self.user_id.clone(),
                    };
                    actix_web::rt::spawn(async move {
                        let reply = match state.apply(&user, library_id, mutation, opts).await {
                            Ok(committed) => frames::ack(&mutation_id, committed),
                            Err(e) => frames::reject(&mutation_id, &Problem::for_mutation(e)),
                        };
                        let _ = replies.send(reply).await;
                        drop(permit);
                    });
                    Ok(())
                }
            },
            Ok(Incoming::Binary) => {
                self.refuse("binary_frame", "only JSON text frames are accepted")
                    .await
            }
            Ok(Incoming::Ping(payload)) => self.send(Message::Pong(payload)).await,
            Ok(Incoming::Pong) => Ok(()),
            Ok(Incoming::Close(reason)) => {
                // Answer the client's close with the same code; it already sent its own.
                let code = reason.map_or(1000, |r| u16::from(r.code));
                self.outbox.close(Some(CloseReason {
                    code: CloseCode::from(code),
                    description: None,
                }));
                Err(End::ClientClosed(code))
            }
            Err(ReadError::TooLarge) => {
                let why = format!(
                    "frames are limited to {} bytes",
                    self.config.max_frame_bytes
                );
                self.refuse("frame_too_large", why).await
            }
            Err(ReadError::Protocol(why)) => self.refuse("protocol_error", why).await,
        }
    }

    /// An `auth` frame: the session goes on under `token` (same user), until its expiry.
    /// Checked as at connect; a bad token or one of another user ends the session (4401); one
    /// that cannot be checked now (key set unreachable) ends it with 1013, to come back later.
    async fn reauthenticate(&mut self, token: &str) -> Result<(), End> {
        let auth = self.auth.clone();
        let (code, close_code, why) = match auth.verify(token).await {
            Ok(verified) if verified.user.user_id == self.user_id => {
                self.token = TokenLife::of(&verified);
                let ok = frames::frame(&ServerFrame::AuthOk(AuthOk {
                    expires_at: self.token.expires_at,
                }));
                return self.send_text("auth_ok", ok.into()).await;
            }
            Ok(_) => (
                "invalid_token",
                close::AUTH_EXPIRED,
                "the token is for another user".to_owned(),
            ),
            Err(problem) if problem.status == 503 => {
                ("auth_unavailable", close::TRY_AGAIN_LATER, problem.detail)
            }
            Err(problem) => ("invalid_token", close::AUTH_EXPIRED, problem.detail),
        };
        self.send_text("error", frames::error(code, why.clone()).into())
            .await?;
        // The error frame first: the close that follows would overtake it.
        self.outbox.flush(CLOSE_WAIT).await;
        Err(End::Close(close_code, why))
    }

    /// A delivery receipt. Only versions this session delivered (or the client resumed with)
    /// count, and only forward: a client cannot claim what it was never sent.
    fn on_seen(&mut self, version: i64, sent: &mut Sent) {
        if sent.version.is_none_or(|held| version > held)
            || sent.seen.is_some_and(|seen| version <= seen)
        {
            return;
        }
        sent.seen = Some(version);
        if let Some((v, since)) = sent.receipt
            && version >= v
        {
            self.state
                .metrics
                .receipt_seconds
                .observe(since.elapsed().as_secs_f64());
            sent.receipt = None;
        }
        self.state.sync.presence.do_send(SeenVersion {
            library_id: self.library_id,
            session_id: self.id,
            version,
        });
    }

    /// The user lost access to the library: the session ends (see [`Session::end_revoked`]).
    async fn revoke(&mut self, why: &str) -> Result<(), End> {
        Err(End::Revoked(why.to_owned()))
    }

    /// An `error` frame, then close 4400.
    async fn refuse(&mut self, code: &str, why: impl Into<String>) -> Result<(), End> {
        let why = why.into();
        self.send_text("error", frames::error(code, why.clone()).into())
            .await?;
        Err(End::Close(close::MALFORMED, why))
    }

    async fn send_text(&mut self, kind: &'static str, text: ByteString) -> Result<(), End> {
        self.send(Message::Text(text)).await?;
        self.state.metrics.frame_sent(kind);
        Ok(())
    }

    /// Waits for the outbox slot. A client that takes no frames for `send_timeout` is closed
    /// (4429) instead of buffered; one that keeps taking bytes at 64 KiB/s or more is waited
    /// for, so that a large snapshot gets through a slow link instead of closing the session,
    /// and a reconnect sending it again, forever.
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        let taken = self.outbox.taken();
        let timeout = self.config.send_timeout;
        let enough = (SLOW_LINK_BYTES_PER_S as f64 * timeout.as_secs_f64()).max(1.0) as u64;
        let mut seen = taken.load(std::sync::atomic::Ordering::Relaxed);
        let send = self.outbox.send(msg);
        tokio::pin!(send);
        loop {
            match tokio::time::timeout(timeout, &mut send).await {
                Ok(sent) => return Ok(sent?),
                Err(_) => {
                    let now = taken.load(std::sync::atomic::Ordering::Relaxed);
                    if now - seen >= enough {
                        seen = now;
                        continue;
                    }
                    let why = if now == seen {
                        "the client did not take frames for too long".to_owned()
                    } else {
                        format!(
                            "the client took {} bytes in {} ms, under 64 KiB/s",
                            now - seen,
                            timeout.as_millis()
                        )
                    };
                    return Err(End::Close(close::TOO_SLOW, why));
                }
            }
        }
    }
}
