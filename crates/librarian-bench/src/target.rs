//! What a workload runs against: Librarian (one or two real processes) or the floor. Both
//! offer the same four things: a session for a user, filling a library, editing a block (one
//! write, answered with its library version), and the server's process ids.

use crate::session::{Held, Options, Session};
use futures_util::{SinkExt, StreamExt};
use librarian_core::{Mutation, MutationOptions, NewContextBlock, NewProject, NewSavedPrompt};
use librarian_store::Store;
use librarian_testkit::server::TestServer;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

// One value per run: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Target {
    Librarian {
        /// Writes go here.
        write: TestServer,
        /// Sessions connect here (the same process, or a second instance).
        read: Option<TestServer>,
        http: reqwest::Client,
        tokens: Mutex<HashMap<String, String>>,
    },
    Floor {
        addr: std::net::SocketAddr,
        store: Store,
        writer: mpsc::UnboundedSender<(String, oneshot::Sender<i64>)>,
        next: AtomicU64,
        libraries: Mutex<HashMap<String, Uuid>>,
    },
}

impl Target {
    pub fn librarian(write: TestServer, read: Option<TestServer>) -> Target {
        Target::Librarian {
            write,
            read,
            http: reqwest::Client::new(),
            tokens: Mutex::default(),
        }
    }

    pub async fn floor(store: Store) -> anyhow::Result<Target> {
        let addr = crate::floor::start(store.clone())?;
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/write")).await?;
        let (mut sink, mut stream) = ws.split();
        let (writer, mut requests) = mpsc::unbounded_channel::<(String, oneshot::Sender<i64>)>();
        let waiting: std::sync::Arc<Mutex<HashMap<String, oneshot::Sender<i64>>>> =
            std::sync::Arc::default();
        let waiting2 = waiting.clone();
        tokio::spawn(async move {
            while let Some((line, done)) = requests.recv().await {
                let rid = line.split(' ').next().unwrap_or_default().to_owned();
                if let Ok(mut w) = waiting2.lock() {
                    w.insert(rid, done);
                }
                if sink.send(Message::Text(line.into())).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(reply))) = stream.next().await {
                let Some((rid, version)) = reply.split_once(' ') else {
                    continue;
                };
                let done = waiting.lock().ok().and_then(|mut w| w.remove(rid));
                if let Some(done) = done {
                    let _ = done.send(version.parse().unwrap_or(-1));
                }
            }
        });
        Ok(Target::Floor {
            addr,
            store,
            writer,
            next: AtomicU64::new(0),
            libraries: Mutex::default(),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Librarian { read: None, .. } => "librarian",
            Target::Librarian { read: Some(_), .. } => "librarian, 2 instances",
            Target::Floor { .. } => "floor",
        }
    }

