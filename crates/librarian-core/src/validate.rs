//! The field rules of DESIGN §2 that need no database: lengths, counts, blanks, duplicates.
//! Rules that need the database (references exist, no cycles) live in the store.

use crate::error::{Error, FieldError};
use crate::field::Field;
use crate::limits::Limits;
use crate::mutation::Mutation;
use std::collections::HashSet;
use uuid::Uuid;

/// Checks every field of `m`, reporting all broken rules at once.
pub fn validate(m: &Mutation, limits: &Limits) -> Result<(), Error> {
    let mut v = Validator {
        limits,
        errors: Vec::new(),
    };
    match m {
        Mutation::CreateProject(p) => {
            v.name(&p.name);
            v.description(&p.description);
            if p.id.is_some() && p.id == p.parent_id {
                v.push("parent_id", "a project cannot be its own parent");
            }
        }
        Mutation::UpdateProject { id, patch } => {
            v.required("name", &patch.name, |v, s| v.name(s));
            v.required("description", &patch.description, |v, s| v.description(s));
            if patch.parent_id.as_set() == Some(id) {
                v.push("parent_id", "a project cannot be its own parent");
            }
        }
        Mutation::CreateContextBlock(b) => {
            v.title(&b.title);
            v.content(&b.content);
            v.tags(&b.tags);
        }
        Mutation::UpdateContextBlock { patch, .. } => {
            v.required("title", &patch.title, |v, s| v.title(s));
            v.required("content", &patch.content, |v, s| v.content(s));
            v.required("tags", &patch.tags, |v, t| v.tags(t));
        }
        Mutation::CreateSavedPrompt(p) => {
            v.title(&p.title);
            v.content(&p.content);
            v.tags(&p.tags);
            v.block_ids(&p.context_block_ids);
        }
        Mutation::UpdateSavedPrompt { patch, .. } => {
            v.required("title", &patch.title, |v, s| v.title(s));
            v.required("content", &patch.content, |v, s| v.content(s));
            v.required("tags", &patch.tags, |v, t| v.tags(t));
            v.required("context_block_ids", &patch.context_block_ids, |v, ids| {
                v.block_ids(ids)
            });
        }
        Mutation::DeleteProject { .. }
        | Mutation::DeleteContextBlock { .. }
        | Mutation::DeleteSavedPrompt { .. } => {}
    }
    v.finish()
}

/// An idempotency key must be short printable text.
/// A library's name: like a project's, 1 to `limits.name_max` characters.
pub fn validate_library_name(name: &str, limits: &Limits) -> Result<(), Error> {
    let n = name.trim().chars().count();
    if n == 0 || name.chars().count() > limits.name_max {
        return Err(Error::invalid(
            "name",
            format!("must be 1 to {} characters", limits.name_max),
        ));
    }
    Ok(())
}

pub fn validate_idempotency_key(key: &str, limits: &Limits) -> Result<(), Error> {
    let len = key.chars().count();
    if len == 0 || len > limits.idempotency_key_max {
        return Err(Error::invalid(
            "idempotency_key",
            format!("must be 1 to {} characters", limits.idempotency_key_max),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "idempotency_key",
            "must not contain control characters",
        ));
    }
    Ok(())
}

struct Validator<'a> {
    limits: &'a Limits,
    errors: Vec<FieldError>,
}

impl Validator<'_> {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.errors))
        }
    }

    /// A patch field that may be absent or set, but not `null`.
    fn required<T>(&mut self, field: &str, value: &Field<T>, check: impl FnOnce(&mut Self, &T)) {
        match value {
            Field::Absent => {}
            Field::Null => self.push(field, "must not be null"),
            Field::Set(v) => check(self, v),
        }
    }

    fn text(&mut self, field: &str, value: &str, required: bool, max: usize) {
        let len = value.chars().count();
        if required && value.trim().is_empty() {
            self.push(field, "must not be empty");
        } else if len > max {
            self.push(
                field,
                format!("must be at most {max} characters (got {len})"),
            );
        }
    }

    fn name(&mut self, s: &str) {
        self.text("name", s, true, self.limits.name_max);
    }

    fn description(&mut self, s: &str) {
        self.text("description", s, false, self.limits.description_max);
    }

    fn title(&mut self, s: &str) {
        self.text("title", s, true, self.limits.title_max);
    }

    fn content(&mut self, s: &str) {
        self.text("content", s, false, self.limits.content_max);
    }

    fn tags(&mut self, tags: &[String]) {
        if tags.len() > self.limits.tags_max {
            self.push(
                "tags",
                format!("at most {} tags (got {})", self.limits.tags_max, tags.len()),
            );
            return;
        }
        let mut seen = HashSet::new();
        for (i, tag) in tags.iter().enumerate() {
            let field = format!("tags[{i}]");
            self.text(&field, tag, true, self.limits.tag_max);
            if !seen.insert(tag.as_str()) {
                self.push(field, format!("duplicate tag {tag:?}"));
            }
        }
    }

    fn block_ids(&mut self, ids: &[Uuid]) {
        if ids.len() > self.limits.prompt_blocks_max {
            self.push(
                "context_block_ids",
                format!(
                    "at most {} blocks (got {})",
                    self.limits.prompt_blocks_max,
                    ids.len()
                ),
            );
            return;
        }
        let mut seen = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if !seen.insert(id) {
                self.push(
                    format!("context_block_ids[{i}]"),
                    format!("block {id} is listed twice"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::{NewContextBlock, ProjectPatch};

    fn fields(r: Result<(), Error>) -> Vec<String> {
        match r {
            Err(Error::Invalid(errs)) => errs.into_iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn every_broken_field_is_named() {
        let limits = Limits::default();
        let m = Mutation::CreateContextBlock(NewContextBlock {
            id: None,
            project_id: None,
            title: " ".into(),
            content: "x".repeat(limits.content_max + 1),
            tags: vec!["ok".into(), "".into(), "ok".into()],
        });
        assert_eq!(
            fields(validate(&m, &limits)),
            ["title", "content", "tags[1]", "tags[2]"]
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let limits = Limits::default();
        let m = Mutation::UpdateProject {
            id: Uuid::nil(),
            patch: ProjectPatch {
                name: Field::Set("é".repeat(limits.name_max)),
                ..Default::default()
            },
        };
        assert!(validate(&m, &limits).is_ok());
    }

    #[test]
    fn null_for_a_required_field_is_refused() {
        let m = Mutation::UpdateProject {
            id: Uuid::nil(),
            patch: ProjectPatch {
                name: Field::Null,
                ..Default::default()
            },
        };
        assert_eq!(fields(validate(&m, &Limits::default())), ["name"]);
    }
}
