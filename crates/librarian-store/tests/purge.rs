//! Idempotency records are kept for `limits.idempotency_retention_s` and then purged, in
//! batches, on both backends: a key is honoured for the retention period, and a retry that
//! carries a purged key is a new request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_core::{Entity, Mutation, MutationOptions, NewContextBlock};
use librarian_store::{PURGE_BATCH, Store};
use librarian_testkit::both_backends;
use std::time::Duration;
use uuid::Uuid;

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const DAY_MS: i64 = 24 * 3600 * 1000;

fn block(title: &str) -> Mutation {
    Mutation::CreateContextBlock(NewContextBlock {
        id: None,
        project_id: None,
        title: title.into(),
        content: String::new(),
        tags: vec![],
    })
}

fn keyed(key: &str) -> MutationOptions {
    MutationOptions {
        if_version: None,
        idempotency_key: Some(key.into()),
    }
}

async fn titles(store: &Store, lib: Uuid) -> Vec<String> {
    let snap = store.load_library(lib).await.unwrap();
    snap.context_blocks.into_iter().map(|b| b.title).collect()
}

both_backends! {
    async fn records_past_the_retention_are_purged_and_a_retry_with_their_key_applies_anew(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap().id;
        let first_old = store.apply(lib, "alice", block("old"), keyed("old-key")).await.unwrap();
        let first_new = store.apply(lib, "alice", block("new"), keyed("new-key")).await.unwrap();
        // Eight days ago, behind the store's back.
        db.execute(&format!(
            "UPDATE idempotency_keys SET created_at = created_at - {} WHERE key = 'old-key'",
            8 * DAY_MS
        ))
        .await;

        assert_eq!(store.purge_idempotency(WEEK).await.unwrap(), 1);
        assert_eq!(store.purge_idempotency(WEEK).await.unwrap(), 0, "nothing left to purge");

        // The newer key is still honoured: its first answer, nothing written.
        let retry_new = store.apply(lib, "alice", block("new"), keyed("new-key")).await.unwrap();
        assert!(retry_new.replayed);
        assert_eq!(retry_new.library_version, first_new.library_version);
        assert_eq!(retry_new.id, first_new.id);
        // The purged key is forgotten: the retry is a new request.
        let retry_old = store.apply(lib, "alice", block("old"), keyed("old-key")).await.unwrap();
        assert!(!retry_old.replayed);
        assert_eq!(retry_old.library_version, first_new.library_version + 1);
        assert_ne!(retry_old.id, first_old.id);
        assert!(matches!(retry_old.data, Some(Entity::ContextBlock(_))));
        assert_eq!(titles(&store, lib).await, ["old", "new", "old"]);
        // ... and from then on honoured again.
        let again = store.apply(lib, "alice", block("old"), keyed("old-key")).await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.id, retry_old.id);
    }

    async fn a_purge_deletes_batch_after_batch_until_none_is_left(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap().id;
        let kept = store.apply(lib, "alice", block("kept"), keyed("kept-key")).await.unwrap();
        // More than two batches of records from long ago, written straight into the table.
        let old = 2 * PURGE_BATCH + 345;
        db.execute(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {old}) \
             INSERT INTO idempotency_keys \
                 (library_id, key, fingerprint, kind, entity_id, response, library_version, created_at) \
             SELECT '{lib}', 'bulk-' || i, 'fp', 'context_block', '{}', NULL, 0, 1000 + i FROM n",
            Uuid::now_v7()
        ))
        .await;

        assert_eq!(store.purge_idempotency(WEEK).await.unwrap(), old as u64);
        assert_eq!(store.purge_idempotency(WEEK).await.unwrap(), 0);
        let retry = store.apply(lib, "alice", block("kept"), keyed("kept-key")).await.unwrap();
        assert!(retry.replayed, "a record inside the retention survives the purge");
        assert_eq!(retry.id, kept.id);
    }
}
