//! Where large libraries' CPU work runs (applying a reload's changes, hashing the canonical
//! snapshot, serializing a first load): a few threads of their own at the lowest scheduling
//! priority the OS gives without privileges (`SCHED_IDLE` on Linux). While a hot large library
//! keeps them busy, the OS still runs every small library's work (on the actors' and HTTP
//! threads) first, so one big library does not raise small libraries' latency (DESIGN §10).
//! Small libraries never wait here.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use thread_priority::{ThreadPriority, set_current_thread_priority};

type Job = Box<dyn FnOnce() + Send>;

/// The policy the bulk threads ask for on Linux (see [`lower_priority`]).
#[cfg(target_os = "linux")]
const IDLE: thread_priority::ThreadSchedulePolicy = thread_priority::ThreadSchedulePolicy::Normal(
    thread_priority::NormalThreadSchedulePolicy::Idle,
);

/// The pool (see the module docs); its threads end when it is dropped.
pub struct Bulk {
    jobs: Sender<Job>,
}

impl std::fmt::Debug for Bulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulk").finish_non_exhaustive()
    }
}

impl Bulk {
    /// `threads` workers (at least one).
    pub fn new(threads: usize) -> Bulk {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("librarian-bulk-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a bulk thread");
            }
        }
        Bulk { jobs: tx }
    }

    /// Runs `work` on the pool; `None` if it panicked or the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        // A panicking job drops its answer (the caller sees an error); the thread goes on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// `SCHED_IDLE` on Linux: the thread runs only on CPU time nothing else wants, and any other
/// thread that wakes takes the CPU from it at once. Nice 19 alone still left a hot large
/// library's hashing beside small libraries' work often enough to raise their p99 (W6 mixed
/// tenants). Elsewhere, or if refused, the lowest nice value.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{set_thread_priority_and_policy, thread_native_id};
        match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, IDLE) {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = ?e, "bulk thread: no SCHED_IDLE"),
        }
    }
    if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::debug!(error = ?e, "bulk thread keeps the default priority");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn jobs_run_and_a_panicking_one_leaves_the_pool_working() {
        let bulk = Bulk::new(1);
        assert_eq!(bulk.run(|| 2 + 2).await, Some(4));
        assert_eq!(bulk.run(|| -> i32 { panic!("boom") }).await, None);
        assert_eq!(bulk.run(|| 5).await, Some(5));
    }

    /// What keeps a hot large library off small libraries' CPU time (W6 mixed tenants).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn bulk_threads_run_at_sched_idle() {
        use thread_priority::thread_schedule_policy;
        let bulk = Bulk::new(1);
        let policy = bulk.run(|| thread_schedule_policy().ok()).await.flatten();
        assert_eq!(policy, Some(IDLE));
        // The caller's own thread is untouched.
        assert_ne!(thread_schedule_policy().ok(), Some(IDLE));
    }
}
