//! A WebSocket client for tests: connect to a [`TestServer`](crate::server::TestServer),
//! read frames as JSON, follow a session until it holds a version.

use crate::server::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Hang guard only; never a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub enum Got {
    Frame(Value),
    Closed(Option<u16>),
}

pub async fn connect_with(
    server: &TestServer,
    query: &str,
    token: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    let url = format!(
        "{}/api/v1/ws{query}",
        server.base_url.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    if let Some(token) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

pub async fn connect(server: &TestServer, token: &str) -> Ws {
    connect_with(server, "", Some(token)).await.unwrap()
}

pub async fn recv(ws: &mut Ws) -> Got {
    loop {
        let next = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("no frame in time");
        match next {
            Some(Ok(Message::Text(t))) => return Got::Frame(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(c))) => return Got::Closed(c.map(|c| u16::from(c.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Got::Closed(None),
        }
    }
}

pub async fn frame(ws: &mut Ws) -> Value {
    match recv(ws).await {
        Got::Frame(v) => v,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Reads until a frame of `kind` arrives; returns it and everything before it.
pub async fn until(ws: &mut Ws, kind: &str) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let f = frame(ws).await;
        if f["type"] == kind {
            return (f, before);
        }
        before.push(f);
    }
}

pub async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// Reads a session until it holds `final_version` (announced later through `target`),
/// returning the snapshot versions it got, in order, and its last snapshot.
pub async fn follow(
    mut ws: Ws,
    mut target: tokio::sync::watch::Receiver<Option<i64>>,
) -> (Vec<i64>, Value, Vec<Value>) {
    let mut versions = Vec::new();
    let mut last = Value::Null;
    let mut others = Vec::new();
    loop {
        if let (Some(want), Some(have)) = (*target.borrow(), versions.last())
            && want == *have
        {
            return (versions, last, others);
        }
        tokio::select! {
            got = recv(&mut ws) => match got {
                Got::Frame(f) if f["type"] == "snapshot" => {
                    versions.push(f["version"].as_i64().unwrap());
                    last = f;
                }
                Got::Frame(f) => others.push(f),
                Got::Closed(code) => panic!("session closed ({code:?}) after {versions:?}"),
            },
            _ = target.changed() => {}
        }
    }
}

/// The snapshot object of a `snapshot` frame (without its `type` and `digest`).
pub fn content(mut snapshot: Value) -> Value {
    let fields = snapshot.as_object_mut().unwrap();
    fields.remove("type");
    fields.remove("digest");
    snapshot
}
