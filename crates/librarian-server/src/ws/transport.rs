//! The WebSocket byte plumbing, built on actix-http's codec instead of actix-ws so that the
//! outbox really is one slot deep.
//!
//! actix-ws queues up to 32 outgoing messages and encodes everything queued into the response
//! at once: a client that stops reading would pin dozens of snapshot versions in memory. Here
//! the [`Outbox`] channel holds one message, and the response body takes the next one only when
//! actix asks for more bytes, i.e. when the previous frame has left its write buffer. So a slow
//! session holds at most the frame being written plus one waiting, and the session's
//! latest-wins view (a `watch`) decides what goes next. A close frame jumps the queue; the
//! connection itself stays open until the session drops its [`Outbox`], so that the session
//! can wait for the client's answering close (the closing handshake).
//!
//! Text frames are written as a hand-made header followed by slices of the shared payload, at
//! most [`CHUNK`] bytes each: actix copies every chunk into its connection's write buffer, so a
//! client that stops reading pins one chunk there, not a copy of a whole multi-megabyte
//! snapshot. The session's seat (`ws.max_sessions_per_user`) lives in the body, so it is freed
//! only when actix drops the connection, never while a zombie connection still holds buffers.

use actix_http::ws::{CloseReason, Codec, Frame, Item, Message, ProtocolError};
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// The largest piece of a frame's payload handed to actix at once.
pub const CHUNK: usize = 16 * 1024;

/// The session's side of the outgoing direction.
pub struct Outbox {
    tx: mpsc::Sender<Message>,
    taken: Arc<AtomicU64>,
    close: Option<oneshot::Sender<Option<CloseReason>>>,
}

/// The peer went away (or the body was dropped): nothing more can be sent.
#[derive(Debug)]
pub struct Gone;

impl Outbox {
    /// Bytes of text frames actix has taken from the body so far (it takes the next chunk
    /// only when the connection's write buffer has room): how fast the client reads.
    pub fn taken(&self) -> Arc<AtomicU64> {
        self.taken.clone()
    }

    /// Waits for the slot, then queues `msg`.
    pub async fn send(&mut self, msg: Message) -> Result<(), Gone> {
        self.tx.send(msg).await.map_err(|_| Gone)
    }

    /// Waits (at most `limit`) until everything queued so far has been handed to the
    /// connection, so that a close frame sent next does not overtake it.
    pub async fn flush(&mut self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.tx.send(Message::Nop)).await;
    }

    /// Sends a close frame ahead of anything still queued; nothing is sent after it. The
    /// connection ends when the outbox is dropped.
    pub fn close(&mut self, reason: Option<CloseReason>) {
        if let Some(close) = self.close.take() {
            let _ = close.send(reason);
        }
    }
}

/// The response body: encodes one message at a time, as actix pulls.
pub struct OutboxBody {
    rx: mpsc::Receiver<Message>,
    taken: Arc<AtomicU64>,
    /// The rest of the text frame being written.
    pending: Bytes,
    /// Whatever must live exactly as long as the connection (the session's seat).
    _keep: Box<dyn std::any::Any>,
    close: Option<oneshot::Receiver<Option<CloseReason>>>,
    codec: Codec,
    /// The close frame went out: drain and drop whatever else comes until the session ends.
    closed: bool,
    done: bool,
}

/// A session's outbox and the response body it feeds; `keep` is dropped with the body, i.e.
/// when actix drops the connection.
pub fn outbox(keep: Box<dyn std::any::Any>) -> (Outbox, OutboxBody) {
    let (tx, rx) = mpsc::channel(1);
    let (close_tx, close_rx) = oneshot::channel();
    let taken = Arc::new(AtomicU64::new(0));
    (
        Outbox {
            tx,
            taken: taken.clone(),
            close: Some(close_tx),
        },
        OutboxBody {
            rx,
            taken,
            pending: Bytes::new(),
            _keep: keep,
            close: Some(close_rx),
            codec: Codec::new(),
            closed: false,
            done: false,
        },
    )
}

