//! The store against real SQLite and PostgreSQL: versions, field rules, isolation between
//! users, delete semantics, preconditions, idempotency and snapshot consistency.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_core::{
    ContextBlockPatch, Entity, Error, Field, Mutation, MutationOptions, NewContextBlock,
    NewProject, NewSavedPrompt, ProjectPatch, SavedPromptPatch,
};
use librarian_store::Store;
use librarian_testkit::both_backends;
use uuid::Uuid;

fn project(name: &str, parent: Option<Uuid>) -> Mutation {
    Mutation::CreateProject(NewProject {
        id: None,
        name: name.into(),
        description: String::new(),
        parent_id: parent,
    })
}

fn block(title: &str, project: Option<Uuid>) -> Mutation {
    Mutation::CreateContextBlock(NewContextBlock {
        id: None,
        project_id: project,
        title: title.into(),
        content: format!("content of {title}"),
        tags: vec!["t".into()],
    })
}

fn prompt(title: &str, project: Option<Uuid>, blocks: Vec<Uuid>) -> Mutation {
    Mutation::CreateSavedPrompt(NewSavedPrompt {
        id: None,
        project_id: project,
        title: title.into(),
        content: String::new(),
        tags: vec![],
        context_block_ids: blocks,
    })
}

async fn apply(store: &Store, lib: Uuid, m: Mutation) -> Result<(Uuid, i64), Error> {
    // Written by the library's owner.
    let members = store.members(lib).await.expect("members");
    let owner = &members[0].user_id;
    store
        .apply(lib, owner, m, MutationOptions::default())
        .await
        .map(|c| (c.id, c.library_version))
}

async fn ok(store: &Store, lib: Uuid, m: Mutation) -> (Uuid, i64) {
    apply(store, lib, m).await.expect("mutation should commit")
}