    /// The server processes to sample (none for the in-process floor).
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Target::Librarian { write, read, .. } => {
                let mut pids = vec![write.pid()];
                pids.extend(read.as_ref().map(TestServer::pid));
                pids
            }
            Target::Floor { .. } => vec![std::process::id()],
        }
    }

    async fn token(&self, user: &str) -> anyhow::Result<String> {
        let Target::Librarian {
            write,
            http,
            tokens,
            ..
        } = self
        else {
            return Ok(String::new());
        };
        if let Some(t) = tokens.lock().ok().and_then(|t| t.get(user).cloned()) {
            return Ok(t);
        }
        let r: Value = http
            .post(write.url("/api/v1/dev/token"))
            .json(&json!({ "user": user }))
            .send()
            .await?
            .json()
            .await?;
        let token = r["token"].as_str().unwrap_or_default().to_owned();
        if let Ok(mut t) = tokens.lock() {
            t.insert(user.to_owned(), token.clone());
        }
        Ok(token)
    }

    async fn floor_library(&self, user: &str) -> anyhow::Result<Uuid> {
        let Target::Floor {
            store, libraries, ..
        } = self
        else {
            anyhow::bail!("not the floor");
        };
        if let Some(id) = libraries.lock().ok().and_then(|l| l.get(user).copied()) {
            return Ok(id);
        }
        let id = store.library_for_user(user).await?.id;
        if let Ok(mut l) = libraries.lock() {
            l.insert(user.to_owned(), id);
        }
        Ok(id)
    }

    /// A new session of `user`.
    pub async fn session(&self, user: &str) -> anyhow::Result<Session> {
        match self {
            Target::Librarian { .. } => self.session_with(user, "", Options::VERSIONS, None).await,
            Target::Floor { addr, .. } => {
                let lib = self.floor_library(user).await?;
                Session::connect(&format!("ws://{addr}/sub/{lib}"), false).await
            }
        }
    }

    /// A new Librarian session of `user` with `query` added to the URL (e.g. `&patches=1`),
    /// `options`, and `held` to resume from.
    pub async fn session_with(
        &self,
        user: &str,
        query: &str,
        options: Options,
        held: Option<Held>,
    ) -> anyhow::Result<Session> {
        let Target::Librarian { write, read, .. } = self else {
            anyhow::bail!("the floor has no such sessions");
        };
        let server = read.as_ref().unwrap_or(write);
        let token = self.token(user).await?;
        let base = server.base_url.replace("http://", "ws://");
        Session::connect_with(
            &format!("{base}/api/v1/ws?access_token={token}{query}"),
            options,
            held,
        )
        .await
    }

    /// Fills `user`'s library with `items` rows (a third each of projects, blocks and prompts
    /// of two blocks); returns the block ids.
    pub async fn fill(&self, user: &str, items: usize) -> anyhow::Result<Vec<Uuid>> {
        let per = (items / 3).max(1);
        let mut blocks = Vec::new();
        for i in 0..per {
            self.create(
                user,
                Mutation::CreateProject(NewProject {
                    id: None,
                    name: format!("Project {i}"),
                    description: "A folder of prompts".into(),
                    parent_id: None,
                }),
            )
            .await?;
        }
        for i in 0..per {
            let id = Uuid::now_v7();
            self.create(
                user,
                Mutation::CreateContextBlock(NewContextBlock {
                    id: Some(id),
                    project_id: None,
                    title: format!("Block {i}"),
                    content: "You are a careful assistant. ".repeat(10),
                    tags: vec!["style".into()],
                }),
            )
            .await?;
            blocks.push(id);
        }
        for i in 0..per {
            let mut uses = vec![blocks[i % blocks.len()], blocks[(i + 7) % blocks.len()]];
            uses.dedup();
            self.create(
                user,
                Mutation::CreateSavedPrompt(NewSavedPrompt {
                    id: None,
                    project_id: None,
                    title: format!("Prompt {i}"),
                    content: "Summarize the following. ".repeat(4),
                    tags: vec![],
                    context_block_ids: uses,
                }),
            )
            .await?;
        }
        Ok(blocks)
    }

    async fn create(&self, user: &str, m: Mutation) -> anyhow::Result<()> {
        match self {
            Target::Librarian { write, http, .. } => {
                let (path, body) = match &m {
                    Mutation::CreateProject(d) => ("projects", serde_json::to_value(d)?),
                    Mutation::CreateContextBlock(d) => ("context-blocks", serde_json::to_value(d)?),
                    Mutation::CreateSavedPrompt(d) => ("saved-prompts", serde_json::to_value(d)?),
                    _ => anyhow::bail!("not a create"),
                };
                let token = self.token(user).await?;
                let res = http
                    .post(write.url(&format!("/api/v1/{path}")))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(res.status() == 201, "create failed: {}", res.status());
            }
            Target::Floor { store, .. } => {
                let lib = self.floor_library(user).await?;
                store
                    .apply(lib, user, m, MutationOptions::default())
                    .await?;
            }
        }
        Ok(())
    }

    /// One write: retitle `block`; returns the library version it committed.
    pub async fn edit(&self, user: &str, block: Uuid, title: &str) -> anyhow::Result<i64> {
        match self {
            Target::Librarian { write, http, .. } => {
                let token = self.token(user).await?;
                let r: Value = http
                    .patch(write.url(&format!("/api/v1/context-blocks/{block}")))
                    .bearer_auth(token)
                    .json(&json!({ "title": title }))
                    .send()
                    .await?
                    .json()
                    .await?;
                r["library_version"]
                    .as_i64()
                    .ok_or_else(|| anyhow::anyhow!("write refused: {r}"))
            }
            Target::Floor { writer, next, .. } => {
                let lib = self.floor_library(user).await?;
                let rid = next.fetch_add(1, Ordering::Relaxed);
                let (done, version) = oneshot::channel();
                writer
                    .send((format!("{rid} {lib} {user} {block} {title}"), done))
                    .map_err(|_| anyhow::anyhow!("the floor's writer is gone"))?;
                let v = version.await?;
                anyhow::ensure!(v > 0, "the floor refused a write");
                Ok(v)
            }
        }
    }

    /// One write of any fields of `block` (Librarian only); returns the library version it
    /// committed.
    pub async fn update_block(
        &self,
        user: &str,
        block: Uuid,
        fields: &Value,
    ) -> anyhow::Result<i64> {
        let Target::Librarian { write, http, .. } = self else {
            anyhow::bail!("update_block is Librarian's");
        };
        let token = self.token(user).await?;
        let r: Value = http
            .patch(write.url(&format!("/api/v1/context-blocks/{block}")))
            .bearer_auth(token)
            .json(fields)
            .send()
            .await?
            .json()
            .await?;
        r["library_version"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("write refused: {r}"))
    }

    /// A counter or gauge of the (writing) server's `/metrics` (Librarian only).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let Target::Librarian { write, http, .. } = self else {
            return None;
        };
        let text = http
            .get(write.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Reloads the server has started so far (Librarian only: from `/metrics`).
    pub async fn reloads(&self) -> Option<u64> {
        let Target::Librarian {
            write, read, http, ..
        } = self
        else {
            return None;
        };
        let mut total = 0;
        for server in std::iter::once(write).chain(read.as_ref()) {
            let text = http
                .get(server.url("/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            total += text
                .lines()
                .find_map(|l| l.strip_prefix("librarian_reloads_started_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())?;
        }
        Some(total)
    }

    /// `GET /library` for polling clients (Librarian only): the status and the version seen.
    pub async fn poll(&self, user: &str, etag: Option<i64>) -> anyhow::Result<(u16, Option<i64>)> {
        let Target::Librarian {
            write, read, http, ..
        } = self
        else {
            anyhow::bail!("polling is measured against Librarian");
        };
        let server = read.as_ref().unwrap_or(write);
        let token = self.token(user).await?;
        let mut req = http.get(server.url("/api/v1/library")).bearer_auth(token);
        if let Some(v) = etag {
            req = req.header("If-None-Match", format!("\"{v}\""));
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let version = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse().ok());
        let _ = res.bytes().await?;
        Ok((status, version))
    }
}