/// The header of an unmasked, final text frame of `len` payload bytes (RFC 6455 §5.2).
fn text_header(len: usize) -> Bytes {
    let mut header = Vec::with_capacity(10);
    header.push(0x81);
    match len {
        0..=125 => header.push(len as u8),
        126..=0xFFFF => {
            header.push(126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    Bytes::from(header)
}

impl OutboxBody {
    /// The next piece of the text frame being written, if any.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        let n = self.pending.len().min(CHUNK);
        self.taken.fetch_add(n as u64, Ordering::Relaxed);
        Some(self.pending.split_to(n))
    }

    fn encode(&mut self, msg: Message) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        if let Message::Text(text) = msg {
            // Shares the payload's bytes: only the header is new.
            self.pending = text.into_bytes();
            return Poll::Ready(Some(Ok(text_header(self.pending.len()))));
        }
        let mut buf = BytesMut::new();
        match actix_codec::Encoder::encode(&mut self.codec, msg, &mut buf) {
            Ok(()) => Poll::Ready(Some(Ok(buf.freeze()))),
            Err(e) => {
                self.done = true;
                Poll::Ready(Some(Err(actix_web::error::ErrorInternalServerError(e))))
            }
        }
    }
}

impl Stream for OutboxBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // A frame under way is finished first: nothing, not even a close, may cut into it.
        if let Some(chunk) = this.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(close) = this.close.as_mut() {
            match Pin::new(close).poll(cx) {
                Poll::Ready(Ok(reason)) => {
                    this.close = None;
                    this.closed = true;
                    return this.encode(Message::Close(reason));
                }
                // The session ended without a close frame (the peer is gone).
                Poll::Ready(Err(_)) => {
                    this.close = None;
                    this.closed = true;
                }
                Poll::Pending => {}
            }
        }
        loop {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(_)) if this.closed => continue,
                Poll::Ready(Some(msg)) => return this.encode(msg),
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A whole message from the client (continuations already joined).
#[derive(Debug)]
pub enum Incoming {
    Text(Bytes),
    /// Binary messages are not part of the protocol; their content is dropped.
    Binary,
    Ping(Bytes),
    Pong,
    Close(Option<CloseReason>),
}

/// Why reading from the client stopped.
#[derive(Debug)]
pub enum ReadError {
    /// A frame (or a joined message) over the size limit.
    TooLarge,
    /// Not valid WebSocket framing.
    Protocol(String),
}

/// Decodes client frames from the request payload, joining continuations up to `max_size`.
pub struct Inbox<S> {
    payload: S,
    buf: BytesMut,
    codec: Codec,
    max_size: usize,
    partial: Option<(bool, BytesMut)>,
    ended: bool,
}

impl<S> Inbox<S>
where
    S: Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    pub fn new(payload: S, max_size: usize) -> Self {
        Inbox {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max_size),
            max_size,
            partial: None,
            ended: false,
        }
    }

    /// The next message; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<Result<Incoming, ReadError>> {
        use futures_util::StreamExt;
        loop {
            if self.ended {
                return None;
            }
            match actix_codec::Decoder::decode(&mut self.codec, &mut self.buf) {
                Ok(Some(frame)) => match self.join(frame) {
                    Ok(Some(msg)) => return Some(Ok(msg)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(e));
                    }
                },
                Ok(None) => {}
                // Past a framing error nothing more is read: the rest of an oversize frame is
                // never buffered.
                Err(ProtocolError::Overflow) => {
                    self.ended = true;
                    return Some(Err(ReadError::TooLarge));
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(ReadError::Protocol(e.to_string())));
                }
            }
            match self.payload.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(_)) | None => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }

    fn join(&mut self, frame: Frame) -> Result<Option<Incoming>, ReadError> {
        let (start, is_text, last, bytes) = match frame {
            Frame::Text(b) => return Ok(Some(Incoming::Text(b))),
            Frame::Binary(_) => return Ok(Some(Incoming::Binary)),
            Frame::Ping(b) => return Ok(Some(Incoming::Ping(b))),
            Frame::Pong(_) => return Ok(Some(Incoming::Pong)),
            Frame::Close(r) => return Ok(Some(Incoming::Close(r))),
            Frame::Continuation(Item::FirstText(b)) => (true, true, false, b),
            Frame::Continuation(Item::FirstBinary(b)) => (true, false, false, b),
            Frame::Continuation(Item::Continue(b)) => (false, false, false, b),
            Frame::Continuation(Item::Last(b)) => (false, false, true, b),
        };
        if start {
            if self.partial.is_some() {
                return Err(ReadError::Protocol(
                    "a fragmented message began before the previous one ended".into(),
                ));
            }
            self.partial = Some((is_text, BytesMut::from(&bytes[..])));
            return Ok(None);
        }
        let Some((_, joined)) = self.partial.as_mut() else {
            return Err(ReadError::Protocol(
                "a continuation frame without a first frame".into(),
            ));
        };
        if joined.len() + bytes.len() > self.max_size {
            return Err(ReadError::TooLarge);
        }
        joined.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        Ok(self.partial.take().map(|(is_text, joined)| {
            if is_text {
                Incoming::Text(joined.freeze())
            } else {
                Incoming::Binary
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures_util::StreamExt;

    /// Frames of every length class, written as header + shared chunks, decode as a client
    /// would decode them; no chunk is larger than [`CHUNK`].
    #[tokio::test]
    async fn chunked_text_frames_decode_whole() {
        let lengths = [0, 125, 126, 65_535, 65_536, 3 * CHUNK + 7];
        let (mut outbox, mut body) = outbox(Box::new(()));
        let texts: Vec<String> = lengths
            .iter()
            .map(|&n| (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect())
            .collect();
        let sender = {
            let texts = texts.clone();
            tokio::spawn(async move {
                for t in texts {
                    outbox.send(Message::Text(t.into())).await.unwrap();
                }
                // Dropped without a close, the outbox would discard what is still queued.
                outbox
            })
        };
        let mut wire = BytesMut::new();
        let mut codec = Codec::new().client_mode();
        let mut decoded = Vec::new();
        while decoded.len() < texts.len() {
            let chunk = body.next().await.unwrap().unwrap();
            assert!(chunk.len() <= CHUNK, "a chunk of {} bytes", chunk.len());
            wire.extend_from_slice(&chunk);
            while let Some(frame) = actix_codec::Decoder::decode(&mut codec, &mut wire).unwrap() {
                match frame {
                    Frame::Text(b) => decoded.push(String::from_utf8(b.to_vec()).unwrap()),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        sender.await.unwrap();
        assert_eq!(decoded, texts);
    }
}
