//! Cross-instance events on PostgreSQL (DESIGN §6). Each mutation's transaction runs
//! `pg_notify('librarian_mutations', '<library_id> <version>')`, which PostgreSQL delivers on
//! commit only. [`listen`] keeps one dedicated connection (not from the pool: pooled
//! connections built by the pool would not get notifications) listening on that channel, and
//! reconnects with backoff when it drops; after every (re)connect it reports
//! [`ListenerEvent::Listening`], since notifications sent meanwhile are lost: the sync core
//! then checks every served library's version (one reconciliation).

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use librarian_core::backoff::Backoff;
use tokio::sync::mpsc;
use uuid::Uuid;

pub const CHANNEL: &str = "librarian_mutations";
/// Presence changes (DESIGN §9): `"<library_id> <instance_id>"` (see [`crate::presence`]).
pub const PRESENCE_CHANNEL: &str = "librarian_presence";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerEvent {
    /// (Re)connected and listening: anything may have been missed before this.
    Listening,
    /// Another (or this) instance committed `version` of `library_id`.
    Notified { library_id: Uuid, version: i64 },
    /// The sessions `instance_id` holds on `library_id` changed (or were reaped).
    Presence { library_id: Uuid, instance_id: Uuid },
}

/// The payload of a notification: `"<library_id> <version>"`.
pub fn payload(library_id: &str, version: i64) -> String {
    format!("{library_id} {version}")
}

fn parse_presence(payload: &str) -> Option<ListenerEvent> {
    let (library, instance) = payload.split_once(' ')?;
    Some(ListenerEvent::Presence {
        library_id: Uuid::parse_str(library).ok()?,
        instance_id: Uuid::parse_str(instance).ok()?,
    })
}

fn parse(payload: &str) -> Option<ListenerEvent> {
    let (id, version) = payload.split_once(' ')?;
    Some(ListenerEvent::Notified {
        library_id: Uuid::parse_str(id).ok()?,
        version: version.parse().ok()?,
    })
}

/// Listens until `events` is dropped. `url` should name the connection
/// (`application_name`) so operators can tell it from pooled ones.
pub async fn listen(url: String, events: mpsc::UnboundedSender<ListenerEvent>) {
    let mut failures: u32 = 0;
    while !events.is_closed() {
        match AsyncPgConnection::establish(&url).await {
            Ok(mut conn) => match conn
                .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {PRESENCE_CHANNEL}"))
                .await
            {
                Ok(()) => {
                    failures = 0;
                    tracing::info!("listening for changes from other instances");
                    if events.send(ListenerEvent::Listening).is_err() {
                        return;
                    }
                    let mut stream = std::pin::pin!(conn.notifications_stream());
                    while let Some(notification) = stream.next().await {
                        let Ok(n) = notification else { break };
                        let event = if n.channel == PRESENCE_CHANNEL {
                            parse_presence(&n.payload)
                        } else {
                            parse(&n.payload)
                        };
                        match event {
                            Some(event) => {
                                if events.send(event).is_err() {
                                    return;
                                }
                            }
                            None => tracing::warn!(payload = %n.payload, "unreadable notification"),
                        }
                    }
                    tracing::warn!("the listener's connection was lost");
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
            },
            Err(e) => tracing::warn!(error = %e, "the listener cannot connect"),
        }
        failures += 1;
        // The one backoff; no jitter needed for the single listener of an instance.
        tokio::time::sleep(Backoff::DEFAULT.ceiling(failures)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse(&payload(&id.to_string(), 42)),
            Some(ListenerEvent::Notified {
                library_id: id,
                version: 42
            })
        );
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse(&format!("{id} x")), None);
    }
}
