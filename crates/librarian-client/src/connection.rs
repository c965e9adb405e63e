//! The background task behind a [`Library`](crate::Library): one WebSocket session at a time,
//! reconnecting with backoff and `since_version`, resending unacknowledged mutations with their
//! original `mutation_id`, and resolving each mutation once its version is in a snapshot.
//!
//! Pacing: at most `hello.max_inflight_mutations` mutations are unanswered on a session; the
//! rest wait in order and go as answers arrive. A reject the server may not mean as final
//! (`too_many_mutations`, any 503) is resent with the same `mutation_id` after a backoff: the
//! first attempt may have committed, so reporting it as failed could be a lie.
//!
//! Tokens: the [`TokenProvider`] is called before every connection attempt (a failure there is
//! terminal: [`SyncStatus::Unauthorized`] until `reconnect()`), and on an open session ahead of
//! the token's expiry ([`Refresh`]), its token sent in an `auth` frame. A refused refresh
//! (`invalid_token`, 4401) or one that cannot be checked now (`auth_unavailable`, 1013) ends
//! the session like any drop: reconnect with backoff, with a token asked for afresh. No token
//! is ever logged or put in a status.

use crate::{Applied, ClientError, SyncStatus, TokenFuture, TokenProvider};
use futures_util::{SinkExt, StreamExt};
use librarian_core::Role;
use librarian_core::protocol::{
    AuthFrame, ClientFrame, MutateFrame, Presence, SeenFrame, ServerFrame, SyncState, close,
};
use librarian_core::rate::TokenBucket;
use librarian_core::time::Timestamp;
use librarian_core::{LibrarySnapshot, Op};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

pub(crate) enum Command {
    Mutate(Box<Pending>),
    /// Connect now: out of [`SyncStatus::Unauthorized`], or without waiting out the backoff.
    Reconnect,
    Close,
}

/// A mutation the server has not yet confirmed into a snapshot this client holds.
pub(crate) struct Pending {
    mutation_id: String,
    op: Op,
    id: Option<Uuid>,
    if_version: Option<i64>,
    data: Option<serde_json::Value>,
    done: oneshot::Sender<Result<Applied, ClientError>>,
    /// Sent on the current session and not answered yet.
    in_flight: bool,
    /// Retryable rejects so far (drives the backoff).
    retries: u32,
    /// After a retryable reject: not sent again before this.
    not_before: Option<Instant>,
    /// Set by the `ack`; the mutation resolves once a snapshot at least this new arrives.
    acked: Option<Applied>,
}

impl Pending {
    pub fn new(
        op: Op,
        id: Option<Uuid>,
        if_version: Option<i64>,
        data: Option<serde_json::Value>,
        done: oneshot::Sender<Result<Applied, ClientError>>,
    ) -> Pending {
        Pending {
            mutation_id: Uuid::new_v4().to_string(),
            op,
            id,
            if_version,
            data,
            done,
            in_flight: false,
            retries: 0,
            not_before: None,
            acked: None,
        }
    }

    /// Waiting to be sent (again), whether or not its backoff has passed.
    fn queued(&self) -> bool {
        !self.in_flight && self.acked.is_none()
    }

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

/// Servers before `hello` announced it allowed this many frames per second.
const DEFAULT_FRAMES_PER_SECOND: u32 = 100;
/// The share of the server's frame rate this client uses: the pongs it answers count too.
const FRAME_RATE_SHARE: f64 = 0.8;

/// The bucket for outgoing frames: [`FRAME_RATE_SHARE`] of the server's `max_frames_per_second`
/// (also its burst). Past that the server closes the session (4429), so a burst of writes is
/// paced here instead.
struct FrameBudget(TokenBucket);

impl FrameBudget {
    fn new(per_second: u32, now: Instant) -> FrameBudget {
        let rate = (f64::from(per_second) * FRAME_RATE_SHARE).floor();
        FrameBudget(TokenBucket::new(rate, now.into_std()))
    }

    fn take(&mut self, now: Instant) -> bool {
        self.0.take(now.into_std())
    }

    fn spend(&mut self, now: Instant) {
        self.0.spend(now.into_std());
    }

