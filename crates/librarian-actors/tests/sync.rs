//! The sync core on real databases: commit-then-publish, coalescing (G6), monotonic views
//! (G3), subscriber lifecycle, failure and recovery, and writes of different users not
//! waiting for one another.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use librarian_actors::{LibraryView, Subscribe, Subscription, SyncCore};
use librarian_core::protocol::SyncState;
use librarian_core::{Error, Mutation, MutationOptions, NewContextBlock};
use librarian_testkit::{TestDb, both_backends_actix};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Guards against a hang only; never a performance assertion.
const PATIENCE: Duration = Duration::from_secs(60);

fn block(title: &str) -> Mutation {
    Mutation::CreateContextBlock(NewContextBlock {
        id: None,
        project_id: None,
        title: title.into(),
        content: String::new(),
        tags: vec![],
    })
}

async fn start(db: &TestDb) -> (SyncCore, Uuid) {
    let store = db.store().await;
    let lib = store.library_for_user("alice").await.unwrap().id;
    (SyncCore::start(store), lib)
}

async fn subscribe(core: &SyncCore, library_id: Uuid) -> Subscription {
    core.library.send(Subscribe { library_id }).await.unwrap()
}

/// Waits until the view satisfies `done`, returning every distinct snapshot version seen on
/// the way (in the order seen).
async fn watch_until(
    views: &mut watch::Receiver<LibraryView>,
    done: impl Fn(&LibraryView) -> bool,
) -> Vec<i64> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view = views.borrow_and_update().clone();
        if let Some(v) = view.version()
            && seen.last() != Some(&v)
        {
            seen.push(v);
        }
        if done(&view) {
            return seen;
        }
        tokio::time::timeout_at(deadline.into(), views.changed())
            .await
            .expect("the view did not get there in time")
            .expect("the library actor went away");
    }
}

fn at_least(version: i64) -> impl Fn(&LibraryView) -> bool {
    move |v| v.version().is_some_and(|have| have >= version)
}

both_backends_actix! {
    async fn a_burst_of_writes_costs_few_reloads_and_views_only_move_forward(db) {
        let (core, lib) = start(&db).await;
        let mut sub = subscribe(&core, lib).await;
        watch_until(&mut sub.views, at_least(0)).await;
        let before = core.stats.read();

        const WRITES: usize = 200;
        // Watch while the writes happen, not only afterwards.
        let watcher = actix_rt::spawn(async move {
            let seen = watch_until(&mut sub.views, at_least(WRITES as i64)).await;
            (sub, seen)
        });
        let writes = (0..WRITES).map(|i| {
            let writers = core.writers.clone();
            actix_rt::spawn(async move {
                writers.apply(lib, "alice", block(&format!("b{i}")), MutationOptions::default()).await
            })
        });
        let mut versions: Vec<i64> = Vec::new();
        for w in futures_util::future::join_all(writes).await {
            versions.push(w.unwrap().unwrap().library_version);
        }
        versions.sort_unstable();
        assert_eq!(versions, (1..=WRITES as i64).collect::<Vec<_>>(), "one version per write");

        let (sub, seen) = watcher.await.unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "versions went back or repeated: {seen:?}");
        assert_eq!(seen.last(), Some(&(WRITES as i64)));
        let view = sub.views.borrow().clone();
        assert_eq!(view.state, SyncState::Live);
        let frame: serde_json::Value =
            serde_json::from_str(&view.snapshot.unwrap().frame()).unwrap();
        assert_eq!(frame["type"], "snapshot");
        assert_eq!(frame["context_blocks"].as_array().unwrap().len(), WRITES);

        let reloads = core.stats.read().reloads_started - before.reloads_started;
        println!("{WRITES} writes -> {reloads} reloads ({:.3} per write), {} snapshots seen",
            reloads as f64 / WRITES as f64, seen.len());
        assert!(reloads <= WRITES as u64 / 4, "{reloads} reloads for {WRITES} writes");
    }

    async fn a_second_subscriber_costs_no_reload(db) {
        let (core, lib) = start(&db).await;
        core.writers.apply(lib, "alice", block("b"), MutationOptions::default()).await.unwrap();
        let mut first = subscribe(&core, lib).await;
        watch_until(&mut first.views, at_least(1)).await;
        let reloads = core.stats.read().reloads_started;
        let second = subscribe(&core, lib).await;
        assert_eq!(second.views.borrow().version(), Some(1), "the current view, at once");
        assert_eq!(core.stats.read().reloads_started, reloads);
    }

    async fn a_refused_write_publishes_nothing(db) {
        let (core, lib) = start(&db).await;
        let mut sub = subscribe(&core, lib).await;
        watch_until(&mut sub.views, at_least(0)).await;
        let before = core.stats.read();
        let r = core.writers.apply(lib, "alice", block(""), MutationOptions::default()).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
        // A later valid write is the next version, and only it causes a reload.
        let ok = core.writers.apply(lib, "alice", block("b"), MutationOptions::default()).await.unwrap();
        assert_eq!(ok.library_version, 1);
        watch_until(&mut sub.views, at_least(1)).await;
        assert_eq!(core.stats.read().reloads_started, before.reloads_started + 1);
    }

    async fn the_last_subscriber_leaving_drops_the_library(db) {
        let (core, lib) = start(&db).await;
        let mut sub = subscribe(&core, lib).await;
        watch_until(&mut sub.views, at_least(0)).await;
        drop(sub);
        // Writes to a library nobody watches cause no reload.
        let before = core.stats.read().reloads_started;
        for i in 0..5 {
            core.writers.apply(lib, "alice", block(&format!("b{i}")), MutationOptions::default()).await.unwrap();
        }
        // A fresh subscriber starts from a fresh load of the current version.
        let mut again = subscribe(&core, lib).await;
        let seen = watch_until(&mut again.views, at_least(5)).await;
        assert_eq!(seen, vec![5]);
        assert_eq!(core.stats.read().reloads_started, before + 1);
    }

    async fn a_failed_reload_reports_an_error_then_recovers(db) {
        let (core, lib) = start(&db).await;
        let mut sub = subscribe(&core, lib).await;
        watch_until(&mut sub.views, at_least(0)).await;
        // Break loading (not writing) behind the server's back.
        db.execute("ALTER TABLE projects RENAME TO projects_away").await;
        core.writers.apply(lib, "alice", block("b"), MutationOptions::default()).await.unwrap();
        watch_until(&mut sub.views, |v| matches!(v.state, SyncState::Error { .. })).await;
        let SyncState::Error { code, retry_in_ms, .. } = sub.views.borrow().state.clone() else {
            unreachable!()
        };
        assert_eq!(code, "reload_failed");
        assert!(retry_in_ms > 0);
        assert_eq!(sub.views.borrow().version(), Some(0), "the last good snapshot stays");

        db.execute("ALTER TABLE projects_away RENAME TO projects").await;
        let seen = watch_until(&mut sub.views, |v| v.version() == Some(1) && v.state == SyncState::Live).await;
        assert_eq!(seen, vec![0, 1]);
        assert!(core.stats.read().reloads_failed >= 1);
    }
}

