//! One upstream fetch per artifact however many clients ask at once: the
//! first caller of a key (the leader) starts the work in a task of its own,
//! later callers of the same key await the leader's result. The task runs
//! to the end even when the client that started it hangs up, so the
//! followers are never left without an answer; the task itself clears its
//! key when it ends, because a leader that streams the fetch as it arrives
//! (see `api/proxy/tee.rs`) may never await the result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// A run's result, for every caller that joined it.
pub type Joined<V> = Shared<BoxFuture<'static, V>>;

type Inflight<V> = Arc<Mutex<HashMap<String, (u64, Joined<V>)>>>;

pub struct Coalesce<V: Clone> {
    inflight: Inflight<V>,
    runs: AtomicU64,
}

impl<V: Clone> Default for Coalesce<V> {
    fn default() -> Self {
        Coalesce {
            inflight: Arc::default(),
            runs: AtomicU64::new(0),
        }
    }
}

/// Clears a run's key when its task ends, also by a panic: a later caller
/// then starts a new run instead of getting this one's (maybe failed) result.
struct Leave<V: Clone> {
    inflight: Inflight<V>,
    key: String,
    run: u64,
}

impl<V: Clone> Drop for Leave<V> {
    fn drop(&mut self) {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&self.key).is_some_and(|(run, _)| *run == self.run) {
            map.remove(&self.key);
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Coalesce<V> {
    /// Runs `work` for `key` unless a run for it is in flight, in which
    /// case waits for that one's result. `failed` makes the value a task
    /// that panicked is answered with.
    pub async fn run<F>(&self, key: &str, work: impl FnOnce() -> F, failed: fn() -> V) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        self.join(key, work, failed).await
    }

    /// `run` without waiting: the run's result, to await when the caller
    /// wants it. `work` is called only when this caller starts the run.
    pub fn join<F>(&self, key: &str, work: impl FnOnce() -> F, failed: fn() -> V) -> Joined<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        // Held while the task is spawned and recorded: its `Leave` cannot
        // clear the key before it is there.
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, running)) = map.get(key) {
            return running.clone();
        }
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let leave = Leave {
            inflight: self.inflight.clone(),
            key: key.to_owned(),
            run,
        };
        let work = work();
        let task = tokio::spawn(async move {
            let _leave = leave;
            work.await
        });
        let shared = async move { task.await.unwrap_or_else(|_| failed()) }
            .boxed()
            .shared();
        map.insert(key.to_owned(), (run, shared.clone()));
        shared
    }

    /// Keys with a run in flight (for tests and diagnostics).
    pub fn in_flight(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_callers_of_one_key_share_one_run() {
        let c: Arc<Coalesce<u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let entered = Arc::new(AtomicUsize::new(0));
        let mut joins = Vec::new();
        for _ in 0..20 {
            let (c, runs, gate) = (c.clone(), runs.clone(), gate.clone());
            let entered = entered.clone();
            joins.push(tokio::spawn(async move {
                // One poll (current-thread runtime) counts the caller and
                // registers it with the run: no window between the two.
                entered.fetch_add(1, Ordering::SeqCst);
                c.run(
                    "k",
                    move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let mut gate = gate;
                        let _ = gate.wait_for(|open| *open).await;
                        7
                    },
                    || 0,
                )
                .await
            }));
        }
        // Every caller has joined the one run before it is let finish.
        while entered.load(Ordering::SeqCst) < 20 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for j in joins {
            assert_eq!(j.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_run_nobody_awaits_still_clears_its_key() {
        let c: Coalesce<u32> = Coalesce::default();
        let (done, finished) = tokio::sync::oneshot::channel();
        drop(c.join(
            "k",
            move || async move {
                let _ = done.send(());
                1
            },
            || 0,
        ));
        finished.await.unwrap();
        // The task ends (and leaves) right after it sent.
        while c.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
        let again = c.join("k", || async { 2 }, || 0).await;
        assert_eq!(again, 2, "a new run, not the finished one's result");
    }
}
