//! What a connection is doing, shared by its socket (`watched.rs`), its
//! service (`service.rs`) and the watchdog that closes it (`conn.rs`).
//!
//! A request moves its connection through three phases (headers, busy,
//! idle), so a change must cost next to nothing: a lock held for a few
//! instructions, and a wake-up of the watchdog only when the deadline it
//! must enforce moves before the one it sleeps until. A keep-alive
//! connection serving request after request only pushes its deadline
//! later, so its watchdog wakes once per timeout, not once per request.
//! (tokio's watch channel, used before, woke the connection's task on
//! every change: an extra poll of the connection and eight `Notify` locks
//! per change, ~10 % of a small GET's instructions.)

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// The limits the watchdog enforces (`[server]`; conn.rs builds them).
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub header_read: Duration,
    pub keep_alive: Duration,
    /// How long a response may wait for the client to read it, when the
    /// minimum body rate is on.
    pub send_stall: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reading a request's headers since then.
    Head(Instant),
    /// Serving this many requests (their responses are not yet sent); and
    /// since when a response has waited for the client to read it, if it has.
    Busy(usize, Option<Instant>),
    /// Idle between requests since then.
    Idle(Instant),
}

impl Phase {
    fn deadline(self, t: &Timeouts) -> Option<Instant> {
        match self {
            Phase::Head(since) => Some(since + t.header_read),
            Phase::Idle(since) => Some(since + t.keep_alive),
            // A client that stops reading holds its connection (and a slot
            // under the cap) as surely as one that stops sending.
            Phase::Busy(_, Some(since)) => t.send_stall.map(|w| since + w),
            Phase::Busy(_, None) => None,
        }
    }
}

pub(super) struct PhaseCell {
    timeouts: Timeouts,
    inner: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    /// When the watchdog looks next, if it sleeps with a timer.
    armed: Option<Instant>,
    watchdog: Option<Waker>,
}

impl PhaseCell {
    pub(super) fn new(phase: Phase, timeouts: Timeouts) -> PhaseCell {
        PhaseCell {
            timeouts,
            inner: Mutex::new(Inner {
                phase,
                armed: None,
                watchdog: None,
            }),
        }
    }

    /// Applies `change`, which says whether it changed anything, and wakes
    /// the watchdog if the phase's deadline is now before its timer.
    pub(super) fn update(&self, change: impl FnOnce(&mut Phase) -> bool) {
        let mut inner = self.lock();
        if !change(&mut inner.phase) {
            return;
        }
        let sooner = match (inner.phase.deadline(&self.timeouts), inner.armed) {
            (Some(deadline), Some(armed)) => deadline < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wake = if sooner { inner.watchdog.take() } else { None };
        drop(inner);
        if let Some(waker) = wake {
            waker.wake();
        }
    }

    /// For the watchdog, which `cx` wakes: the phase, its deadline, and
    /// when the watchdog's timer should fire, given when it fires now
    /// (`timer`, None if it is not set). A timer set before the deadline
    /// stays (it fires early and the watchdog looks again), so a deadline
    /// that only moves later never resets it; a change that brings the
    /// deadline before the timer wakes the watchdog (`update`).
    pub(super) fn watch(
        &self,
        cx: &Context<'_>,
        timer: Option<Instant>,
    ) -> (Phase, Option<Instant>, Option<Instant>) {
        let mut inner = self.lock();
        if !inner
            .watchdog
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.watchdog = Some(cx.waker().clone());
        }
        let deadline = inner.phase.deadline(&self.timeouts);
        let timer = match (deadline, timer) {
            (Some(d), Some(t)) => Some(t.min(d)),
            (d, t) => d.or(t),
        };
        inner.armed = timer;
        (inner.phase, deadline, timer)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
