//! The floor: the least a server must do for this job, measured in the same run on the same
//! workloads. A write arrives over a WebSocket; the floor commits it (the store's one
//! transaction with its version bump), answers the version, reloads the library in one read
//! transaction, serializes it once and writes the frame to every subscribed raw WebSocket.
//! No actors, no coalescing, no status frames, no auth, no HTTP: what is left is physics.

use futures_util::{SinkExt, StreamExt};
use librarian_core::protocol::ServerFrame;
use librarian_core::{ContextBlockPatch, Field, Mutation, MutationOptions};
use librarian_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use uuid::Uuid;

#[derive(Default)]
struct Library {
    subscribers: Vec<mpsc::UnboundedSender<Arc<str>>>,
    sent: i64,
}

struct Floor {
    store: Store,
    libraries: Mutex<HashMap<Uuid, Library>>,
}

/// Starts the floor on its own runtime (2 threads, like the server); returns its address.
pub fn start(store: Store) -> anyhow::Result<std::net::SocketAddr> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(anyhow::Error::from(e)));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = addr_tx.send(Err(e.into()));
                    return;
                }
            };
            let _ = addr_tx.send(listener.local_addr().map_err(Into::into));
            let floor = Arc::new(Floor {
                store,
                libraries: Mutex::default(),
            });
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(floor.clone(), stream));
            }
        });
    });
    addr_rx.recv()?
}

async fn serve(floor: Arc<Floor>, stream: tokio::net::TcpStream) {
    let mut path = String::new();
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, res: Response| {
        path = req.uri().to_string();
        Ok(res)
    })
    .await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    // `/sub/<library id>`: a session. Anything else: a writer.
    if let Some(id) = path
        .strip_prefix("/sub/")
        .and_then(|s| Uuid::parse_str(s).ok())
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<str>>();
        floor.subscribe(id, tx.clone()).await;
        tokio::spawn(async move { while stream.next().await.is_some() {} });
        while let Some(frame) = rx.recv().await {
            if sink
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        return;
    }
    // Writer: "<request id> <library id> <user> <block id> <title>" → "<request id> <version>"
    // (bench user ids hold no spaces).
    let (reply_tx, mut replies) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(r) = replies.recv().await {
            if sink.send(Message::Text(r.into())).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(Message::Text(text))) = stream.next().await {
        let floor = floor.clone();
        let reply_tx = reply_tx.clone();
        tokio::spawn(async move {
            let mut parts = text.splitn(5, ' ');
            let (Some(rid), Some(lib), Some(user), Some(block), Some(title)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return;
            };
            let (Ok(lib), Ok(block)) = (Uuid::parse_str(lib), Uuid::parse_str(block)) else {
                return;
            };
            let mutation = Mutation::UpdateContextBlock {
                id: block,
                patch: ContextBlockPatch {
                    title: Field::Set(title.to_owned()),
                    ..Default::default()
                },
            };
            let version = match floor
                .store
                .apply(lib, user, mutation, MutationOptions::default())
                .await
            {
                Ok(c) => c.library_version,
                Err(_) => -1,
            };
            let _ = reply_tx.send(format!("{rid} {version}"));
            if version > 0 {
                floor.publish(lib).await;
            }
        });
    }
}

impl Floor {
    async fn subscribe(&self, library: Uuid, tx: mpsc::UnboundedSender<Arc<str>>) {
        if let Some(frame) = self.load(library).await {
            let _ = tx.send(frame.1);
        }
        if let Ok(mut libs) = self.libraries.lock() {
            libs.entry(library).or_default().subscribers.push(tx);
        }
    }

    async fn load(&self, library: Uuid) -> Option<(i64, Arc<str>)> {
        let snapshot = self.store.load_library(library).await.ok()?;
        let version = snapshot.version;
        let frame = serde_json::to_string(&ServerFrame::Snapshot(snapshot.into())).ok()?;
        Some((version, frame.into()))
    }

    /// Reload, serialize once, send to every subscriber (never an older version).
    async fn publish(&self, library: Uuid) {
        let Some((version, frame)) = self.load(library).await else {
            return;
        };
        if let Ok(mut libs) = self.libraries.lock() {
            let lib = libs.entry(library).or_default();
            if version > lib.sent {
                lib.sent = version;
                lib.subscribers.retain(|s| s.send(frame.clone()).is_ok());
            }
        }
    }
}
