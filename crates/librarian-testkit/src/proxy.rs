//! A TCP proxy between the server and its database, so that a test can make the database
//! unreachable (every connection dropped, new ones refused) and bring it back, or make it stall
//! (connections stay open and accepted, but no byte passes any more: a database that accepts
//! connections and never answers).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stalled: watch::Sender<bool>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = TcpProxy {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            tasks: Arc::default(),
            stalled: watch::channel(false).0,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks, stalled) = (self.upstream, self.tasks.clone(), self.stalled.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut stall = stalled.subscribe();
                let conn = tokio::spawn(async move {
                    let stalled_now = *stall.borrow_and_update();
                    if stalled_now {
                        // Accepted, and never answered.
                        return hold(client).await;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = until_stalled(&mut stall) => {
                            // Both ends stay open, nothing more passes (until `cut`).
                            let _keep = server;
                            hold(client).await;
                        }
                    }
                });
                tasks.lock().expect("proxy tasks").push(conn);
            }
        });
        self.tasks.lock().expect("proxy tasks").push(accept);
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        for task in self.tasks.lock().expect("proxy tasks").drain(..) {
            task.abort();
        }
    }

    /// From now on no byte passes in either direction, on open connections and on new ones,
    /// which are still accepted: the database seems to be there but never answers. Ends with
    /// [`TcpProxy::cut`] or [`TcpProxy::restore`].
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Accepts connections again, on the same address (dropping any stalled ones first).
    pub async fn restore(&self) {
        self.cut();
        self.stalled.send_replace(false);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                // The aborted listener may take a moment to close.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

/// Returns once the proxy stalls.
async fn until_stalled(stall: &mut watch::Receiver<bool>) {
    loop {
        let stalled = *stall.borrow_and_update();
        if stalled {
            return;
        }
        if stall.changed().await.is_err() {
            // The proxy is gone; its drop aborts this task.
            std::future::pending::<()>().await;
        }
    }
}

/// Keeps a connection open without reading from or writing to it, until the task is aborted.
async fn hold(_conn: TcpStream) {
    std::future::pending::<()>().await
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