    fn next_at(&self) -> Instant {
        Instant::from_std(self.0.next_at())
    }
}

/// What the session tells about the library besides its rows (DESIGN §9).
pub(crate) struct Shared {
    pub role: watch::Sender<Option<Role>>,
    pub presence: watch::Sender<Option<Presence>>,
}

pub(crate) struct Connection {
    url: String,
    tokens: TokenProvider,
    snapshot: watch::Sender<Option<Arc<LibrarySnapshot>>>,
    status: watch::Sender<SyncStatus>,
    shared: Shared,
    /// The version the server was last told this client applied (`seen`), this session.
    seen_sent: Option<i64>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// In the order the mutations were issued, which is the order they are sent in.
    pending: Vec<Pending>,
    /// Version of the snapshot this client holds.
    held: Option<i64>,
    /// What this client holds did not match a digest (or a patch could not be applied): ask
    /// for the whole library once, and take the next snapshot even at the version held.
    resync: Resync,
    /// The user of the first session: this handle's snapshot and mutations are theirs.
    user_id: Option<String>,
    /// Set by a frame after which the session must end for good (another user's `hello`).
    refused: Option<String>,
    /// Set by `error access_revoked`: the user lost access to the library (close 4403).
    revoked: Option<String>,
    failures: u32,
    /// The current session's `max_inflight_mutations`; `None` until its `hello` (nothing is
    /// sent before: the limit may differ from the last server's).
    max_inflight: Option<usize>,
    /// The largest frame the server takes (the last `hello`'s `max_frame_bytes`).
    max_frame_bytes: usize,
    /// Frames this client may send now (paced under the last `hello`'s `max_frames_per_second`).
    budget: FrameBudget,
    /// A sendable mutation waits for the budget: wake when it refills.
    paced: bool,
    /// When the current session's token is refreshed.
    refresh: Refresh,
    /// The server's `Retry-After` on the last refused connection attempt (a 503), if longer
    /// than the backoff.
    retry_after: Option<Duration>,
}

/// Where a `resync` (DESIGN §10) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    Idle,
    /// To be sent.
    Wanted,
    /// Sent: patches are ignored until the snapshot it asked for.
    Sent,
}

enum Outcome {
    /// The handle asked to close (or was dropped).
    Closed,
    /// The connection failed or dropped; try again.
    Dropped(String),
    /// The token cannot be used at all: stop until asked to reconnect.
    Unauthorized(String),
    /// The user lost access to the library: stop until asked to reconnect.
    Revoked(String),
}

/// What the handle asked for while no session is open.
enum Idle {
    Continue,
    Reconnect,
    Close,
}

impl Connection {
    pub fn new(
        url: String,
        tokens: TokenProvider,
        snapshot: watch::Sender<Option<Arc<LibrarySnapshot>>>,
        status: watch::Sender<SyncStatus>,
        shared: Shared,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        Connection {
            url,
            tokens,
            snapshot,
            status,
            shared,
            seen_sent: None,
            commands,
            pending: Vec::new(),
            held: None,
            resync: Resync::Idle,
            user_id: None,
            refused: None,
            revoked: None,
            failures: 0,
            max_inflight: None,
            max_frame_bytes: usize::MAX,
            budget: FrameBudget::new(DEFAULT_FRAMES_PER_SECOND, Instant::now()),
            paced: false,
            refresh: Refresh::default(),
            retry_after: None,
        }
    }
}

pub(crate) async fn run(mut c: Connection) {
    loop {
        let outcome = match c.fetch_token().await {
            Ok(Some(token)) => c.session(token).await,
            Ok(None) => Outcome::Closed,
            Err(message) => Outcome::Unauthorized(message),
        };
        match outcome {
            Outcome::Closed => break,
            Outcome::Unauthorized(message) => {
                tracing::warn!(%message, "no usable token; not reconnecting until asked to");
                c.status.send_replace(SyncStatus::Unauthorized { message });
                if !c.wait_for_reconnect(None).await {
                    return;
                }
            }
            Outcome::Revoked(message) => {
                tracing::warn!(%message, "access to the library revoked");
                c.status.send_replace(SyncStatus::Revoked {
                    message: message.clone(),
                });
                if !c.wait_for_reconnect(Some(&message)).await {
                    return;
                }
            }
            Outcome::Dropped(why) => {
                c.failures += 1;
                let mut delay = retry_delay(c.failures);
                if let Some(after) = c.retry_after.take() {
                    delay = delay.max(after);
                }
                tracing::debug!(%why, retry_in_ms = delay.as_millis() as u64, "reconnecting");
                c.status
                    .send_replace(SyncStatus::Reconnecting { retry_in: delay });
                let wait = tokio::time::sleep(delay);
                tokio::pin!(wait);
                // Keep taking commands while waiting: new mutations queue for the next session.
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        idle = c.wait_for_command() => match idle {
                            Idle::Continue => {}
                            Idle::Reconnect => break,
                            Idle::Close => return,
                        },
                    }
                }
            }
        }
    }
}

