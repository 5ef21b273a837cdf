//! Catching up with the database before the memo answers "absent".
//!
//! PostgreSQL sends a listening session every notification that was
//! signalled to it before it sends the ReadyForQuery of a query it runs
//! (postgres.c processes pending notifies first "so that they'll be seen
//! by the client before ReadyForQuery is"). So once a question asked on
//! the listening session has been answered, and the notifications read
//! before that answer have been handed to the memo, the memo has heard
//! every change committed before the question was sent: a miss it
//! remembers and still holds is a miss the database would answer now.
//!
//! Requests that want this share questions: each waits for the first one
//! sent after it asked, so a burst of misses costs one round trip on one
//! session, not one query each. The session may have a question in flight
//! when a request asks; the next is sent without waiting for that answer
//! (`listen.rs`), so a miss waits one round trip, not up to two.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

/// How long a request waits to catch up before asking the database
/// itself.
const WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct CatchUp {
    state: Mutex<State>,
    /// Wakes the listening session when a question is wanted.
    wanted: Notify,
    /// (questions answered, times the session was lost).
    answered: watch::Sender<(u64, u64)>,
}

#[derive(Default)]
struct State {
    open: bool,
    /// Questions sent so far.
    sent: u64,
    wanted: bool,
}

impl CatchUp {
    /// Waits until every change committed before this call has been heard;
    /// false when that cannot be known (no listening session, or it did
    /// not answer in time).
    pub async fn caught_up(&self) -> bool {
        let mut answered = self.answered.subscribe();
        let (target, lost) = {
            let mut s = self.state.lock();
            if !s.open {
                return false;
            }
            s.wanted = true;
            (s.sent + 1, answered.borrow().1)
        };
        self.wanted.notify_one();
        let waited = tokio::time::timeout(
            WAIT,
            answered.wait_for(|&(done, l)| done >= target || l != lost),
        )
        .await;
        matches!(waited, Ok(Ok(a)) if a.1 == lost)
    }

    /// For the listening session: waits until a question is wanted, then
    /// takes it; its number goes to `answered` once it is answered.
    pub async fn next_question(&self) -> u64 {
        loop {
            let notified = self.wanted.notified();
            if self.state.lock().wanted {
                // Lets the requests already running ask too, so that one
                // question serves them all.
                tokio::task::yield_now().await;
                let mut s = self.state.lock();
                s.wanted = false;
                s.sent += 1;
                return s.sent;
            }
            notified.await;
        }
    }

    /// Question `n` was answered and every notification read before its
    /// answer was handed to the memo.
    pub fn answered(&self, n: u64) {
        self.answered.send_modify(|a| a.0 = a.0.max(n));
    }

    /// A listening session is in place: questions can be asked.
    pub fn open(&self) {
        self.state.lock().open = true;
    }

    /// The listening session is gone: whoever waits stops waiting.
    pub fn close(&self) {
        let mut s = self.state.lock();
        s.open = false;
        s.wanted = false;
        self.answered.send_modify(|a| a.1 += 1);
    }
}
