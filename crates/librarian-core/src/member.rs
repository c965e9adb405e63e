//! Members of a library and their roles (DESIGN §9): `owner` (exactly one; everything,
//! including members), `editor` (read, every mutation), `viewer` (read only).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// The role stored as `s`, if it is one.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "editor" => Some(Role::Editor),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// May change the library's rows.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }
}

/// One member as the snapshot lists them (`members`, sorted by user id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberRole {
    pub user_id: String,
    pub role: Role,
}

/// `user_id`'s role in `members` (sorted by user id, as snapshots list them), if a member.
pub fn role_in(members: &[MemberRole], user_id: &str) -> Option<Role> {
    members
        .binary_search_by(|m| m.user_id.as_str().cmp(user_id))
        .ok()
        .map(|i| members[i].role)
}

/// One member of a library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub added_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_stored_names() {
        for role in [Role::Owner, Role::Editor, Role::Viewer] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        assert!(Role::Editor.can_write() && !Role::Viewer.can_write());
    }
}
