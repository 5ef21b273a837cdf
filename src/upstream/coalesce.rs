//! One upstream fetch per artifact however many clients ask at once: the
//! first caller of a key (the leader) starts the work in a task of its own,
//! later callers of the same key await the leader's result. The task runs
//! to the end even when the client that started it hangs up, so the
//! followers are never left without an answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures_util::future::{BoxFuture, FutureExt, Shared};

pub struct Coalesce<V: Clone> {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, V>>>>,
}

impl<V: Clone> Default for Coalesce<V> {
    fn default() -> Self {
        Coalesce {
            inflight: Mutex::default(),
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
        let shared = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(key) {
                Some(running) => running.clone(),
                None => {
                    let task = tokio::spawn(work());
                    let shared = async move { task.await.unwrap_or_else(|_| failed()) }
                        .boxed()
                        .shared();
                    map.insert(key.to_owned(), shared.clone());
                    shared
                }
            }
        };
        let value = shared.clone().await;
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|s| s.ptr_eq(&shared)) {
            map.remove(key);
        }
        value
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
}
