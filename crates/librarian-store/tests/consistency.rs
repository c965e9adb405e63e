//! G2 on both backends: while one task keeps writing (deleting blocks that prompts use,
//! editing rows) another keeps loading. Every snapshot must be exactly the library as of its
//! own version: no prompt pointing at a block the snapshot lacks, no row from a later version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_core::{
    ContextBlockPatch, Field, LibrarySnapshot, Mutation, MutationOptions, NewContextBlock,
    NewSavedPrompt, SavedPromptPatch,
};
use librarian_testkit::{Lcg, both_backends};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// What a library holds, in a form two snapshots can be compared by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    blocks: BTreeMap<Uuid, String>,
    prompts: BTreeMap<Uuid, (String, Vec<Uuid>)>,
}

impl Model {
    fn of(snap: &LibrarySnapshot) -> Model {
        Model {
            blocks: snap
                .context_blocks
                .iter()
                .map(|b| (b.id, b.title.clone()))
                .collect(),
            prompts: snap
                .saved_prompts
                .iter()
                .map(|p| (p.id, (p.title.clone(), p.context_block_ids.clone())))
                .collect(),
        }
    }
}

const WRITES: usize = 300;

both_backends! {
    async fn snapshots_are_consistent_while_blocks_are_deleted_under_them(db) {
        let store = db.store().await;
        let lib = store.library_for_user("alice").await.unwrap().id;
        let done = Arc::new(AtomicBool::new(false));

        let reader = {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen: Vec<(i64, Model)> = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let snap = store.load_library(lib).await.unwrap();
                    for p in &snap.saved_prompts {
                        for b in &p.context_block_ids {
                            assert!(
                                snap.context_block(*b).is_some(),
                                "snapshot v{} has prompt {} pointing at missing block {b}",
                                snap.version, p.id
                            );
                        }
                    }
                    seen.push((snap.version, Model::of(&snap)));
                }
                seen
            })
        };

        let mut rng = Lcg(7);
        let mut model = Model::default();
        let mut expected: HashMap<i64, Model> = HashMap::from([(0, Model::default())]);
        for i in 0..WRITES {
            let blocks: Vec<Uuid> = model.blocks.keys().copied().collect();
            let prompts: Vec<Uuid> = model.prompts.keys().copied().collect();
            let title = format!("w{i}");
            let m = match rng.next(6) {
                _ if blocks.len() < 3 => Mutation::CreateContextBlock(NewContextBlock {
                    id: Some(Uuid::now_v7()), project_id: None, title: title.clone(),
                    content: String::new(), tags: vec![],
                }),
                0 | 1 => Mutation::CreateSavedPrompt(NewSavedPrompt {
                    id: Some(Uuid::now_v7()), project_id: None, title: title.clone(),
                    content: String::new(), tags: vec![],
                    context_block_ids: blocks.iter().copied().filter(|_| rng.next(2) == 0).collect(),
                }),
                2 => Mutation::DeleteContextBlock { id: blocks[rng.next(blocks.len())] },
                3 if !prompts.is_empty() => Mutation::UpdateSavedPrompt {
                    id: prompts[rng.next(prompts.len())],
                    patch: SavedPromptPatch {
                        title: Field::Set(title.clone()),
                        context_block_ids: Field::Set(
                            blocks.iter().rev().copied().filter(|_| rng.next(3) == 0).collect(),
                        ),
                        ..Default::default()
                    },
                },
                4 => Mutation::UpdateContextBlock {
                    id: blocks[rng.next(blocks.len())],
                    patch: ContextBlockPatch { title: Field::Set(title.clone()), ..Default::default() },
                },
                _ => Mutation::CreateContextBlock(NewContextBlock {
                    id: Some(Uuid::now_v7()), project_id: None, title: title.clone(),
                    content: String::new(), tags: vec![],
                }),
            };
            // Track what the library must hold after this write.
            match &m {
                Mutation::CreateContextBlock(b) => { model.blocks.insert(b.id.unwrap(), title); }
                Mutation::UpdateContextBlock { id, .. } => { model.blocks.insert(*id, title); }
                Mutation::DeleteContextBlock { id } => {
                    model.blocks.remove(id);
                    for (_, ids) in model.prompts.values_mut() {
                        ids.retain(|b| b != id);
                    }
                }
                Mutation::CreateSavedPrompt(p) => {
                    model.prompts.insert(p.id.unwrap(), (title, p.context_block_ids.clone()));
                }
                Mutation::UpdateSavedPrompt { id, patch } => {
                    let ids = patch.context_block_ids.as_set().cloned().unwrap_or_default();
                    model.prompts.insert(*id, (title, ids));
                }
                _ => unreachable!(),
            }
            let committed = store.apply(lib, "alice", m, MutationOptions::default()).await.unwrap();
            assert_eq!(committed.library_version, i as i64 + 1);
            expected.insert(committed.library_version, model.clone());
        }
        done.store(true, Ordering::Relaxed);
        let seen = reader.await.unwrap();

        assert!(seen.len() > 1, "the reader should have loaded during the writes");
        let mut last = -1;
        for (version, got) in &seen {
            assert!(*version >= last, "a later load went back from v{last} to v{version}");
            last = *version;
            assert_eq!(Some(got), expected.get(version), "snapshot v{version} does not match its version");
        }
        let distinct: std::collections::HashSet<i64> = seen.iter().map(|(v, _)| *v).collect();
        // Report how much interleaving the run exercised (visible with --nocapture).
        println!("{} loads over {} distinct versions", seen.len(), distinct.len());
    }
}