/// Awaits `future` if there is one, else never resolves (a disabled `select!` branch that
/// still compiles to one type).
async fn maybe<F: std::future::Future + Unpin>(future: Option<&mut F>) -> F::Output {
    match future {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a close frame says, for the logs (the server's reason never holds a token).
fn describe_close(frame: Option<&CloseFrame>) -> String {
    let Some(frame) = frame else {
        return "closed by the server".into();
    };
    let code = u16::from(frame.code);
    let meaning = match code {
        close::AUTH_EXPIRED => " (token expired or refused)",
        close::TRY_AGAIN_LATER => " (try again later)",
        close::ACCESS_REVOKED => " (access revoked)",
        _ => "",
    };
    format!("closed by the server: {code}{meaning} {}", frame.reason)
}

/// A reject that says "not now" rather than "no": the server may have committed an earlier
/// attempt of the same mutation, so it is resent, never reported.
fn retryable(status: u16, code: Option<&str>) -> bool {
    status == 503 || code == Some("too_many_mutations")
}

/// The one backoff: reconnects (by consecutive failures) and deferred mutations (by retries).
fn retry_delay(failures: u32) -> Duration {
    librarian_core::backoff::Backoff::DEFAULT.delay(failures, rand::rng().random_range(0.5..=1.0))
}

impl Connection {
    /// The token for the next connection attempt, taking commands meanwhile; `Ok(None)` if
    /// the handle closed, `Err` (a message without the token) if the provider failed.
    async fn fetch_token(&mut self) -> Result<Option<String>, String> {
        let mut fetch = self.tokens.token();
        loop {
            tokio::select! {
                result = &mut fetch => {
                    return result
                        .map(Some)
                        .map_err(|e| format!("the token provider failed: {e}"));
                }
                idle = self.wait_for_command() => match idle {
                    // Already connecting.
                    Idle::Continue | Idle::Reconnect => {}
                    Idle::Close => return Ok(None),
                },
            }
        }
    }

    /// After a terminal stop: waits for `reconnect()` (true, status `Connecting` again) or the
    /// handle's close (false). Mutations queue meanwhile, unless access was `revoked`: then
    /// what the server acknowledged resolves (it committed before the removal) and everything
    /// else, issued before or meanwhile, fails at once rather than hang.
    async fn wait_for_reconnect(&mut self, revoked: Option<&str>) -> bool {
        loop {
            if let Some(why) = revoked {
                for p in self.pending.drain(..) {
                    let result = p
                        .acked
                        .ok_or_else(|| ClientError::AccessRevoked(why.to_owned()));
                    let _ = p.done.send(result);
                }
            }
            match self.wait_for_command().await {
                Idle::Continue => {}
                Idle::Reconnect => break,
                Idle::Close => return false,
            }
        }
        self.failures = 0;
        self.status.send_replace(SyncStatus::Connecting);
        true
    }

    /// The next command while no session is open (mutations queue for the next one).
    async fn wait_for_command(&mut self) -> Idle {
        match self.commands.recv().await {
            Some(Command::Mutate(p)) => {
                self.pending.push(*p);
                Idle::Continue
            }
            Some(Command::Reconnect) => Idle::Reconnect,
            Some(Command::Close) | None => Idle::Close,
        }
    }

    async fn session(&mut self, token: String) -> Outcome {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        // Patch frames: O(change) on the wire, each checked against the digest (DESIGN §10).
        let url = match self.held {
            Some(v) => format!("{}{sep}patches=1&since_version={v}", self.url),
            None => format!("{}{sep}patches=1", self.url),
        };
        // A new session starts from a snapshot or a patch from what is held.
        self.resync = Resync::Idle;
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => return Outcome::Dropped(e.to_string()),
        };
        match HeaderValue::try_from(format!("Bearer {token}")) {
            Ok(mut value) => {
                // Kept out of any Debug output of the request.
                value.set_sensitive(true);
                request.headers_mut().insert(header::AUTHORIZATION, value);
            }
            // No server would take it either, and asking again gives the same.
            Err(_) => {
                return Outcome::Unauthorized(
                    "the token provider returned a token that is not a valid header value".into(),
                );
            }
        }
        let mut ws = match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(WsError::Http(response)) => {
                let status = response.status();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    // E.g. the token cannot be checked while the server's JWKS is unreachable.
                    self.retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)));
                }
                // A 401 is retried too: the next attempt asks the provider for a new token.
                return Outcome::Dropped(format!("the server refused the connection: {status}"));
            }
            Err(e) => return Outcome::Dropped(e.to_string()),
        };
        self.begin_session();
        // The provider's call for a refresh, while one runs (never two at once).
        let mut fetch: Option<TokenFuture> = None;
        loop {
            let now = Instant::now();
            for frame in self.sendable(now) {
                if let Err(e) = ws.send(Message::Text(frame.into())).await {
                    return Outcome::Dropped(e.to_string());
                }
            }
            let retry_at = self.next_retry(now);
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let refresh_due = self.refresh.due.filter(|_| fetch.is_none());
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    // Queued; the top of the loop sends it if the limit allows.
                    Some(Command::Mutate(p)) => self.pending.push(*p),
                    // Connected already.
                    Some(Command::Reconnect) => {}
                    Some(Command::Close) | None => {
                        let _ = ws.close(None).await;
                        return Outcome::Closed;
                    }
                },
                () = sleep_until(refresh_due) => {
                    self.refresh.due = None;
                    fetch = Some(self.tokens.token());
                }
                result = maybe(fetch.as_mut()) => {
                    fetch = None;
                    match result {
                        Ok(token) => {
                            // It goes now (it keeps the session), and counts against the budget.
                            self.budget.spend(Instant::now());
                            let frame = ClientFrame::Auth(AuthFrame { token });
                            let text = serde_json::to_string(&frame).unwrap_or_default();
                            if let Err(e) = ws.send(Message::Text(text.into())).await {
                                return Outcome::Dropped(e.to_string());
                            }
                            // The next refresh is set by the `auth_ok`; without one the
                            // server closes the session (4401) and the reconnect asks afresh.
                        }
                        Err(e) => {
                            let retry_in = self.refresh.failed(Instant::now());
                            tracing::warn!(error = %e, retry_in_ms = retry_in.as_millis() as u64,
                                "the token provider failed at a refresh; trying again");
                        }
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        self.on_frame(&text);
                        if let Some(message) = self.refused.take() {
                            let _ = ws.close(None).await;
                            return Outcome::Unauthorized(message);
                        }
                        if self.resync == Resync::Wanted {
                            self.resync = Resync::Sent;
                            self.budget.spend(Instant::now());
                            let text = serde_json::to_string(&ClientFrame::Resync).unwrap_or_default();
                            if let Err(e) = ws.send(Message::Text(text.into())).await {
                                return Outcome::Dropped(e.to_string());
                            }
                        }
                        if let Some(frame) = self.receipt() {
                            let text = serde_json::to_string(&frame).unwrap_or_default();
                            if let Err(e) = ws.send(Message::Text(text.into())).await {
                                return Outcome::Dropped(e.to_string());
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        if code == Some(close::ACCESS_REVOKED) {
                            let why = self.revoked.take().unwrap_or_else(|| describe_close(frame.as_ref()));
                            return Outcome::Revoked(why);
                        }
                        return Outcome::Dropped(describe_close(frame.as_ref()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Outcome::Dropped(e.to_string()),
                    None => return Outcome::Dropped("connection ended".into()),
                },
                () = retry => {}
            }
        }
    }

    /// A delivery receipt (`seen`) for what this client now holds, if the server was not told
    /// yet. It goes at once and spends nothing from the frame budget: the server does not count
    /// a `seen` that acknowledges a newly delivered version against `max_frames_per_second`
    /// (PROTOCOL.md), so a busy library's receipts never hold back this client's writes.
    fn receipt(&mut self) -> Option<ClientFrame> {
        let held = self
            .held
            .filter(|h| self.seen_sent.is_none_or(|s| *h > s))?;
        self.seen_sent = Some(held);
        Some(ClientFrame::Seen(SeenFrame { version: held }))
    }

    /// A new session: nothing is in flight on it yet. Whatever was sent before and not
    /// acknowledged goes again, with the same id, paced once `hello` gives the limit.
    fn begin_session(&mut self) {
        self.max_inflight = None;
        self.seen_sent = None;
        self.shared.presence.send_replace(None);
        self.refresh = Refresh::default();
        for p in &mut self.pending {
            p.in_flight = false;
        }
    }

    /// Marks as in flight, and returns the frames of, the queued mutations the limit allows
    /// now, oldest first (none before this session's `hello`).
    fn sendable(&mut self, now: Instant) -> Vec<String> {
        let Some(limit) = self.max_inflight else {
            return Vec::new();
        };
        let mut in_flight = self.pending.iter().filter(|p| p.in_flight).count();
        let mut frames = Vec::new();
        let mut too_large = Vec::new();
        self.paced = false;
        for (i, p) in self.pending.iter_mut().enumerate() {
            if in_flight >= limit {
                break;
            }
            if p.queued() && p.not_before.is_none_or(|t| t <= now) {
                if !self.budget.take(now) {
                    self.paced = true;
                    break;
                }
                let frame = p.frame();
                if frame.len() > self.max_frame_bytes {
                    too_large.push((i, frame.len()));
                    continue;
                }
                p.in_flight = true;
                p.not_before = None;
                in_flight += 1;
                frames.push(frame);
            }
        }
        // Refused here: sent, each would close the session (4400), and its resend the next one.
        for (i, bytes) in too_large.into_iter().rev() {
            let p = self.pending.remove(i);
            let detail = format!(
                "the mutation is {bytes} bytes; the server takes frames of at most {} bytes",
                self.max_frame_bytes
            );
            let problem = serde_json::json!({
                "type": "urn:librarian:problem:too_large", "title": "Payload Too Large",
                "status": 413, "code": "too_large", "detail": detail,
            });
            let _ = p.done.send(Err(ClientError::Rejected {
                status: 413,
                detail,
                problem,
            }));
        }
        frames
    }

    /// When the earliest backoff still running ends. Only future ones: a mutation whose backoff
    /// is over but the limit holds back goes when an answer frees a place (no busy wake-ups).
    fn next_retry(&self, now: Instant) -> Option<Instant> {
        let paced = self.paced.then(|| self.budget.next_at());
        self.pending
            .iter()
            .filter(|p| p.queued())
            .filter_map(|p| p.not_before)
            .filter(|t| *t > now)
            .chain(paced)
            .min()
    }

    /// Applies a `patch` to the snapshot held, if it starts there and the result matches its
    /// digest; otherwise asks for the whole library (`resync`) and keeps what it holds.
    fn on_patch(&mut self, patch: &librarian_core::patch::Patch) {
        if self.resync != Resync::Idle || self.held.is_some_and(|h| patch.version <= h) {
            return;
        }
        let current = self.snapshot.borrow().clone();
        let applied = match current {
            Some(held) if Some(held.version) == self.held => {
                let mut next = LibrarySnapshot::clone(&held);
                next.apply(patch)
                    .and_then(|()| next.verify(&patch.digest))
                    .map(|()| next)
            }
            _ => Err(librarian_core::patch::PatchError::WrongBase {
                from: patch.from_version,
                held: self.held.unwrap_or(-1),
            }),
        };
        match applied {
            Ok(next) => {
                self.held = Some(next.version);
                self.snapshot.send_replace(Some(Arc::new(next)));
                self.resolve_visible();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot apply a patch; asking for the whole library");
                self.resync = Resync::Wanted;
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
            ServerFrame::Hello(hello) => {
                match &self.user_id {
                    Some(user) if *user != hello.user_id => {
                        // The provider now signs someone else in: this handle's snapshot and
                        // queued mutations are the first user's, and must not reach (or be
                        // mixed with) another's library. Nothing is sent on this session.
                        self.refused = Some(format!(
                            "the token provider returned a token of user {:?}; this library is {user:?}'s",
                            hello.user_id
                        ));
                        return;
                    }
                    Some(_) => {}
                    None => self.user_id = Some(hello.user_id.clone()),
                }
                self.failures = 0;
                self.shared.role.send_replace(Some(hello.role));
                self.refresh
                    .learned(hello.expires_at, Instant::now(), Timestamp::now());
                self.max_inflight = Some(hello.max_inflight_mutations.max(1));
                self.max_frame_bytes = hello.max_frame_bytes.max(1);
                self.budget = FrameBudget::new(hello.max_frames_per_second, Instant::now());
                if self.held.is_none() {
                    self.status.send_replace(SyncStatus::Loading);
                }
            }
            ServerFrame::Snapshot(frame) => {
                // Never a step back (G9): an older snapshot than the one held is ignored,
                // unless the server says its library went back (restored from a backup).
                let snapshot = frame.library;
                let asked = self.resync == Resync::Sent;
                if frame.reset || asked || self.held.is_none_or(|h| snapshot.version > h) {
                    if let Some(digest) = &frame.digest
                        && let Err(e) = snapshot.verify(digest)
                    {
                        // Asking again would bring the same bytes: taken, and said.
                        tracing::warn!(error = %e, "a snapshot does not match its digest");
                    }
                    self.resync = Resync::Idle;
                    self.held = Some(snapshot.version);
                    self.snapshot.send_replace(Some(Arc::new(snapshot)));
                    self.resolve_visible();
                }
            }
            ServerFrame::Patch(patch) => self.on_patch(&patch),
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
                    p.in_flight = false;
                    p.acked = Some(Applied {
                        data: ack.data,
                        library_version: ack.library_version,
                    });
                }
                self.resolve_visible();
            }
            ServerFrame::Reject(reject) => {
                let Some(at) = self
                    .pending
                    .iter()
                    .position(|p| p.mutation_id == reject.mutation_id && p.acked.is_none())
                else {
                    return;
                };
                let problem = reject.error;
                let status = problem["status"].as_u64().unwrap_or(0) as u16;
                if retryable(status, problem["code"].as_str()) {
                    let p = &mut self.pending[at];
                    p.in_flight = false;
                    p.retries += 1;
                    p.not_before = Some(Instant::now() + retry_delay(p.retries));
                    tracing::debug!(mutation_id = %p.mutation_id, status, "mutation deferred; resending");
                    return;
                }
                let p = self.pending.remove(at);
                let _ = p.done.send(Err(ClientError::Rejected {
                    status,
                    detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
                    problem,
                }));
            }
            ServerFrame::AuthOk(ok) => {
                self.refresh
                    .renewed(ok.expires_at, Instant::now(), Timestamp::now());
            }
            ServerFrame::Access(access) => {
                self.shared.role.send_replace(Some(access.role));
            }
            ServerFrame::Presence(presence) => {
                self.shared.presence.send_replace(Some(presence));
            }
            // `invalid_token` (then 4401) and `auth_unavailable` (then 1013) among them: the
            // close that follows ends the session, and the reconnect asks for a new token.
            // `access_revoked` (then 4403) ends it for good.
            ServerFrame::Error(e) => {
                if e.code == "access_revoked" {
                    self.revoked = Some(e.message.clone());
                }
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

/// Refreshes at most this often, whatever the expiries say: with a clock far ahead of the
/// server's, every new token would look expired already, and each `auth_ok` would trigger
/// the next refresh at once.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

/// When the session's token is refreshed (DESIGN §11): at `expires_at - margin`, the margin a
/// fifth of the time left when the expiry was learned, within 1 s and 60 s (early enough for
/// a slow provider, late enough not to waste short tokens). An expiry too far ahead to be an
/// `Instant` is never refreshed.
#[derive(Debug, Default)]
struct Refresh {
    /// The session token's expiry, as the server last announced it.
    expires_at: Option<Timestamp>,
    /// When to call the provider next; `None` without an expiry, or while a refresh is under
    /// way (the provider running, or its token awaiting `auth_ok`).
    due: Option<Instant>,
    /// Failed refreshes in a row (drives the backoff).
    failures: u32,
}

impl Refresh {
    /// `hello`: the session's token and when it expires (`None`: never, or an older server).
    fn learned(&mut self, expires_at: Option<Timestamp>, now: Instant, wall: Timestamp) {
        *self = Refresh {
            expires_at,
            due: expires_at.and_then(|exp| now.checked_add(refresh_in(exp, wall))),
            failures: 0,
        };
    }

    /// `auth_ok`: the session runs on the new token.
    fn renewed(&mut self, expires_at: Timestamp, now: Instant, wall: Timestamp) {
        if self.expires_at.is_some_and(|old| expires_at <= old) {
            // The provider gave back a token no newer than the session's (e.g. its own cache,
            // not renewed yet): as good as a failure, or the margins would shrink to a loop.
            self.failed(now);
            return;
        }
        self.expires_at = Some(expires_at);
        self.failures = 0;
        self.due = now.checked_add(refresh_in(expires_at, wall).max(MIN_REFRESH_GAP));
    }

    /// The provider failed: try again after a backoff (the session's expiry still closes it,
    /// and the reconnect after that asks again). Returns the delay.
    fn failed(&mut self, now: Instant) -> Duration {
        self.failures += 1;
        let delay = retry_delay(self.failures);
        self.due = Some(now + delay);
        delay
    }
}

/// How long until the refresh of a token expiring at `expires_at`, seen at `wall`.
fn refresh_in(expires_at: Timestamp, wall: Timestamp) -> Duration {
    let left = Duration::from_millis(u64::try_from(expires_at.0 - wall.0).unwrap_or(0));
    let margin = (left / 5).clamp(Duration::from_secs(1), Duration::from_secs(60));
    left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    //! The session's bookkeeping without a network: frames in, frames to send out.

    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    type Done = oneshot::Receiver<Result<Applied, ClientError>>;

    fn connection() -> (Connection, watch::Receiver<Option<Arc<LibrarySnapshot>>>) {
        let (snapshot, snapshots) = watch::channel(None);
        let (status, _) = watch::channel(SyncStatus::Connecting);
        let (_, commands) = mpsc::unbounded_channel();
        let c = Connection::new(
            "ws://unused".into(),
            TokenProvider::fixed("t"),
            snapshot,
            status,
            Shared {
                role: watch::channel(None).0,
                presence: watch::channel(None).0,
            },
            commands,
        );
        (c, snapshots)
    }

    fn hello(max_inflight: usize) -> String {
        serde_json::json!({
            "type": "hello", "protocol": 1, "session_id": Uuid::nil(), "user_id": "alice",
            "library_id": Uuid::nil(), "max_inflight_mutations": max_inflight,
        })
        .to_string()
    }

    /// A session with 30 writes queued, whose `hello` allows 10 frames per second.
    fn paced() -> (Connection, Vec<Done>) {
        let (mut c, _snapshots) = connection();
        let done = (0..30).map(|_| issue(&mut c)).collect();
        c.begin_session();
        c.on_frame(
            &serde_json::json!({
                "type": "hello", "protocol": 1, "session_id": Uuid::nil(), "user_id": "alice",
                "library_id": Uuid::nil(), "max_inflight_mutations": 32,
                "max_frames_per_second": 10,
            })
            .to_string(),
        );
        (c, done)
    }

    fn snapshot(version: i64, reset: bool) -> String {
        serde_json::json!({
            "type": "snapshot", "reset": reset, "version": version,
            "projects": [], "context_blocks": [], "saved_prompts": [],
        })
        .to_string()
    }

    fn ack(mutation_id: &str, version: i64) -> String {
        serde_json::json!({
            "type": "ack", "mutation_id": mutation_id, "library_version": version, "data": null,
        })
        .to_string()
    }

    fn reject(mutation_id: &str, status: u16, code: &str) -> String {
        serde_json::json!({
            "type": "reject", "mutation_id": mutation_id,
            "error": {"type": format!("urn:librarian:problem:{code}"), "title": "t",
                      "status": status, "detail": "d", "code": code},
        })
        .to_string()
    }

    /// Queues a mutation as the handle would.
    fn issue(c: &mut Connection) -> Done {
        let (done, result) = oneshot::channel();
        c.pending.push(Pending::new(
            Op::ProjectDelete,
            Some(Uuid::new_v4()),
            None,
            None,
            done,
        ));
        result
    }

    fn ids(frames: &[String]) -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                assert_eq!(v["type"], "mutate");
                v["mutation_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn held(snapshots: &watch::Receiver<Option<Arc<LibrarySnapshot>>>) -> Option<i64> {
        snapshots.borrow().as_ref().map(|s| s.version)
    }

    #[test]
    fn an_older_snapshot_is_ignored_unless_the_server_says_reset() {
        let (mut c, snapshots) = connection();
        c.on_frame(&hello(32));
        c.on_frame(&snapshot(5, false));
        assert_eq!(held(&snapshots), Some(5));
        // A lagging instance's older snapshot: never a step back (G9).
        c.on_frame(&snapshot(3, false));
        c.on_frame(&snapshot(5, false));
        assert_eq!((held(&snapshots), c.held), (Some(5), Some(5)));
        // The database went back (restored from a backup): the client follows it.
        c.on_frame(&snapshot(3, true));
        assert_eq!((held(&snapshots), c.held), (Some(3), Some(3)));
        c.on_frame(&snapshot(4, false));
        assert_eq!(held(&snapshots), Some(4));
    }

    #[test]
    fn frames_are_paced_under_the_announced_frame_rate() {
        let (mut c, _done) = paced();
        let now = Instant::now();
        // 80 % of 10 per second, as one burst; the rest when the budget refills.
        assert_eq!(c.sendable(now).len(), 8);
        assert!(c.sendable(now).is_empty());
        let wake = c.next_retry(now).expect("a wake-up for the paced ones");
        assert!(
            wake > now && wake <= now + Duration::from_millis(125),
            "{wake:?}"
        );
        assert_eq!(c.sendable(now + Duration::from_millis(250)).len(), 2);
        assert_eq!(c.sendable(now + Duration::from_secs(10)).len(), 8);
    }

    #[test]
    fn receipts_of_new_versions_leave_the_frame_budget_to_writes() {
        let (mut c, _done) = paced();
        // A busy library: twenty versions delivered, each acknowledged once.
        let mut receipts = Vec::new();
        for v in 1..=20 {
            c.on_frame(&snapshot(v, false));
            receipts.extend(c.receipt());
            assert!(c.receipt().is_none(), "v{v} acknowledged twice");
        }
        assert_eq!(receipts.len(), 20);
        // The writes still get the whole burst.
        assert_eq!(c.sendable(Instant::now()).len(), 8);
    }

    #[test]
    fn no_more_than_the_announced_limit_is_in_flight_and_the_rest_follow_in_order() {
        let (mut c, _snapshots) = connection();
        let mut done: Vec<Done> = (0..5).map(|_| issue(&mut c)).collect();
        c.begin_session();
        // Nothing before `hello`: the limit is not known yet.
        assert!(c.sendable(Instant::now()).is_empty());
        c.on_frame(&hello(2));
        let first = ids(&c.sendable(Instant::now()));
        assert_eq!(first.len(), 2);
        assert!(
            c.sendable(Instant::now()).is_empty(),
            "the limit is reached"
        );
        // Each answer lets one more go; one issued meanwhile waits its turn behind the others.
        done.push(issue(&mut c));
        c.on_frame(&ack(&first[0], 1));
        let next = ids(&c.sendable(Instant::now()));
        assert_eq!(next, [c.pending[2].mutation_id.clone()]);
        c.on_frame(&reject(&first[1], 422, "validation"));
        let next = ids(&c.sendable(Instant::now()));
        assert_eq!(next, [c.pending[2].mutation_id.clone()]);
        assert!(matches!(
            done[1].try_recv(),
            Ok(Err(ClientError::Rejected { status: 422, .. }))
        ));
        // Acknowledged but not yet in a held snapshot: not in flight, not resolved either.
        assert!(matches!(done[0].try_recv(), Err(TryRecvError::Empty)));
        c.on_frame(&snapshot(1, false));
        assert!(matches!(done[0].try_recv(), Ok(Ok(_))));

        // A dropped connection: the unanswered go again on the next session, paced again.
        let unanswered: Vec<String> = c
            .pending
            .iter()
            .filter(|p| p.acked.is_none())
            .map(|p| p.mutation_id.clone())
            .collect();
        assert_eq!(unanswered.len(), 4);
        c.begin_session();
        assert!(c.sendable(Instant::now()).is_empty());
        c.on_frame(&hello(3));
        assert_eq!(ids(&c.sendable(Instant::now())), unanswered[..3]);
    }

    #[test]
    fn a_deferred_mutation_whose_backoff_is_over_waits_for_a_free_place_without_a_wake_up() {
        let (mut c, _snapshots) = connection();
        let _first = issue(&mut c);
        let _second = issue(&mut c);
        c.on_frame(&hello(1));
        let sent = ids(&c.sendable(Instant::now()));
        c.on_frame(&reject(&sent[0], 429, "too_many_mutations"));
        let now = Instant::now();
        let other = ids(&c.sendable(now));
        let retry_at = c.next_retry(now).unwrap();
        // Its backoff is over, but the one place is taken: nothing to wake up for.
        assert!(c.sendable(retry_at).is_empty());
        assert_eq!(c.next_retry(retry_at), None);
        c.on_frame(&ack(&other[0], 1));
        assert_eq!(ids(&c.sendable(retry_at)), sent);
    }

    #[test]
    fn a_deferred_mutation_is_resent_with_its_id_after_a_backoff_and_never_failed() {
        for (status, code) in [(429, "too_many_mutations"), (503, "database_unavailable")] {
            let (mut c, _snapshots) = connection();
            let mut first = issue(&mut c);
            let _second = issue(&mut c);
            c.on_frame(&hello(1));
            let sent = ids(&c.sendable(Instant::now()));
            c.on_frame(&reject(&sent[0], status, code));
            assert!(
                matches!(first.try_recv(), Err(TryRecvError::Empty)),
                "{code}: reported as final"
            );
            // The next in line may go meanwhile; the deferred one waits for its backoff.
            let now = Instant::now();
            let other = ids(&c.sendable(now));
            assert_ne!(other, sent);
            let retry_at = c.next_retry(now).unwrap();
            c.on_frame(&ack(&other[0], 1));
            assert!(
                c.sendable(now).is_empty(),
                "{code}: resent before its backoff"
            );
            assert_eq!(
                ids(&c.sendable(retry_at)),
                sent,
                "{code}: not resent as itself"
            );
            c.on_frame(&ack(&sent[0], 2));
            c.on_frame(&snapshot(2, false));
            assert!(matches!(first.try_recv(), Ok(Ok(a)) if a.library_version == 2));
        }
    }

    const SECOND: i64 = 1000;

    #[test]
    fn the_refresh_goes_a_fifth_of_the_time_left_before_expiry_within_one_and_sixty_seconds() {
        let wall = Timestamp(1_764_159_193_123);
        let at = |ms: i64| refresh_in(Timestamp(wall.0 + ms), wall);
        // An hour (Supabase): the margin is capped at 60 s.
        assert_eq!(at(3600 * SECOND), Duration::from_secs(3540));
        assert_eq!(at(100 * SECOND), Duration::from_secs(80));
        // Short tokens: at least 1 s ahead.
        assert_eq!(at(3 * SECOND), Duration::from_secs(2));
        // Nearly or already expired (within the server's leeway): at once.
        assert_eq!(at(SECOND / 2), Duration::ZERO);
        assert_eq!(at(-10 * SECOND), Duration::ZERO);
    }

    #[test]
    fn hello_schedules_the_refresh_from_its_expires_at_and_only_with_one() {
        let (mut c, _snapshots) = connection();
        let before = Instant::now();
        let exp = Timestamp(Timestamp::now().0 + 100 * SECOND);
        let mut frame: serde_json::Value = serde_json::from_str(&hello(4)).unwrap();
        frame["expires_at"] = serde_json::to_value(exp).unwrap();
        c.on_frame(&frame.to_string());
        assert_eq!(c.refresh.expires_at, Some(exp));
        let due = c.refresh.due.unwrap() - before;
        // 80 s, give or take the time this test took (the clock moves between the readings).
        assert!(
            due <= Duration::from_secs(81) && due > Duration::from_secs(70),
            "{due:?}"
        );
        // A server without expiry (or an older one): nothing to refresh.
        c.begin_session();
        c.on_frame(&hello(4));
        assert_eq!((c.refresh.expires_at, c.refresh.due), (None, None));
    }

    #[test]
    fn an_auth_ok_moves_the_next_refresh_and_one_no_newer_counts_as_a_failed_refresh() {
        let (now, wall) = (Instant::now(), Timestamp(1_764_159_193_123));
        let mut r = Refresh::default();
        r.learned(Some(Timestamp(wall.0 + 3 * SECOND)), now, wall);
        assert_eq!(r.due, Some(now + Duration::from_secs(2)));
        // The provider failed: again after the backoff, the expiry unchanged.
        r.due = None;
        let delay = r.failed(now);
        assert_eq!((r.due, r.failures), (Some(now + delay), 1));
        assert!(delay <= Duration::from_millis(100));
        // A new token: scheduled from its expiry, failures forgotten.
        let (now, wall) = (now + Duration::from_secs(2), Timestamp(wall.0 + 2 * SECOND));
        r.renewed(Timestamp(wall.0 + 60 * SECOND), now, wall);
        assert_eq!(
            (r.due, r.failures),
            (Some(now + Duration::from_secs(48)), 0)
        );
        // The same token again (the provider's cache): a failure, with its backoff, not a
        // refresh due at once.
        r.renewed(Timestamp(wall.0 + 60 * SECOND), now, wall);
        assert_eq!(r.failures, 1);
        assert!(r.due.unwrap() <= now + Duration::from_millis(100));
        assert_eq!(r.expires_at, Some(Timestamp(wall.0 + 60 * SECOND)));
        // A clock far ahead of the server's: every new token looks expired, refreshes still
        // come at most once a second.
        r.renewed(Timestamp(wall.0 - 3 * SECOND), now, wall);
        r.renewed(
            Timestamp(wall.0 + 61 * SECOND),
            now,
            Timestamp(wall.0 + 3600 * SECOND),
        );
        assert_eq!(r.due, Some(now + MIN_REFRESH_GAP));
    }

    #[test]
    fn a_hello_for_another_user_ends_the_session_before_anything_is_sent() {
        let (mut c, _snapshots) = connection();
        let _pending = issue(&mut c);
        c.on_frame(&hello(4));
        assert_eq!(c.sendable(Instant::now()).len(), 1);
        c.begin_session();
        let mut frame: serde_json::Value = serde_json::from_str(&hello(4)).unwrap();
        frame["user_id"] = "bob".into();
        c.on_frame(&frame.to_string());
        assert!(c.refused.as_deref().unwrap().contains("\"bob\""));
        assert!(c.sendable(Instant::now()).is_empty());
    }
}
