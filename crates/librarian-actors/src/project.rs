//! `ProjectActor`: the write path for projects. The three entity actors differ only in the kind
//! they accept, so they are defined together in [`crate::write`]; this module names this one.

pub use crate::write::{ProjectActor, WriteProject};

/// The per-kind write enum of old: a write is now the [`Mutation`](librarian_core::Mutation)
/// itself, carried by [`WriteProject`]. Kept only while the crate root still exports the name.
pub type ProjectWrite = librarian_core::Mutation;
