//! Options set on every accepted TCP connection, and a handle through which a WebSocket
//! session ends its connection together with itself (DESIGN §13: a session's seat, memory and
//! TCP connection end together).
//!
//! - `TCP_NODELAY`: Nagle + delayed ACK would hold a small second frame for ~40 ms (STACK.md).
//! - `TCP_USER_TIMEOUT`: data that stays unacknowledged (or unsent behind a zero window) for
//!   this long aborts the connection in the kernel. A client that stops reading is closed by
//!   its session after `ws.send_timeout_ms` (4429); actix then still holds the connection and
//!   its write buffer until the kernel gives up, so this bound is what frees them.
//! - [`ConnSocket`]: a duplicate of the socket's descriptor, kept in the connection's data.
//!   Shutting down its read side makes actix see end-of-stream at once, so after a closing
//!   handshake the server sends its FIN immediately instead of lingering for
//!   `client_disconnect_timeout` (~1 s) while an RFC-following client waits for it.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

/// A second handle on an accepted connection's socket (a duplicated descriptor, so it can
/// never touch another connection's socket after this one is closed).
#[derive(Clone)]
pub struct ConnSocket(Arc<socket2::Socket>);

impl ConnSocket {
    /// No more reads: actix's next read sees end-of-stream and, once the response body is
    /// done, shuts the connection down (FIN) without lingering. Writes are unaffected.
    pub fn end_reads(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Read);
    }
}

/// For `HttpServer::on_connect`: sets the options above on `conn` and records a
/// [`ConnSocket`] in its connection data.
pub fn on_connect(
    conn: &dyn std::any::Any,
    ext: &mut actix_web::dev::Extensions,
    user_timeout: Duration,
) {
    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let sock = socket2::SockRef::from(tcp);
    if let Err(e) = sock.set_tcp_user_timeout(Some(user_timeout)) {
        tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
    }
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            ext.insert(ConnSocket(Arc::new(socket2::Socket::from(fd))));
        }
        Err(e) => tracing::debug!(error = %e, "cannot duplicate a connection's socket"),
    }
}
