//! What the pull-through proxies (npm, PyPI, Go) did, by ecosystem: cache
//! hits and misses, fetches from the upstream, upstream failures, and
//! stale metadata served because the upstream failed.

pub use super::names::{
    PROXY_ERRORS as ERRORS, PROXY_FETCHES as FETCHES, PROXY_HITS as HITS, PROXY_MISSES as MISSES,
    PROXY_STALE as STALE,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The ecosystems, in the order of the counters' rows.
pub const ECOSYSTEMS: [&str; 3] = ["npm", "pypi", "go"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Served from the cache.
    Hit,
    /// Not in the cache (or metadata too old): the upstream was asked.
    Miss,
    /// One request to the upstream (coalesced requests count once).
    Fetch,
    /// The upstream failed: unreachable, timed out, an error status, a
    /// body that does not match its published hash.
    Error,
    /// Metadata past its TTL served because the upstream failed.
    Stale,
}

const EVENTS: [(Event, &str); 5] = [
    (Event::Hit, HITS),
    (Event::Miss, MISSES),
    (Event::Fetch, FETCHES),
    (Event::Error, ERRORS),
    (Event::Stale, STALE),
];

#[derive(Default)]
pub struct ProxyCounters {
    counts: [[AtomicU64; EVENTS.len()]; ECOSYSTEMS.len()],
}

impl ProxyCounters {
    /// Counts `event` for `ecosystem` (one of `ECOSYSTEMS`; others are ignored).
    pub fn note(&self, ecosystem: &str, event: Event) {
        let row = ECOSYSTEMS.iter().position(|e| *e == ecosystem);
        let col = EVENTS.iter().position(|(e, _)| *e == event);
        if let (Some(row), Some(col)) = (row, col) {
            self.counts[row][col].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, ecosystem: &str, event: Event) -> u64 {
        let row = ECOSYSTEMS.iter().position(|e| *e == ecosystem);
        let col = EVENTS.iter().position(|(e, _)| *e == event);
        match (row, col) {
            (Some(row), Some(col)) => self.counts[row][col].load(Ordering::Relaxed),
            _ => 0,
        }
    }

    pub fn render(&self, out: &mut String) {
        for (col, (_, name)) in EVENTS.iter().enumerate() {
            if let Some((_, kind, text)) = super::NAMES.iter().find(|(n, _, _)| n == name) {
                let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
            }
            for (row, eco) in ECOSYSTEMS.iter().enumerate() {
                let n = self.counts[row][col].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{ecosystem=\"{eco}\"}} {n}");
            }
        }
    }
}
