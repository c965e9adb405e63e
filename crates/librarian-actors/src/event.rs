//! The event a committed mutation publishes.

use actix::Message;
use librarian_core::{EntityKind, Op};
use uuid::Uuid;

/// "Library `library_id` reached `version` by `op` on `kind` `id`." Sent only after the commit.
/// Keyed by library, not by user, so shared libraries need no change to the sync path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct Mutated {
    pub library_id: Uuid,
    pub version: i64,
    pub kind: EntityKind,
    pub op: Op,
    pub id: Uuid,
}
