//! The size rules of DESIGN §2, as configurable limits with the documented defaults.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Project `name`, in characters.
    pub name_max: usize,
    /// Project `description`, in characters.
    pub description_max: usize,
    /// Block and prompt `title`, in characters.
    pub title_max: usize,
    /// Block and prompt `content`, in characters.
    pub content_max: usize,
    /// Number of tags on one block or prompt.
    pub tags_max: usize,
    /// One tag, in characters.
    pub tag_max: usize,
    /// Number of `context_block_ids` in one prompt.
    pub prompt_blocks_max: usize,
    /// An `Idempotency-Key` / `mutation_id`, in characters.
    pub idempotency_key_max: usize,
    /// HTTP body and WebSocket frame size, in bytes.
    pub body_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            name_max: 200,
            description_max: 2_000,
            title_max: 200,
            content_max: 100_000,
            tags_max: 32,
            tag_max: 50,
            prompt_blocks_max: 200,
            idempotency_key_max: 200,
            body_max_bytes: 1024 * 1024,
        }
    }
}
