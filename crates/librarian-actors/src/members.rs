//! Membership changes and library deletion (DESIGN §9) are library mutations: each commits
//! through the store (a version bump, NOTIFY on PostgreSQL) and is then published to the
//! [`LibraryActor`](crate::LibraryActor) like any write, so that sessions of removed members
//! end as soon as the version that removed them is loaded, here and on every instance.

use crate::SyncCore;
use crate::library::VersionSeen;
use librarian_core::{Error, Member, Role};
use uuid::Uuid;

impl SyncCore {
    /// Gives `target` a role in the library (`user` must own it). Answers the member, whether
    /// they were added, and the library version of the change.
    pub async fn put_member(
        &self,
        library_id: Uuid,
        user: &str,
        target: &str,
        role: Role,
    ) -> Result<(Member, bool, i64), Error> {
        let (member, added, version) = self
            .store
            .put_member(library_id, user, target, role)
            .await?;
        self.published(library_id, version);
        Ok((member, added, version))
    }

    /// Removes `target` from the library (its owner, or `target` leaving).
    pub async fn remove_member(
        &self,
        library_id: Uuid,
        user: &str,
        target: &str,
    ) -> Result<i64, Error> {
        let version = self.store.remove_member(library_id, user, target).await?;
        self.published(library_id, version);
        Ok(version)
    }

    /// Deletes the library (`user` must own it; not a default library).
    pub async fn delete_library(&self, library_id: Uuid, user: &str) -> Result<i64, Error> {
        let version = self.store.delete_library(library_id, user).await?;
        self.published(library_id, version);
        Ok(version)
    }

    fn published(&self, library_id: Uuid, version: i64) {
        self.library.do_send(VersionSeen {
            library_id,
            version,
        });
    }
}