/// PostgreSQL only: there, writes to different libraries take different row locks. (SQLite
/// has one writer for the whole file by nature.) Holds user A's library row locked from
/// outside, so A's write stalls, and checks B's writes still commit meanwhile.
#[actix_rt::test]
async fn writes_of_one_user_do_not_wait_for_another_users_stalled_write() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let alice = store.library_for_user("alice").await.unwrap().id;
    let bob = store.library_for_user("bob").await.unwrap().id;
    let core = SyncCore::start(store);

    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut locker = AsyncPgConnection::establish(db.url()).await.unwrap();
    let name = format!("locker_{}", Uuid::new_v4().simple());
    locker
        .batch_execute(&format!(
            "SET application_name = '{name}'; \
             BEGIN; SELECT 1 FROM libraries WHERE id = '{alice}' FOR UPDATE;"
        ))
        .await
        .unwrap();
    let stalled = {
        let writers = core.writers.clone();
        actix_rt::spawn(async move {
            writers
                .apply(alice, "alice", block("a"), MutationOptions::default())
                .await
        })
    };
    // Bob writes only once alice's write is queued behind the lock (seen by PostgreSQL).
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity w, pg_stat_activity l \
         WHERE l.application_name = '{name}' AND l.pid = ANY(pg_blocking_pids(w.pid))"
    );
    tokio::time::timeout(PATIENCE, async {
        while db.query_i64(&waiting).await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("alice's write never waited on the library's row lock");

    let mut latencies = Vec::new();
    for i in 0..50 {
        let started = Instant::now();
        let c = core.writers.apply(
            bob,
            "bob",
            block(&format!("b{i}")),
            MutationOptions::default(),
        );
        let c = tokio::time::timeout(PATIENCE, c)
            .await
            .expect("bob's write waited")
            .unwrap();
        latencies.push(started.elapsed());
        assert_eq!(c.library_version, i + 1);
    }
    assert!(
        !stalled.is_finished(),
        "alice's write should still be waiting on the lock"
    );
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(stalled.await.unwrap().unwrap().library_version, 1);
    latencies.sort();
    println!(
        "bob's writes while alice's is stalled: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
}