fn invalid_fields(r: Result<(Uuid, i64), Error>) -> Vec<String> {
    match r {
        Err(Error::Invalid(errs)) => errs.into_iter().map(|e| e.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

both_backends! {
    async fn every_mutation_returns_the_next_library_version(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let other = store.library_for_user("bob").await.unwrap();
        assert_eq!(lib.version, 0);
        assert_ne!(lib.id, other.id);

        let (p, v1) = ok(&store, lib.id, project("p", None)).await;
        let (b, v2) = ok(&store, lib.id, block("b", Some(p))).await;
        let (s, v3) = ok(&store, lib.id, prompt("s", Some(p), vec![b])).await;
        // Bob's writes have their own sequence and do not move Alice's.
        let (_, bob1) = ok(&store, other.id, project("bob's", None)).await;
        let update = |id| Mutation::UpdateProject {
            id,
            patch: ProjectPatch { name: Field::Set("renamed".into()), ..Default::default() },
        };
        let (_, v4) = ok(&store, lib.id, update(p)).await;
        let (_, v5) = ok(&store, lib.id, Mutation::UpdateContextBlock {
            id: b,
            patch: ContextBlockPatch { title: Field::Set("b2".into()), ..Default::default() },
        }).await;
        let (_, v6) = ok(&store, lib.id, Mutation::UpdateSavedPrompt {
            id: s,
            patch: SavedPromptPatch { title: Field::Set("s2".into()), ..Default::default() },
        }).await;
        let (_, v7) = ok(&store, lib.id, Mutation::DeleteSavedPrompt { id: s }).await;
        let (_, v8) = ok(&store, lib.id, Mutation::DeleteContextBlock { id: b }).await;
        let (_, v9) = ok(&store, lib.id, Mutation::DeleteProject { id: p }).await;
        assert_eq!([v1, v2, v3, v4, v5, v6, v7, v8, v9], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(bob1, 1);

        let snap = store.load_library(lib.id).await.unwrap();
        assert_eq!(snap.version, 9);
        assert!(snap.is_empty());
        let bob = store.load_library(other.id).await.unwrap();
        assert_eq!((bob.version, bob.projects.len()), (1, 1));
        assert_eq!(store.library_for_user("alice").await.unwrap().version, 9);
    }

    async fn created_rows_come_back_in_the_snapshot_as_written(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let wanted = Uuid::new_v4();
        let committed = store
            .apply(lib.id, &lib.user_id, Mutation::CreateContextBlock(NewContextBlock {
                id: Some(wanted),
                project_id: None,
                title: "Tone".into(),
                content: "Be brief. ✓".into(),
                tags: vec!["style".into(), "en".into()],
            }), MutationOptions::default())
            .await
            .unwrap();
        let Some(Entity::ContextBlock(written)) = committed.data else { panic!("no block") };
        assert_eq!(written.id, wanted);
        assert_eq!(written.version, 1);
        let snap = store.load_library(lib.id).await.unwrap();
        assert_eq!(snap.context_blocks, vec![written]);
        // The same id again is a conflict, and writes nothing.
        let again = apply(&store, lib.id, Mutation::CreateContextBlock(NewContextBlock {
            id: Some(wanted),
            project_id: None,
            title: "x".into(),
            content: String::new(),
            tags: vec![],
        })).await;
        assert!(matches!(again, Err(Error::AlreadyExists { id, .. }) if id == wanted), "{again:?}");
        assert_eq!(store.load_library(lib.id).await.unwrap().version, 1);
    }

    async fn each_field_rule_names_the_field_and_writes_nothing(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let (p, _) = ok(&store, lib.id, project("p", None)).await;
        let (b, _) = ok(&store, lib.id, block("b", None)).await;
        let (s, before) = ok(&store, lib.id, prompt("s", None, vec![b])).await;
        let limits = store.limits().clone();

        let cases: Vec<(Mutation, Vec<&str>)> = vec![
            (project("", None), vec!["name"]),
            (project(&"n".repeat(limits.name_max + 1), None), vec!["name"]),
            (Mutation::CreateProject(NewProject {
                id: None, name: "ok".into(),
                description: "d".repeat(limits.description_max + 1), parent_id: None,
            }), vec!["description"]),
            (block("  ", None), vec!["title"]),
            (Mutation::CreateContextBlock(NewContextBlock {
                id: None, project_id: None, title: "t".into(),
                content: "c".repeat(limits.content_max + 1),
                tags: (0..=limits.tags_max).map(|i| i.to_string()).collect(),
            }), vec!["content", "tags"]),
            (Mutation::CreateContextBlock(NewContextBlock {
                id: None, project_id: None, title: "t".into(), content: String::new(),
                tags: vec!["x".repeat(limits.tag_max + 1)],
            }), vec!["tags[0]"]),
            (prompt("s", None, vec![b, b]), vec!["context_block_ids[1]"]),
            (prompt("s", None, (0..=limits.prompt_blocks_max).map(|_| Uuid::new_v4()).collect()),
                vec!["context_block_ids"]),
            (prompt("s", None, vec![b, Uuid::new_v4()]), vec!["context_block_ids[1]"]),
            (block("b", Some(Uuid::new_v4())), vec!["project_id"]),
            (project("child", Some(Uuid::new_v4())), vec!["parent_id"]),
            (Mutation::UpdateProject { id: p, patch: ProjectPatch {
                name: Field::Null, ..Default::default() } }, vec!["name"]),
            (Mutation::UpdateSavedPrompt { id: s, patch: SavedPromptPatch {
                tags: Field::Null, context_block_ids: Field::Set(vec![Uuid::new_v4()]),
                ..Default::default() } }, vec!["tags"]),
            (Mutation::UpdateSavedPrompt { id: s, patch: SavedPromptPatch {
                context_block_ids: Field::Set(vec![Uuid::new_v4()]),
                ..Default::default() } }, vec!["context_block_ids[0]"]),
        ];
        for (m, fields) in cases {
            let desc = format!("{m:?}");
            assert_eq!(invalid_fields(apply(&store, lib.id, m).await), fields, "{desc}");
        }
        let snap = store.load_library(lib.id).await.unwrap();
        assert_eq!(snap.version, before, "a refused mutation must not bump the version");
        assert_eq!(snap.len(), 3);
        assert_eq!(snap.saved_prompts[0].context_block_ids, vec![b]);
    }

    async fn other_users_ids_behave_exactly_like_missing_ones(db) {
        let store = db.store().await;
        let alice = store.library_for_user("alice").await.unwrap();
        let mallory = store.library_for_user("mallory").await.unwrap();
        let (p, _) = ok(&store, alice.id, project("secret", None)).await;
        let (b, _) = ok(&store, alice.id, block("secret", Some(p))).await;
        let (s, _) = ok(&store, alice.id, prompt("secret", Some(p), vec![b])).await;
        let missing = Uuid::new_v4();

        for (theirs, absent) in [(p, missing), (b, missing), (s, missing)] {
            for id in [theirs, absent] {
                let attempts = vec![
                    Mutation::UpdateProject { id, patch: ProjectPatch::default() },
                    Mutation::DeleteProject { id },
                    Mutation::UpdateContextBlock { id, patch: ContextBlockPatch::default() },
                    Mutation::DeleteContextBlock { id },
                    Mutation::UpdateSavedPrompt { id, patch: SavedPromptPatch::default() },
                    Mutation::DeleteSavedPrompt { id },
                ];
                for m in attempts {
                    let r = apply(&store, mallory.id, m).await;
                    assert!(matches!(r, Err(Error::NotFound { id: got, .. }) if got == id), "{r:?}");
                }
            }
        }
        // As references inside a body: the same "no such …" field error as a random id.
        for id in [p, missing] {
            assert_eq!(invalid_fields(apply(&store, mallory.id, project("x", Some(id))).await), ["parent_id"]);
            assert_eq!(invalid_fields(apply(&store, mallory.id, block("x", Some(id))).await), ["project_id"]);
        }
        for id in [b, missing] {
            assert_eq!(
                invalid_fields(apply(&store, mallory.id, prompt("x", None, vec![id])).await),
                ["context_block_ids[0]"]
            );
        }
        // Another user may even create a row with the same id: ids are scoped to a library.
        let same_id = Mutation::CreateProject(NewProject {
            id: Some(p), name: "mine".into(), description: String::new(), parent_id: None,
        });
        ok(&store, mallory.id, same_id).await;

        let snap = store.load_library(alice.id).await.unwrap();
        assert_eq!(snap.version, 3);
        assert_eq!(snap.projects[0].name, "secret");
        assert_eq!(snap.saved_prompts[0].context_block_ids, vec![b]);
        assert_eq!(store.load_library(mallory.id).await.unwrap().version, 1);
    }

    async fn deleting_a_block_removes_it_from_every_prompt(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let (b1, _) = ok(&store, lib.id, block("b1", None)).await;
        let (b2, _) = ok(&store, lib.id, block("b2", None)).await;
        let (b3, _) = ok(&store, lib.id, block("b3", None)).await;
        let (s1, _) = ok(&store, lib.id, prompt("s1", None, vec![b1, b2, b3])).await;
        let (s2, _) = ok(&store, lib.id, prompt("s2", None, vec![b2])).await;
        let (s3, _) = ok(&store, lib.id, prompt("s3", None, vec![b3, b1])).await;
        ok(&store, lib.id, Mutation::DeleteContextBlock { id: b2 }).await;

        let snap = store.load_library(lib.id).await.unwrap();
        let ids = |id| snap.saved_prompt(id).unwrap().context_block_ids.clone();
        assert_eq!(ids(s1), vec![b1, b3], "order of the rest is kept");
        assert_eq!(ids(s2), Vec::<Uuid>::new());
        assert_eq!(ids(s3), vec![b3, b1]);
        // The prompts that changed moved to a new row version; the untouched one did not.
        assert_eq!(snap.saved_prompt(s1).unwrap().version, 2);
        assert_eq!(snap.saved_prompt(s2).unwrap().version, 2);
        assert_eq!(snap.saved_prompt(s3).unwrap().version, 1);
    }

    async fn deleting_a_project_moves_its_contents_to_its_parent(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let (root, _) = ok(&store, lib.id, project("root", None)).await;
        let (mid, _) = ok(&store, lib.id, project("mid", Some(root))).await;
        let (leaf, _) = ok(&store, lib.id, project("leaf", Some(mid))).await;
        let (b, _) = ok(&store, lib.id, block("b", Some(mid))).await;
        let (s, _) = ok(&store, lib.id, prompt("s", Some(mid), vec![b])).await;
        ok(&store, lib.id, Mutation::DeleteProject { id: mid }).await;
        let snap = store.load_library(lib.id).await.unwrap();
        assert!(snap.project(mid).is_none());
        assert_eq!(snap.project(leaf).unwrap().parent_id, Some(root));
        assert_eq!(snap.context_block(b).unwrap().project_id, Some(root));
        assert_eq!(snap.saved_prompt(s).unwrap().project_id, Some(root));
        assert_eq!(snap.saved_prompt(s).unwrap().context_block_ids, vec![b]);

        // A top-level project's contents move to the top level.
        ok(&store, lib.id, Mutation::DeleteProject { id: root }).await;
        let snap = store.load_library(lib.id).await.unwrap();
        assert_eq!(snap.projects.len(), 1);
        assert_eq!(snap.project(leaf).unwrap().parent_id, None);
        assert_eq!(snap.context_block(b).unwrap().project_id, None);
        assert_eq!(snap.saved_prompt(s).unwrap().project_id, None);
    }

    async fn a_project_cycle_is_refused(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let (a, _) = ok(&store, lib.id, project("a", None)).await;
        let (b, _) = ok(&store, lib.id, project("b", Some(a))).await;
        let (c, v) = ok(&store, lib.id, project("c", Some(b))).await;
        let reparent = |id, parent| Mutation::UpdateProject {
            id,
            patch: ProjectPatch { parent_id: Field::Set(parent), ..Default::default() },
        };
        assert_eq!(invalid_fields(apply(&store, lib.id, reparent(a, c)).await), ["parent_id"]);
        assert_eq!(invalid_fields(apply(&store, lib.id, reparent(a, a)).await), ["parent_id"]);
        assert_eq!(store.load_library(lib.id).await.unwrap().version, v);
        // Moving within the tree without a cycle is fine, and null moves to the top.
        ok(&store, lib.id, reparent(c, a)).await;
        ok(&store, lib.id, Mutation::UpdateProject {
            id: b,
            patch: ProjectPatch { parent_id: Field::Null, ..Default::default() },
        }).await;
        let snap = store.load_library(lib.id).await.unwrap();
        assert_eq!(snap.project(c).unwrap().parent_id, Some(a));
        assert_eq!(snap.project(b).unwrap().parent_id, None);
    }

    async fn a_row_version_mismatch_is_refused_with_the_current_row(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let (b, _) = ok(&store, lib.id, block("b", None)).await;
        let edit = |title: &str| Mutation::UpdateContextBlock {
            id: b,
            patch: ContextBlockPatch { title: Field::Set(title.into()), ..Default::default() },
        };
        let with = |v| MutationOptions { if_version: Some(v), idempotency_key: None };
        // Two tabs both saw version 1; the first save wins, the second is told what is there.
        let first = store.apply(lib.id, &lib.user_id, edit("tab one"), with(1)).await.unwrap();
        assert_eq!(first.data.unwrap().version(), 2);
        let second = store.apply(lib.id, &lib.user_id, edit("tab two"), with(1)).await;
        match second {
            Err(Error::VersionMismatch { expected, current }) => {
                assert_eq!(expected, 1);
                let Entity::ContextBlock(cur) = *current else { panic!("wrong kind") };
                assert_eq!((cur.version, cur.title.as_str()), (2, "tab one"));
            }
            other => panic!("expected a version mismatch, got {other:?}"),
        }
        let r = store.apply(lib.id, &lib.user_id, Mutation::DeleteContextBlock { id: b }, with(1)).await;
        assert!(matches!(r, Err(Error::VersionMismatch { .. })), "{r:?}");
        assert_eq!(store.load_library(lib.id).await.unwrap().version, 2);
        store.apply(lib.id, &lib.user_id, Mutation::DeleteContextBlock { id: b }, with(2)).await.unwrap();
    }

    async fn an_idempotent_retry_returns_the_first_result_and_writes_once(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let key = |k: &str| MutationOptions { if_version: None, idempotency_key: Some(k.into()) };
        let first = store.apply(lib.id, &lib.user_id, block("b", None), key("k1")).await.unwrap();
        let retry = store.apply(lib.id, &lib.user_id, block("b", None), key("k1")).await.unwrap();
        assert!(!first.replayed);
        assert!(retry.replayed);
        assert_eq!(retry.data, first.data);
        assert_eq!(retry.library_version, first.library_version);
        let snap = store.load_library(lib.id).await.unwrap();
        assert_eq!((snap.version, snap.context_blocks.len()), (1, 1));

        // A delete's retry answers the same, even though the row is gone now.
        let del = Mutation::DeleteContextBlock { id: first.id };
        let d1 = store.apply(lib.id, &lib.user_id, del.clone(), key("k2")).await.unwrap();
        let d2 = store.apply(lib.id, &lib.user_id, del.clone(), key("k2")).await.unwrap();
        assert_eq!((d2.data, d2.library_version, d2.id), (None, d1.library_version, first.id));
        // The same key for a different request is refused, and writes nothing.
        let r = store.apply(lib.id, &lib.user_id, block("other", None), key("k1")).await;
        assert!(matches!(r, Err(Error::IdempotencyKeyReused)), "{r:?}");
        // Keys are per library: another user's "k1" is a new request.
        let bob = store.library_for_user("bob").await.unwrap();
        let theirs = store.apply(bob.id, &bob.user_id, block("b", None), key("k1")).await.unwrap();
        assert!(!theirs.replayed);
        assert_eq!(store.load_library(lib.id).await.unwrap().version, 2);
    }

    async fn concurrent_retries_with_one_key_write_once(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, lib) = (store.clone(), lib.clone());
                tokio::spawn(async move {
                    let opts = MutationOptions { if_version: None, idempotency_key: Some("same".into()) };
                    store.apply(lib.id, &lib.user_id, block("b", None), opts).await.unwrap()
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(results.iter().filter(|c| !c.replayed).count(), 1);
        assert!(results.iter().all(|c| c.data == results[0].data && c.library_version == 1));
        assert_eq!(store.load_library(lib.id).await.unwrap().context_blocks.len(), 1);
    }

    async fn migrations_are_idempotent_and_readiness_follows_them(db) {
        let store = librarian_store::Store::connect(&librarian_store::StoreConfig::new(db.url()))
            .await
            .unwrap();
        assert!(store.ready().await.is_err(), "not ready before migrating");
        assert!(store.migrate().await.unwrap() >= 1);
        assert_eq!(store.migrate().await.unwrap(), 0);
        store.ready().await.unwrap();
    }
}

both_backends! {
    async fn a_write_to_a_deleted_library_is_refused_as_gone(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap();
        ok(&store, lib.id, project("p", None)).await;
        db.execute("DELETE FROM projects; DELETE FROM libraries").await;
        let err = store
            .apply(lib.id, "alice", project("q", None), MutationOptions::default())
            .await
            .unwrap_err();
        assert!(librarian_store::is_library_gone(&err), "{err:?}");
        assert!(matches!(err, Error::NoSuchLibrary(id) if id == lib.id), "{err:?}");
        // Finding the user's library again makes a new one.
        let again = store.library_for_user("alice").await.unwrap();
        assert_ne!(again.id, lib.id);
        assert_eq!(ok(&store, again.id, project("q", None)).await.1, 1);
    }
}

both_backends! {
    async fn a_users_library_is_returned_only_with_its_owner(db) {
        let store = db.store().await;
        // Another first request of carol's inserted her library's row and has not inserted her
        // membership yet (two statements): finding her library now must not return it ownerless,
        // or a session would load it without her among the members (and be revoked).
        let id = Uuid::now_v7();
        db.execute(&format!(
            "INSERT INTO libraries (id, default_for, version, created_at, updated_at, name) \
             VALUES ('{id}', 'carol', 0, 0, 0, 'My library')"
        ))
        .await;
        let lib = store.library_for_user("carol").await.unwrap();
        assert_eq!(lib.id, id);
        let members = store.members(id).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].user_id, "carol");
        assert_eq!(members[0].role, librarian_core::Role::Owner);
        let snapshot = store.load_library(id).await.unwrap();
        assert_eq!(snapshot.role_of("carol"), Some(librarian_core::Role::Owner));
    }
}
