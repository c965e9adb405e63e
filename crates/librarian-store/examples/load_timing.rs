//! How long `load_library` takes for a library of 300 items (100 projects, 100 blocks,
//! 100 prompts of 5 blocks each), on SQLite and, when `LIBRARIAN_TEST_DATABASE_URL` is set,
//! on PostgreSQL. A quick measurement, not a benchmark (that is `librarian-bench`):
//!
//! ```sh
//! LIBRARIAN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p librarian-store --example load_timing
//! ```

use librarian_core::{Mutation, MutationOptions, NewContextBlock, NewProject, NewSavedPrompt};
use librarian_store::Store;
use librarian_testkit::TestDb;
use std::time::{Duration, Instant};

const ROUNDS: usize = 300;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), librarian_core::Error> {
    measure("sqlite", &TestDb::sqlite()).await?;
    if let Some(db) = TestDb::postgres().await {
        measure("postgres", &db).await?;
    }
    Ok(())
}

async fn measure(name: &str, db: &TestDb) -> Result<(), librarian_core::Error> {
    let store = db.store().await;
    let lib = store.library_for_user("bench").await?.id;
    fill(&store, lib).await?;
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
    let mut items = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let snap = store.load_library(lib).await?;
        times.push(start.elapsed());
        items = snap.len();
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let bytes = serde_json::to_vec(&store.load_library(lib).await?).map_or(0, |b| b.len());
    println!(
        "{name}: load_library of {items} items ({bytes} bytes as JSON): p50 {:.2} ms, p99 {:.2} ms over {ROUNDS} loads",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

async fn fill(store: &Store, lib: uuid::Uuid) -> Result<(), librarian_core::Error> {
    let opts = MutationOptions::default;
    let mut projects = Vec::new();
    for i in 0..100 {
        let parent = projects.get(i / 10).copied();
        let m = Mutation::CreateProject(NewProject {
            id: None,
            name: format!("Project {i}"),
            description: "A folder of prompts".into(),
            parent_id: parent,
        });
        projects.push(store.apply(lib, "bench", m, opts()).await?.id);
    }
    let mut blocks = Vec::new();
    for i in 0..100 {
        let m = Mutation::CreateContextBlock(NewContextBlock {
            id: None,
            project_id: Some(projects[i % projects.len()]),
            title: format!("Block {i}"),
            content: "You are a careful assistant. ".repeat(10),
            tags: vec!["style".into(), format!("t{}", i % 7)],
        });
        blocks.push(store.apply(lib, "bench", m, opts()).await?.id);
    }
    for i in 0..100 {
        let m = Mutation::CreateSavedPrompt(NewSavedPrompt {
            id: None,
            project_id: Some(projects[i % projects.len()]),
            title: format!("Prompt {i}"),
            content: "Summarize the following. ".repeat(8),
            tags: vec!["draft".into()],
            context_block_ids: (0..5)
                .map(|k| blocks[(i + k * 13) % blocks.len()])
                .collect(),
        });
        store.apply(lib, "bench", m, opts()).await?;
    }
    Ok(())
}
