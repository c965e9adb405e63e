//! Librarian's domain: the three entity kinds, the mutations clients send, their validation
//! rules, the library snapshot and the error kinds every layer speaks. No I/O lives here, so
//! the store, the actors, the server and the client SDK all share one vocabulary.

pub mod backoff;
pub mod entity;
pub mod error;
pub mod field;
pub mod limits;
pub mod member;
pub mod metrics_buckets;
pub mod mutation;
pub mod patch;
pub mod protocol;
pub mod rate;
pub mod snapshot;
pub mod time;
pub mod validate;

pub use entity::{ContextBlock, Entity, EntityKind, Project, SavedPrompt};
pub use error::{Error, FieldError};
pub use field::Field;
pub use limits::Limits;
pub use member::{Member, MemberRole, Role};
pub use mutation::{
    Committed, ContextBlockPatch, Mutation, MutationOptions, NewContextBlock, NewProject,
    NewSavedPrompt, Op, ProjectPatch, SavedPromptPatch,
};
pub use snapshot::{Library, LibraryInfo, LibrarySnapshot};
pub use time::Timestamp;
