//! Turning client text frames into mutations, and replies into frames.

use crate::body::from_value;
use crate::problem::Problem;
use librarian_core::protocol::{
    Ack, AuthFrame, ErrorFrame, MutateFrame, Reject, SeenFrame, ServerFrame,
};
use librarian_core::{Committed, FieldError, Mutation, MutationOptions, Op};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

/// What a client frame asks for.
pub enum Request {
    /// A mutation to run; its problems are answered with `reject`.
    Mutate {
        mutation_id: String,
        parsed: Result<(Mutation, MutationOptions), Problem>,
    },
    /// A fresh token for the session (`auth`).
    Auth(String),
    /// The client applied this version (`seen`).
    Seen(i64),
    /// What the client holds does not match a digest: send the whole library (`resync`).
    Resync,
    /// Not a frame of the protocol: answered with `error`, then close 4400.
    Malformed(String),
}

pub fn parse(text: &[u8]) -> Request {
    let value: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => return Request::Malformed(format!("not JSON: {e}")),
    };
    let kind = value.get("type").and_then(Value::as_str);
    match kind {
        Some("mutate") => {}
        // Each frame's own type refuses a missing or mistyped field and any other field.
        Some("auth") => {
            return typed::<AuthFrame>(value, "auth")
                .map_or_else(Request::Malformed, |f| Request::Auth(f.token));
        }
        Some("seen") => {
            return typed::<SeenFrame>(value, "seen")
                .map_or_else(Request::Malformed, |f| Request::Seen(f.version));
        }
        Some("resync") => {
            return match value.as_object().map(|m| m.len()) {
                Some(1) => Request::Resync,
                _ => Request::Malformed("a resync frame has no other field than \"type\"".into()),
            };
        }
        Some(other) => return Request::Malformed(format!("unknown frame type {other:?}")),
        None => return Request::Malformed("a frame needs a string \"type\"".into()),
    }
    let Some(mutation_id) = value.get("mutation_id").and_then(Value::as_str) else {
        return Request::Malformed("a mutate frame needs a string \"mutation_id\"".into());
    };
    let mutation_id = mutation_id.to_owned();
    let mut value = value;
    if let Some(map) = value.as_object_mut() {
        map.remove("type");
    }
    let parsed = from_value::<MutateFrame>(value).and_then(to_mutation);
    Request::Mutate {
        mutation_id,
        parsed,
    }
}

/// A client frame as its type (`type` itself aside), or why it is not one.
fn typed<T: DeserializeOwned>(mut value: Value, kind: &str) -> Result<T, String> {
    if let Some(map) = value.as_object_mut() {
        map.remove("type");
    }
    serde_json::from_value(value).map_err(|e| format!("not a valid {kind} frame: {e}"))
}

fn to_mutation(f: MutateFrame) -> Result<(Mutation, MutationOptions), Problem> {
    let opts = MutationOptions {
        if_version: f.if_version,
        idempotency_key: Some(f.mutation_id),
    };
    let (id, data) = (f.id, f.data.unwrap_or(Value::Null));
    let mutation = match f.op {
        Op::ProjectCreate => Mutation::CreateProject(create(id, data)?),
        Op::ContextBlockCreate => Mutation::CreateContextBlock(create(id, data)?),
        Op::SavedPromptCreate => Mutation::CreateSavedPrompt(create(id, data)?),
        Op::ProjectUpdate => Mutation::UpdateProject {
            id: need(id)?,
            patch: patch(data)?,
        },
        Op::ContextBlockUpdate => Mutation::UpdateContextBlock {
            id: need(id)?,
            patch: patch(data)?,
        },
        Op::SavedPromptUpdate => Mutation::UpdateSavedPrompt {
            id: need(id)?,
            patch: patch(data)?,
        },
        Op::ProjectDelete => Mutation::DeleteProject { id: need(id)? },
        Op::ContextBlockDelete => Mutation::DeleteContextBlock { id: need(id)? },
        Op::SavedPromptDelete => Mutation::DeleteSavedPrompt { id: need(id)? },
    };
    Ok((mutation, opts))
}

fn need(id: Option<Uuid>) -> Result<Uuid, Problem> {
    id.ok_or_else(|| Problem::invalid(vec![FieldError::new("id", "required for this op")]))
}

/// A create's fields; a frame-level `id` is the id to create with.
fn create<T: DeserializeOwned>(id: Option<Uuid>, data: Value) -> Result<T, Problem> {
    let Value::Object(mut fields) = data else {
        return Err(Problem::invalid(vec![FieldError::new(
            "data",
            "must be an object",
        )]));
    };
    if let Some(id) = id {
        let id = Value::String(id.to_string());
        match fields.get("id") {
            Some(inner) if !inner.is_null() && *inner != id => {
                return Err(Problem::invalid(vec![FieldError::new(
                    "id",
                    "differs from data.id",
                )]));
            }
            _ => {
                fields.insert("id".into(), id);
            }
        }
    }
    from_value(Value::Object(fields))
}

fn patch<T: DeserializeOwned>(data: Value) -> Result<T, Problem> {
    let data = if data.is_null() {
        Value::Object(Default::default())
    } else {
        data
    };
    if !data.is_object() {
        return Err(Problem::invalid(vec![FieldError::new(
            "data",
            "must be an object",
        )]));
    }
    from_value(data)
}

pub fn ack(mutation_id: &str, committed: Committed) -> String {
    frame(&ServerFrame::Ack(Ack {
        mutation_id: mutation_id.to_owned(),
        library_version: committed.library_version,
        data: committed.data,
    }))
}

pub fn reject(mutation_id: &str, problem: &Problem) -> String {
    frame(&ServerFrame::Reject(Reject {
        mutation_id: mutation_id.to_owned(),
        error: serde_json::to_value(problem).unwrap_or(Value::Null),
    }))
}

pub fn error(code: &str, message: impl Into<String>) -> String {
    frame(&ServerFrame::Error(ErrorFrame {
        code: code.to_owned(),
        message: message.into(),
    }))
}

pub fn frame(frame: &ServerFrame) -> String {
    // Serializing these types cannot fail (no maps with non-string keys).
    serde_json::to_string(frame).unwrap_or_default()
}
