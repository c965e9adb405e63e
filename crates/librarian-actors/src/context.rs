//! `ContextActor`: the write path for context blocks. The three entity actors differ only in the
//! kind they accept, so they are defined together in [`crate::write`]; this module names this one.

pub use crate::write::{ContextActor, WriteContextBlock};

/// The per-kind write enum of old: a write is now the [`Mutation`](librarian_core::Mutation)
/// itself, carried by [`WriteContextBlock`]. Kept only while the crate root still exports the name.
pub type ContextBlockWrite = librarian_core::Mutation;
