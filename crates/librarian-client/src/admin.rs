//! [`Admin`]: the HTTP side of shared libraries (DESIGN §9): list, create, rename and delete
//! libraries, and manage their members. A library's rows are changed through a
//! [`Library`](crate::Library) opened on it.

use crate::{ClientError, TokenProvider};
use librarian_core::{LibraryInfo, Member, Role};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Library and member management over HTTP, with tokens from a [`TokenProvider`].
#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
    tokens: TokenProvider,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct Versioned<T> {
    data: T,
    library_version: i64,
}

impl Admin {
    /// `base_url`: the server's HTTP address, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: &str, tokens: TokenProvider) -> Admin {
        Admin {
            base: format!("{}/api/v1", base_url.trim_end_matches('/')),
            tokens,
            http: reqwest::Client::new(),
        }
    }

    /// Every library the user is a member of: their own first, then the others by name.
    pub async fn libraries(&self) -> Result<Vec<LibraryInfo>, ClientError> {
        #[derive(Deserialize)]
        struct List {
            libraries: Vec<LibraryInfo>,
        }
        let list: List = self.call(reqwest::Method::GET, "/libraries", None).await?;
        Ok(list.libraries)
    }

    /// A new library owned by the user.
    pub async fn create_library(&self, name: &str) -> Result<LibraryInfo, ClientError> {
        let body = serde_json::json!({ "name": name });
        let reply: Data<LibraryInfo> = self
            .call(reqwest::Method::POST, "/libraries", Some(body))
            .await?;
        Ok(reply.data)
    }

    /// Renames a library (its owner only).
    pub async fn rename_library(&self, id: Uuid, name: &str) -> Result<LibraryInfo, ClientError> {
        let body = serde_json::json!({ "name": name });
        let reply: Data<LibraryInfo> = self
            .call(
                reqwest::Method::PATCH,
                &format!("/libraries/{id}"),
                Some(body),
            )
            .await?;
        Ok(reply.data)
    }

    /// Deletes a library and everything in it (its owner only; not the user's own library).
    /// Answers the version of the deletion.
    pub async fn delete_library(&self, id: Uuid) -> Result<i64, ClientError> {
        let reply: Versioned<Option<Member>> = self
            .call(reqwest::Method::DELETE, &format!("/libraries/{id}"), None)
            .await?;
        Ok(reply.library_version)
    }

    /// The members of a library, by user id.
    pub async fn members(&self, id: Uuid) -> Result<Vec<Member>, ClientError> {
        #[derive(Deserialize)]
        struct List {
            members: Vec<Member>,
        }
        let list: List = self
            .call(
                reqwest::Method::GET,
                &format!("/libraries/{id}/members"),
                None,
            )
            .await?;
        Ok(list.members)
    }

    /// Adds `user` to the library or changes their role (its owner only). Answers the member
    /// and the library version of the change.
    pub async fn set_member(
        &self,
        id: Uuid,
        user: &str,
        role: Role,
    ) -> Result<(Member, i64), ClientError> {
        let body = serde_json::json!({ "role": role });
        let reply: Versioned<Member> = self
            .call(reqwest::Method::PUT, &member_path(id, user), Some(body))
            .await?;
        Ok((reply.data, reply.library_version))
    }

    /// Removes `user` from the library (its owner, or the user themself leaving). Answers the
    /// library version of the removal.
    pub async fn remove_member(&self, id: Uuid, user: &str) -> Result<i64, ClientError> {
        let reply: Versioned<Option<Member>> = self
            .call(reqwest::Method::DELETE, &member_path(id, user), None)
            .await?;
        Ok(reply.library_version)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| ClientError::Http(format!("the token provider failed: {e}")))?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if !status.is_success() {
            let problem: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            return Err(ClientError::Rejected {
                status: status.as_u16(),
                detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
                problem,
            });
        }
        Ok(serde_json::from_str(&text)?)
    }
}

/// The members path, the user id percent-encoded (ids may hold any printable character).
fn member_path(id: Uuid, user: &str) -> String {
    let mut encoded = String::new();
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/libraries/{id}/members/{encoded}")
}
